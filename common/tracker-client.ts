// How other roles talk to the tracker(s): `--tracker a,b` lists several; a call goes to the one
// that answered last and moves on to the next on a network error or a 5xx/503 answer, so a
// tracker outage or failover costs a retry, not an error.
import { rpc, RpcError, type RpcOptions } from './http.js';

export class TrackerClient {
  private preferred = 0;
  constructor(readonly urls: string[], private readonly secret: string, private readonly timeoutMs: number) {
    if (urls.length === 0) throw new Error('at least one tracker URL is needed');
  }

  async call<T>(path: string, options: Omit<RpcOptions, 'timeoutMs' | 'secret'> & { timeoutMs?: number; signed?: boolean } = {}): Promise<T> {
    const errors: string[] = [];
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
        errors.push((error as Error).message);
      }
    }
    throw new RpcError(0, `no tracker could answer: ${errors.join('; ')}`, this.urls.join(','));
  }
}
