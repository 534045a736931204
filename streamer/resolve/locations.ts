// Blob locations through the tracker (signed GET /internal/v1/blobs/{id}), cached for locateTtlMs
// and kept while the tracker is down. A failed replica read invalidates the entry: the next use
// refreshes it in the background while the reader fails over with what it has.
import { locateResponse, type LocateResponse } from '../../common/contracts.js';
import { HttpError } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import type { TrackerClient } from '../../common/tracker-client.js';
import type { StreamerConfig } from '../../config/schema.js';
import type { StreamerMetrics } from '../metrics.js';
import { RefreshingCache } from './refreshing-cache.js';
import { isTrackerAnswer, unavailable } from './tracker-errors.js';

type LocateAnswer = { found: true; value: LocateResponse } | { found: false };

export class LocationResolver {
  private readonly cache: RefreshingCache<LocateAnswer>;

  constructor(private readonly tracker: TrackerClient, config: StreamerConfig, private readonly metrics: StreamerMetrics, private readonly log: Logger) {
    this.cache = new RefreshingCache<LocateAnswer>((id) => this.load(id), {
      maxEntries: config.locateCacheEntries,
      ttlMs: (answer) => (answer.found ? config.locateTtlMs : config.missingSongTtlMs),
      retryMs: config.refreshRetryMs,
      onRefreshError: (id, error) => {
        this.metrics.trackerErrors.inc({ what: 'locate' });
        this.log.debug('locate refresh failed; using the cached locations', { blob: id, error: (error as Error).message });
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  /** Throws HttpError 503 (not cached, no tracker) or 502 (the tracker knows no replica). */
  async get(blobId: string): Promise<LocateResponse> {
    let answer: LocateAnswer;
    try {
      const { value, state } = await this.cache.getWithState(blobId);
      if (state === 'stale') this.metrics.staleAnswers.inc({ what: 'locate' });
      answer = value;
    } catch (error) {
      this.metrics.trackerErrors.inc({ what: 'locate' });
      this.log.warn('blob locations unavailable', { blob: blobId, error: (error as Error).message });
      throw unavailable('blob locations');
    }
    if (!answer.found) throw new HttpError(502, 'no replica of this file is known to the cluster');
    return answer.value;
  }

  invalidate(blobId: string): void {
    this.cache.invalidate(blobId);
  }

  private async load(blobId: string): Promise<LocateAnswer> {
    try {
      const raw = await this.tracker.call<unknown>(`/internal/v1/blobs/${blobId}`);
      const parsed = locateResponse.safeParse(raw);
      if (!parsed.success || parsed.data.id !== blobId) throw new Error(`tracker sent an invalid locate answer for ${blobId}`);
      return { found: true, value: parsed.data };
    } catch (error) {
      if (isTrackerAnswer(error, 404)) return { found: false };
      throw error;
    }
  }
}
