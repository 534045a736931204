// Tells every tracker this streamer exists (signed POST /internal/v1/streamers/heartbeat every
// heartbeatIntervalMs), each tracker on its own timer so a dead one never delays the others.
// Rooms read the list from GET /api/v1/streamers and fail over between streamers by themselves.
//
// Plays: the HLS server calls countPlay() (wired in index.ts) for every master playlist GET; each heartbeat carries
// the plays counted since that tracker last answered (`plays`, [songId, count]), the same delta
// to every tracker, each tracker's pending counts cleared only by its own answer. Bounded: at
// most MAX_PENDING_SONGS distinct songs wait per tracker (the contract's limit); plays of further
// songs while a tracker is unreachable are dropped and counted (popularity is a hint, not money).
import type { StreamerHeartbeat } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import type { Logger } from '../common/log.js';

export interface RegistrationOptions {
  trackers: string[];
  secret: string;
  intervalMs: number;
  timeoutMs: number;
  body: () => StreamerHeartbeat;
  log: Logger;
}

/** Distinct songs whose plays wait for one tracker's answer (contract: plays has at most 10,000). */
export const MAX_PENDING_SONGS = 10_000;

/** Plays waiting for one tracker, with a bound. */
export class PendingPlays {
  private readonly counts = new Map<string, number>();
  dropped = 0;

  add(songId: string, count = 1): void {
    const known = this.counts.get(songId);
    if (known === undefined && this.counts.size >= MAX_PENDING_SONGS) {
      this.dropped += count;
      return;
    }
    this.counts.set(songId, (known ?? 0) + count);
  }

  /** What a heartbeat carries now. */
  snapshot(): Array<[string, number]> {
    return [...this.counts];
  }

  /** The tracker answered: forget what it was sent (plays counted meanwhile stay). */
  acknowledge(sent: ReadonlyArray<readonly [string, number]>): void {
    for (const [songId, count] of sent) {
      const left = (this.counts.get(songId) ?? 0) - count;
      if (left > 0) this.counts.set(songId, left);
      else this.counts.delete(songId);
    }
  }

  get size(): number {
    return this.counts.size;
  }
}

export class Registration {
  private readonly pending = new Map<string, PendingPlays>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly failing = new Set<string>();
  private stopped = false;

  constructor(private readonly options: RegistrationOptions) {}

  countPlay(songId: string): void {
    for (const p of this.pending.values()) p.add(songId);
  }

  /** Plays waiting per tracker (health, tests). */
  pendingPlays(): Record<string, { songs: number; dropped: number }> {
    return Object.fromEntries([...this.pending].map(([url, p]) => [url, { songs: p.size, dropped: p.dropped }]));
  }

  start(): void {
    for (const url of this.options.trackers) this.pending.set(url, new PendingPlays());
    for (const url of this.options.trackers) {
      let busy = false;
      const beat = (): void => {
        if (busy || this.stopped) return;
        busy = true;
        const call = this.send(url).finally(() => {
          busy = false;
          this.inFlight.delete(call);
        });
        this.inFlight.add(call);
      };
      beat();
      const timer = setInterval(beat, this.options.intervalMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all([...this.inFlight]);
  }

  private async send(url: string): Promise<void> {
    const pending = this.pending.get(url);
    const plays = pending?.snapshot() ?? [];
    const body: StreamerHeartbeat = plays.length > 0 ? { ...this.options.body(), plays } : this.options.body();
    try {
      await rpc(url, '/internal/v1/streamers/heartbeat', {
        body,
        secret: this.options.secret,
        timeoutMs: Math.min(this.options.timeoutMs, this.options.intervalMs),
      });
      pending?.acknowledge(plays);
      if (this.failing.delete(url)) this.options.log.info('registered with the tracker again', { tracker: url });
    } catch (error) {
      // Logged once per outage, not once per heartbeat.
      if (!this.failing.has(url)) {
        this.failing.add(url);
        this.options.log.warn('streamer heartbeat failed', { tracker: url, error: (error as Error).message });
      }
    }
  }
}
