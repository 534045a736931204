// A bounded cache of tracker answers that outlives the tracker (DESIGN.md: "a tracker outage or
// failover never stalls a room"). Pure over a `load` function and a clock.
//
// - fresh (younger than its TTL): answered from memory;
// - stale: answered from memory at once, and refreshed in the background (one refresh per key at
//   a time; after a failed refresh the key waits `retryMs` before trying again);
// - missing: loaded, concurrent callers sharing one load; a failure reaches them all.
// A stale value is never dropped because a refresh failed: only the LRU bound evicts.
import { SingleFlight } from '../cache/single-flight.js';

export interface RefreshingCacheOptions<V> {
  maxEntries: number;
  /** Age after which a value is refreshed; may depend on the value (short for "not found"). */
  ttlMs: (value: V) => number;
  retryMs: number;
  now?: () => number;
  /** Called with background refresh failures (the stale value keeps being served). */
  onRefreshError?: (key: string, error: unknown) => void;
}

interface Entry<V> {
  value: V;
  fetchedAtMs: number;
  /** No background refresh before this time (set after a failure). */
  retryAtMs: number;
}

export type CacheState = 'fresh' | 'stale' | 'loaded';

export class RefreshingCache<V> {
  private readonly map = new Map<string, Entry<V>>();
  private readonly flights = new SingleFlight<V>();
  private readonly now: () => number;
  readonly counters = { fresh: 0, stale: 0, loads: 0, refreshes: 0, refreshErrors: 0 };

  constructor(private readonly load: (key: string) => Promise<V>, private readonly options: RefreshingCacheOptions<V>) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.map.size;
  }

  /** The value and whether it came fresh, stale, or was just loaded. */
  async getWithState(key: string): Promise<{ value: V; state: CacheState }> {
    const entry = this.map.get(key);
    const nowMs = this.now();
    if (entry) {
      // LRU touch.
      this.map.delete(key);
      this.map.set(key, entry);
      if (nowMs - entry.fetchedAtMs < this.options.ttlMs(entry.value)) {
        this.counters.fresh += 1;
        return { value: entry.value, state: 'fresh' };
      }
      this.counters.stale += 1;
      if (nowMs >= entry.retryAtMs) this.refreshInBackground(key, entry);
      return { value: entry.value, state: 'stale' };
    }
    this.counters.loads += 1;
    const value = await this.flights.run(key, () => this.fetch(key)).promise;
    return { value, state: 'loaded' };
  }

  async get(key: string): Promise<V> {
    return (await this.getWithState(key)).value;
  }

  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  /** Makes the next use refresh (in the background) while still answering with the value. */
  invalidate(key: string): void {
    const entry = this.map.get(key);
    if (entry) {
      entry.fetchedAtMs = -Infinity;
      entry.retryAtMs = 0;
    }
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  private async fetch(key: string): Promise<V> {
    const value = await this.load(key);
    this.store(key, value);
    return value;
  }

  private store(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, { value, fetchedAtMs: this.now(), retryAtMs: 0 });
    for (const oldKey of this.map.keys()) {
      if (this.map.size <= this.options.maxEntries) break;
      this.map.delete(oldKey);
    }
  }

  private refreshInBackground(key: string, entry: Entry<V>): void {
    if (this.flights.has(key)) return;
    this.counters.refreshes += 1;
    const { promise } = this.flights.run(key, () => this.fetch(key));
    promise.catch((error: unknown) => {
      this.counters.refreshErrors += 1;
      entry.retryAtMs = this.now() + this.options.retryMs;
      this.options.onRefreshError?.(key, error);
    });
  }
}
