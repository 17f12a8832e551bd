/**
 * How many GETs a download keeps in flight, decided by what the gateway gives.
 *
 * A download starts with one stream. When its first batch is in, a second stream joins; when the
 * two have finished two batches between them, the download widens to the configured number only if
 * the two together moved at least WIDEN_GAIN times what the one did, and otherwise goes on with
 * one. A gateway across a WAN, or with CPUs to spare, serves a second stream at about the rate of
 * the first, and the download gets all of its streams. A gateway that is CPU-bound — typically one
 * sharing this node's cores, as a RadosGW on a hyper-converged node does — is no faster with four
 * streams and spends more CPU per GiB on them (a RadosGW on this 2-core machine, 2026-12-06:
 * 2.4–4.1 CPU-s per GiB read with four streams, 1.6–2.8 with one), CPU the node's guests and the
 * restore itself then do not have.
 *
 * Rates are total bytes received by all streams over elapsed time (the caller's `moved` counter),
 * first-byte latency included: that is what a stream costs.
 */
export const WIDEN_GAIN = 1.25;

export class StreamGovernor {
  private phase: 'one' | 'two' | 'settled';
  private width = 1;
  private t0 = 0;
  private m0 = 0;
  private oneRate = 0;
  private twoDone = 0;

  constructor(
    private readonly max: number,
    private readonly moved: () => number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.phase = max > 1 ? 'one' : 'settled';
  }

  /** Streams to keep running now. */
  get target(): number {
    return this.width;
  }

  /** True once the width no longer changes. */
  get settled(): boolean {
    return this.phase === 'settled';
  }

  /** The first batch is about to be asked for. */
  start(): void {
    this.t0 = this.now();
    this.m0 = this.moved();
  }

  /** A batch finished (any stream). */
  batchDone(): void {
    if (this.phase === 'settled') return;
    const t = this.now();
    const rate = (this.moved() - this.m0) / Math.max(t - this.t0, 1e-3);
    if (this.phase === 'one') {
      this.oneRate = rate;
      this.phase = 'two';
      this.width = 2;
      this.t0 = t;
      this.m0 = this.moved();
      return;
    }
    if (++this.twoDone < 2) return;
    this.phase = 'settled';
    this.width = rate >= WIDEN_GAIN * this.oneRate ? this.max : 1;
  }
}
