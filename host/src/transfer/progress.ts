/**
 * Progress reporting shared by uploads and downloads. Callers (CLIs, the protocol) redraw a line
 * or log per event, so events are throttled; the rate is measured over a sliding window because
 * a whole-transfer average hides stalls and a per-event rate jumps with part granularity.
 */
export interface Progress {
  bytes: number;
  total: number | null;
  parts: number;
  partsTotal: number | null;
  /** bytes per second over the last few seconds */
  rate: number;
  /** of `bytes`, what an earlier run had already stored (a resumed upload): never in `rate` */
  resumed?: number;
}

export type ProgressListener = (p: Progress) => void;

const WINDOW_MS = 5_000;
const SAMPLE_MS = 100;

export class ProgressTracker {
  private bytes = 0;
  private parts = 0;
  private resumed = 0;
  private lastEmit = -Infinity;
  private readonly samples: Array<[number, number]> = [];
  private readonly now: () => number;

  constructor(
    private readonly listener: ProgressListener | undefined,
    public total: number | null,
    public partsTotal: number | null,
    o: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.intervalMs = o.intervalMs ?? 250;
    this.now = o.now ?? (() => performance.now());
    this.samples.push([this.now(), 0]);
  }

  private readonly intervalMs: number;

  /** Adds transferred bytes (and finished parts); emits when the throttle interval has passed. */
  add(bytes: number, parts = 0): void {
    this.bytes += bytes;
    this.parts += parts;
    if (!this.listener) return;
    const t = this.now();
    // a sample per SAMPLE_MS at most: add() runs per received chunk, thousands of times a second
    if (t - this.samples[this.samples.length - 1]![0] >= SAMPLE_MS) {
      this.samples.push([t, this.bytes]);
      while (this.samples.length > 2 && t - this.samples[1]![0] > WINDOW_MS) this.samples.shift();
    }
    if (t - this.lastEmit >= this.intervalMs) this.emit(t);
  }

  /**
   * Bytes (and parts) an earlier run already stored: done, but not moved now, so they stay out of
   * the rate (a resumed 16 GiB upload showed 2,000,000 MiB/s and ETA 00:00 until its window
   * passed) and the ETA is what is left over the rate of what moves.
   */
  resume(bytes: number, parts: number): void {
    this.bytes += bytes;
    this.parts += parts;
    this.resumed += bytes;
    for (const s of this.samples) s[1] += bytes;
    if (this.listener) this.emit(this.now());
  }

  /** Undoes bytes counted for a range or part that is being retried. */
  retract(bytes: number): void {
    this.bytes -= bytes;
  }

  /** The last event, always sent so listeners see the final figures. */
  finish(): void {
    if (this.listener) this.emit(this.now());
  }

  snapshot(): Progress {
    return this.build(this.now());
  }

  private emit(t: number): void {
    this.lastEmit = t;
    this.listener!(this.build(t));
  }

  private build(t: number): Progress {
    const [t0, b0] = this.samples[0]!;
    const dt = (t - t0) / 1000;
    return {
      bytes: this.bytes,
      total: this.total,
      parts: this.parts,
      partsTotal: this.partsTotal,
      rate: dt > 0 ? (this.bytes - b0) / dt : 0,
      ...(this.resumed > 0 ? { resumed: this.resumed } : {}),
    };
  }
}
