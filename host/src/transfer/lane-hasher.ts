/**
 * SHA-256 of concurrent download ranges on the 4-lane SIMD core. One range hashed alone runs at
 * the scalar core's speed (~450 MB/s here) and was half of a download's CPU; four ranges side by
 * side on Sha256x4 take about half the CPU per byte. Each range is a lane; the data of a lane is
 * queued (by reference, the chunks are not copied) until every busy lane of its bank has some,
 * then all of them are hashed together in equal slices. A lane that runs far ahead of the others
 * (a slow connection beside it), or a range that ends, does not wait: its queue is hashed then,
 * beside whatever the other lanes have, the rest on the scalar core.
 *
 * Memory: at most HIGH bytes (+ one chunk) queued per lane. All on the one JS thread; the caller
 * yields to the event loop between updates so hashing is spread between socket reads.
 */
import { Sha256x4 } from '../wasm/digests.js';

/** Queue this much in every busy lane before hashing them together. */
const EVEN = 1 << 20;
/** A lane with this much queued is hashed whatever the others have. */
const HIGH = 8 << 20;
const LANES = 4;
/** What an idle lane gets: Sha256x4.update sees the same shapes on every call (one map of
 *  argument, plain Uint8Arrays only), or V8 throws away its optimised code (a ~90 ms recompile of
 *  that large function each time; it happened 4-5 times per download). */
const NOTHING = new Uint8Array(0);

export interface LaneStream {
  /** Queues `chunks` after everything given before; they are kept (not copied) until hashed, so
   *  the caller must not modify them afterwards. */
  update(chunks: readonly Uint8Array[]): void;
  /** The range's SHA-256; the lane is free for another range afterwards. */
  digest(): Uint8Array;
  /** Forgets the range (a failed attempt); the lane is free afterwards. */
  drop(): void;
}

interface Lane {
  busy: boolean;
  queue: Uint8Array[];
  /** bytes of queue[0] already hashed */
  head: number;
  queued: number;
}

class Bank {
  private x = new Sha256x4(LANES);
  readonly lanes: Lane[] = Array.from({ length: LANES }, () => ({ busy: false, queue: [], head: 0, queued: 0 }));

  freeLane(): number {
    return this.lanes.findIndex((l) => !l.busy);
  }

  get idle(): boolean {
    return this.lanes.every((l) => !l.busy);
  }

  push(i: number, chunks: readonly Uint8Array[]): void {
    const lane = this.lanes[i]!;
    for (const c of chunks) {
      if (c.length === 0) continue;
      lane.queue.push(c);
      lane.queued += c.length;
    }
    if (lane.queued >= HIGH) {
      this.hashWhile(() => lane.queued > 0);
      return;
    }
    if (lane.queued < EVEN) return;
    for (const l of this.lanes) if (l.busy && l.queued < EVEN) return;
    // every busy lane has a share: hash in lockstep until one runs dry
    this.hashWhile(() => this.lanes.every((l) => !l.busy || l.queued > 0));
  }

  finish(i: number): Uint8Array {
    const lane = this.lanes[i]!;
    this.hashWhile(() => lane.queued > 0);
    const d = this.x.digestLane(i);
    lane.busy = false;
    return d;
  }

  drop(i: number): void {
    const lane = this.lanes[i]!;
    lane.queue = [];
    lane.head = 0;
    lane.queued = 0;
    // the lane's state is garbage now; digesting it resets it for the next range
    this.x.digestLane(i);
    lane.busy = false;
  }

  /**
   * Hashes the queued data of every lane that has some, one equal slice per lane per call (the
   * shortest head chunk among them), while `more()` holds.
   */
  private hashWhile(more: () => boolean): void {
    const slices: Uint8Array[] = [NOTHING, NOTHING, NOTHING, NOTHING];
    while (more()) {
      let n = Infinity;
      for (const l of this.lanes) if (l.queued > 0) n = Math.min(n, l.queue[0]!.length - l.head);
      if (n === Infinity) return;
      for (let i = 0; i < LANES; i++) {
        const l = this.lanes[i]!;
        if (l.queued === 0) {
          slices[i] = NOTHING;
          continue;
        }
        const c = l.queue[0]!;
        slices[i] = new Uint8Array(c.buffer, c.byteOffset + l.head, n);
        l.head += n;
        l.queued -= n;
        if (l.head === c.length) {
          l.queue.shift();
          l.head = 0;
        }
      }
      this.x.update(slices);
    }
  }
}

/** Hands out lanes of 4-lane banks; as many banks as ranges in flight need. */
export class LaneHasher {
  private readonly banks: Bank[] = [];

  stream(): LaneStream {
    let bank: Bank | undefined;
    let lane = -1;
    for (const b of this.banks) {
      lane = b.freeLane();
      if (lane >= 0) {
        bank = b;
        break;
      }
    }
    if (!bank) {
      bank = new Bank();
      this.banks.push(bank);
      lane = 0;
    }
    const b = bank;
    const i = lane;
    b.lanes[i]!.busy = true;
    let open = true;
    return {
      update: (chunks) => {
        if (open) b.push(i, chunks);
      },
      digest: () => {
        if (!open) throw new Error('LaneStream used after digest/drop');
        open = false;
        return b.finish(i);
      },
      drop: () => {
        if (!open) return;
        open = false;
        b.drop(i);
      },
    };
  }
}
