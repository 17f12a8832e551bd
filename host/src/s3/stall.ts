/**
 * The endpoint's silence, across every request and retry of one client (stall_timeout).
 *
 * request_timeout bounds one attempt; retries multiply it. A gateway that takes connections and
 * never answers (a stopped radosgw, a Ceph cluster that blocks writes when full) made every
 * attempt wait the whole request_timeout: 6 attempts of 300 s for one request, three times that
 * for a part, as much again for the abort that follows. This clock counts how long requests
 * have been waiting on the endpoint without a byte answered or a byte of a body taken by the
 * socket; once that reaches the limit, the operation gives up (Stalled) instead of retrying.
 *
 * What counts as the endpoint moving: a byte of an answer, or a byte of a request body beyond the
 * first BUFFERED_BYTES of it. The kernels between us and a stopped process take that much
 * without it reading anything (our send buffer, its receive buffer): every new connection to a
 * frozen gateway swallows a 5 MiB part whole, which is no sign of life; a byte taken after those
 * buffers are full is one (a slow link sending a big part).
 *
 * Only time with a request outstanding counts: a long-lived process (the restore server, the
 * Backup Provider between guests) idles between requests, and that is nobody's silence. Any
 * byte moved on any connection resets the clock: one connection cut off silently (a NAT entry
 * gone) while the others keep moving is a request timeout, retried as before.
 */

/** A last attempt once the limit is reached (the abort of an upload, the removal of an object
 *  that failed its manifest): long enough to reach a gateway that just woke up, short enough
 *  not to double the wait. The request still reaches a gateway that is only frozen, which works
 *  through it when it resumes. */
export const LAST_TRY_MS = 10_000;

/** The least an attempt gets while the limit is not reached: enough for an answer that is on its way. */
export const MIN_ATTEMPT_MS = 1_000;

/** More than the socket buffers of both ends can hold (Linux: tcp_wmem 4 MiB + tcp_rmem 6 MiB
 *  at most by default). */
export const BUFFERED_BYTES = 32 * 1024 * 1024;

export class StallClock {
  private active = 0;
  /** silence accumulated while requests were outstanding, up to `since` */
  private silent = 0;
  /** start of the current outstanding stretch's silence (meaningful while active > 0) */
  private since = 0;

  constructor(
    readonly limitMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A request (with all its retries) starts waiting on the endpoint. */
  enter(): void {
    if (this.active++ === 0) this.since = this.now();
  }

  leave(): void {
    if (this.active === 0) return;
    if (--this.active === 0) this.silent += this.now() - this.since;
  }

  /** A byte came from the endpoint, or the socket took a byte of a body. */
  progress(): void {
    this.silent = 0;
    this.since = this.now();
  }

  silentMs(): number {
    return this.silent + (this.active > 0 ? this.now() - this.since : 0);
  }

  /** `limitMs`: a request the server answers only once it has done its work (Complete, Copy)
   *  may be silent longer than the storage's limit */
  stalled(limitMs = this.limitMs): boolean {
    return this.silentMs() >= limitMs;
  }

  /**
   * How long one attempt may wait: its own timeout, cut to what is left of the limit (at least
   * MIN_ATTEMPT_MS); once nothing is left, LAST_TRY_MS (the last try). Not LAST_TRY_MS for a
   * retry just short of the limit: with request_timeout equal to the limit (the default) a first
   * attempt times out a hair before the silence reaches it, and its retry waited LAST_TRY_MS more.
   */
  attemptMs(timeoutMs: number, limitMs = this.limitMs): number {
    const left = limitMs - this.silentMs();
    return Math.min(timeoutMs, left > 0 ? Math.max(left, MIN_ATTEMPT_MS) : LAST_TRY_MS);
  }
}
