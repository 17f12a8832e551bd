/**
 * A pool of fixed-size context slots in WASM memory shared by all live hashers of one algorithm.
 *
 * The transfer engine keeps several hashers alive and interleaves their updates, so each needs
 * its own state. Slots are bound on use; when all are taken, the least recently used owner's
 * state is copied out to JS ("spilled") and restored into a slot when that owner is used again.
 * So the number of live hashers is unbounded, abandoned hashers cost nothing (their spill is
 * garbage-collected with them), and state can never bleed between instances.
 */
import { heap } from './load.js';

export interface SlotOwner {
  /** Index of the slot holding this owner's state, or -1 when spilled / unbound. */
  slot: number;
  /** This owner's state while it is not in a slot. */
  spill: Uint8Array | null;
}

export class SlotPool {
  private readonly owners: (SlotOwner | null)[];
  private readonly lastUse: number[];
  private readonly free: number[] = [];
  private tick = 0;

  constructor(
    private readonly base: number,
    private readonly slotSize: number,
    count: number,
  ) {
    this.owners = new Array<SlotOwner | null>(count).fill(null);
    this.lastUse = new Array<number>(count).fill(0);
    for (let i = count - 1; i >= 0; i--) this.free.push(i);
  }

  /** The address of `owner`'s slot, binding (and restoring its spilled state) if needed. The
   *  address is valid until the next bind() on this pool. */
  bind(owner: SlotOwner): number {
    let i = owner.slot;
    if (i < 0 || this.owners[i] !== owner) {
      i = this.take();
      this.owners[i] = owner;
      owner.slot = i;
      if (owner.spill !== null) {
        heap().set(owner.spill, this.base + i * this.slotSize);
        owner.spill = null;
      }
    }
    this.lastUse[i] = ++this.tick;
    return this.base + i * this.slotSize;
  }

  /** Gives the owner's slot back (after digest()). */
  release(owner: SlotOwner): void {
    const i = owner.slot;
    if (i >= 0 && this.owners[i] === owner) {
      this.owners[i] = null;
      this.free.push(i);
    }
    owner.slot = -1;
    owner.spill = null;
  }

  private take(): number {
    const f = this.free.pop();
    if (f !== undefined) return f;
    let victim = 0;
    for (let i = 1; i < this.owners.length; i++) if (this.lastUse[i]! < this.lastUse[victim]!) victim = i;
    const o = this.owners[victim]!;
    const at = this.base + victim * this.slotSize;
    o.spill = heap().slice(at, at + this.slotSize);
    o.slot = -1;
    this.owners[victim] = null;
    return victim;
  }
}
