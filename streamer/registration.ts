// Tells every tracker this streamer exists (signed POST /internal/v1/streamers/heartbeat every
// heartbeatIntervalMs), each tracker on its own timer so a dead one never delays the others.
// Rooms read the list from GET /api/v1/streamers and fail over between streamers by themselves.
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

export class Registration {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly failing = new Set<string>();
  private stopped = false;

  constructor(private readonly options: RegistrationOptions) {}

  start(): void {
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
    try {
      await rpc(url, '/internal/v1/streamers/heartbeat', {
        body: this.options.body(),
        secret: this.options.secret,
        timeoutMs: Math.min(this.options.timeoutMs, this.options.intervalMs),
      });
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
