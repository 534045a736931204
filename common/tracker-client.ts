// How other roles talk to the tracker(s): `--tracker a,b` lists several; a call goes to the one
// that answered last and moves on to the next on a network error or a 5xx/503 answer, so a
// tracker outage or failover costs a retry, not an error.
//
// HA (docs/architecture.md "High availability"): a standby forwards writes to the leader, so any
// tracker of the list will do. During an election (the leader died, its session has not expired
// yet) every tracker answers 503 "not the leader"; such a call is retried, the whole list again,
// for at most `leaderWaitMs`, so an upload during a failover waits for the new leader instead of
// failing. Only that answer is waited for: a standalone tracker never gives it.
import { rpc, RpcError, type RpcOptions } from './http.js';

/** Pause between two passes over the list while waiting for a leader. */
const LEADER_POLL_MS = 250;
/** Default bound of that wait: above the default ZooKeeper session timeout (10 s) + an election. */
export const DEFAULT_LEADER_WAIT_MS = 15_000;

const NOT_LEADER_RE = /not the leader/;

export class TrackerClient {
  private preferred = 0;
  private readonly leaderWaitMs: number;

  constructor(readonly urls: string[], private readonly secret: string, private readonly timeoutMs: number, options: { leaderWaitMs?: number } = {}) {
    if (urls.length === 0) throw new Error('at least one tracker URL is needed');
    this.leaderWaitMs = options.leaderWaitMs ?? DEFAULT_LEADER_WAIT_MS;
  }

  async call<T>(path: string, options: Omit<RpcOptions, 'timeoutMs' | 'secret'> & { timeoutMs?: number; signed?: boolean } = {}): Promise<T> {
    const deadline = Date.now() + this.leaderWaitMs;
    for (;;) {
      const errors: string[] = [];
      let noLeader = false;
      for (let i = 0; i < this.urls.length; i++) {
        const index = (this.preferred + i) % this.urls.length;
        try {
          const result = await rpc<T>(this.urls[index]!, path, {
            ...options,
            secret: options.signed === false ? undefined : this.secret,
            timeoutMs: options.timeoutMs ?? this.timeoutMs,
          });
          this.preferred = index;
          return result;
        } catch (error) {
          // A 4xx is the answer (the request itself is wrong); only unreachable or failing
          // trackers are worth another try.
          if (error instanceof RpcError && error.status >= 400 && error.status < 500 && error.status !== 409) throw error;
          if (error instanceof RpcError && error.status === 503 && NOT_LEADER_RE.test(error.message)) noLeader = true;
          errors.push((error as Error).message);
        }
      }
      if (!noLeader || Date.now() + LEADER_POLL_MS >= deadline) {
        throw new RpcError(0, `no tracker could answer: ${errors.join('; ')}`, this.urls.join(','));
      }
      await new Promise((r) => setTimeout(r, LEADER_POLL_MS));
    }
  }
}
