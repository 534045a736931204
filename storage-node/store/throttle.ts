// A token bucket: the scrubber's read rate. Pure (the caller passes the clock), so its arithmetic
// is unit-tested; the caller sleeps for the wait it is given.
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  /** `burstBytes`: how far ahead of the rate a reader may get after a pause (at least one read). */
  constructor(
    readonly rateBytesPerSec: number,
    readonly burstBytes: number,
    nowMs: number,
  ) {
    this.tokens = burstBytes;
    this.lastMs = nowMs;
  }

  /** Takes `bytes` (going into debt if need be); returns how long to wait before using them, ms. */
  take(bytes: number, nowMs: number): number {
    if (this.rateBytesPerSec <= 0) return 0;
    this.tokens = Math.min(this.burstBytes, this.tokens + ((nowMs - this.lastMs) * this.rateBytesPerSec) / 1000);
    this.lastMs = nowMs;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rateBytesPerSec;
  }
}
