// The playback clock of a simulated room box, as pure accounting (no timers, no I/O), so the stall
// arithmetic is testable by itself.
//
// A song is a list of segments on one grid (video and audio share it). A segment is `ready` when
// every part of it (video and the audio rendition) has fully arrived. Playback starts when the
// first `startupSegments` are ready (hls.js waits for a startup buffer the same way); from then the
// playhead moves in real time. When the playhead reaches the start of a segment that is not ready,
// that is a stall: the playhead waits there until it is ready (a rebuffer), then moves on.

export interface ClockSegment {
  startS: number;
  durationS: number;
}

export interface StallRecord {
  /** Segment the playhead waited for. */
  segment: number;
  /** Wall time (ms, same clock as `readyAtMs`) the playhead reached it. */
  atMs: number;
  /** How long it waited, ms. */
  waitedMs: number;
}

export class PlaybackClock {
  /** Wall time each segment became ready (NaN: not yet). */
  private readonly readyAtMs: number[];
  /** Wall time playback started (NaN: not yet). */
  private startedAtMs = NaN;
  /** Segments [0, settled) have their reach time computed; stall time accumulated before them. */
  private settled = 0;
  private stallMsBefore = 0;
  readonly stalls: StallRecord[] = [];

  constructor(
    readonly segments: readonly ClockSegment[],
    /** Wall time the room asked for the song (startup time is measured from here). */
    readonly requestedAtMs: number,
    readonly startupSegments = 1,
  ) {
    this.readyAtMs = new Array<number>(segments.length).fill(NaN);
  }

  /** Records that a segment has fully arrived (call in any order; the earliest time wins). */
  markReady(index: number, atMs: number): void {
    if (!(index >= 0 && index < this.segments.length)) throw new RangeError(`segment ${index} is not in this song`);
    const prev = this.readyAtMs[index]!;
    if (!Number.isNaN(prev) && prev <= atMs) return;
    if (this.settled > index) throw new Error(`segment ${index} marked ready after the playhead passed it`);
    this.readyAtMs[index] = atMs;
    if (Number.isNaN(this.startedAtMs)) {
      const need = Math.min(this.startupSegments, this.segments.length);
      let last = -Infinity;
      for (let i = 0; i < need; i++) {
        const r = this.readyAtMs[i]!;
        if (Number.isNaN(r)) return;
        last = Math.max(last, r);
      }
      this.startedAtMs = last;
    }
  }

  get started(): boolean {
    return !Number.isNaN(this.startedAtMs);
  }

  /** Startup time: request → playback start, ms (NaN before it started). */
  get startupMs(): number {
    return this.startedAtMs - this.requestedAtMs;
  }

  get totalDurationS(): number {
    const last = this.segments[this.segments.length - 1];
    return last ? last.startS + last.durationS : 0;
  }

  /**
   * Advances the accounting to wall time `nowMs` and says where the playhead is: its media time,
   * whether it is waiting for a segment (stalled), and whether the song is over.
   */
  at(nowMs: number): { positionS: number; stalled: boolean; ended: boolean; stallMs: number } {
    if (!this.started || nowMs < this.startedAtMs) return { positionS: 0, stalled: false, ended: false, stallMs: this.stallMsBefore };
    // Settle every segment whose start the playhead has reached by nowMs.
    while (this.settled < this.segments.length) {
      const seg = this.segments[this.settled]!;
      const reachMs = this.startedAtMs + seg.startS * 1000 + this.stallMsBefore;
      if (reachMs > nowMs) break;
      const ready = this.readyAtMs[this.settled]!;
      if (Number.isNaN(ready) || ready > nowMs) {
        // Waiting for it right now: a stall in progress (recorded once it ends).
        const waitingMs = nowMs - reachMs;
        return { positionS: seg.startS, stalled: true, ended: false, stallMs: this.stallMsBefore + waitingMs };
      }
      if (ready > reachMs) {
        this.stalls.push({ segment: this.settled, atMs: reachMs, waitedMs: ready - reachMs });
        this.stallMsBefore += ready - reachMs;
      }
      this.settled++;
    }
    const positionS = Math.min(this.totalDurationS, (nowMs - this.startedAtMs - this.stallMsBefore) / 1000);
    return { positionS, stalled: false, ended: this.settled >= this.segments.length && positionS >= this.totalDurationS, stallMs: this.stallMsBefore };
  }

  /** Wall time the song ends if nothing else stalls (for scheduling the next wake-up). */
  endAtMs(): number {
    return this.startedAtMs + this.totalDurationS * 1000 + this.stallMsBefore;
  }

  /** Media seconds buffered ahead of the playhead at wall time `nowMs` (contiguous ready segments). */
  bufferedAheadS(nowMs: number): number {
    const { positionS } = this.at(nowMs);
    let endS = positionS;
    for (let i = this.settled > 0 ? this.settled - 1 : 0; i < this.segments.length; i++) {
      const seg = this.segments[i]!;
      if (seg.startS + seg.durationS <= positionS) continue;
      const r = this.readyAtMs[i]!;
      if (Number.isNaN(r) || r > nowMs) break;
      endS = seg.startS + seg.durationS;
    }
    return endS - positionS;
  }
}
