// The streamer's hot-range cache policy: exact segment ranges (key `blobId:start-end`, the
// playlists name them) in an LRU by bytes, with single-flight loads. Pure over a `load` function.
//
// Bounds: cached bytes ≤ maxBytes; a range over maxEntryBytes is never buffered (the caller
// streams it through); cold loads buffer at most inflightMaxBytes at once across all keys (a
// request that would go over is told to stream through instead). Joining a flight costs nothing.
import { ByteLru } from './lru.js';
import { SingleFlight } from './single-flight.js';

export interface RangeCacheOptions {
  maxBytes: number;
  maxEntryBytes: number;
  inflightMaxBytes: number;
}

export type CacheOutcome = 'hit' | 'miss' | 'joined';

export interface CacheAnswer {
  buffer: Buffer;
  outcome: CacheOutcome;
}

/** Why a request was not served from a buffer: the caller streams it from upstream. */
export type BypassReason = 'too-large' | 'inflight-budget';

export class RangeCache {
  readonly lru: ByteLru<Buffer>;
  private readonly flights = new SingleFlight<Buffer>();
  private inflightBytes = 0;
  readonly counters = { hits: 0, misses: 0, joins: 0, bypassTooLarge: 0, bypassBudget: 0, loadErrors: 0 };

  constructor(private readonly options: RangeCacheOptions) {
    this.lru = new ByteLru<Buffer>(options.maxBytes);
  }

  static key(blobId: string, startByte: number, endByte: number): string {
    return `${blobId}:${startByte}-${endByte}`;
  }

  get bytes(): number {
    return this.lru.bytes;
  }

  get entries(): number {
    return this.lru.size;
  }

  get inflight(): { flights: number; bytes: number } {
    return { flights: this.flights.inFlight, bytes: this.inflightBytes };
  }

  /**
   * The bytes of `key` (`lengthBytes` long): from the cache, from a load in flight, or from a new
   * load (`load` must resolve to exactly `lengthBytes` bytes). Returns a bypass reason when the
   * range must be streamed through instead. A failed load rejects every caller that shared it.
   */
  get(key: string, lengthBytes: number, load: () => Promise<Buffer>): Promise<CacheAnswer> | BypassReason {
    const cached = this.lru.get(key);
    if (cached) {
      this.counters.hits += 1;
      return Promise.resolve({ buffer: cached, outcome: 'hit' });
    }
    if (lengthBytes > this.options.maxEntryBytes) {
      this.counters.bypassTooLarge += 1;
      return 'too-large';
    }
    if (!this.flights.has(key) && this.inflightBytes + lengthBytes > this.options.inflightMaxBytes) {
      this.counters.bypassBudget += 1;
      return 'inflight-budget';
    }
    const { promise, joined } = this.flights.run(key, () => {
      this.inflightBytes += lengthBytes;
      let loading: Promise<Buffer>;
      try {
        loading = load();
      } catch (error) {
        loading = Promise.reject(error);
      }
      return loading.then(
        (buffer) => {
          this.inflightBytes -= lengthBytes;
          if (buffer.byteLength !== lengthBytes) {
            // A broken invariant, not an operating error: the loader promised exactly this range.
            throw new Error(`cache load for ${key} returned ${buffer.byteLength} bytes, expected ${lengthBytes}`);
          }
          // maxBytes may be smaller than maxEntryBytes; the LRU refuses what cannot fit.
          this.lru.set(key, buffer);
          return buffer;
        },
        (error: unknown) => {
          this.inflightBytes -= lengthBytes;
          this.counters.loadErrors += 1;
          throw error;
        },
      );
    });
    if (joined) this.counters.joins += 1;
    else this.counters.misses += 1;
    return promise.then((buffer) => ({ buffer, outcome: joined ? 'joined' : 'miss' }));
  }
}
