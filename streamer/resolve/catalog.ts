// Catalog answers for room boxes: search (GET /api/v1/songs?…) and the streamer list, proxied to
// the tracker with a short cache and served stale while no tracker answers.
import { HttpError } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import type { TrackerClient } from '../../common/tracker-client.js';
import type { StreamerConfig } from '../../config/schema.js';
import type { StreamerMetrics } from '../metrics.js';
import { RefreshingCache } from './refreshing-cache.js';
import { isTrackerAnswer, trackerMessage, unavailable } from './tracker-errors.js';

/** Search parameters passed on (the tracker's); others are dropped so they cannot split the cache. */
const SEARCH_PARAMS = ['q', 'limit', 'language', 'artist', 'sort'] as const;
/** Longest parameter value passed on; the tracker applies its own, possibly stricter, limits. */
const PARAM_MAX_CHARS = 300;

type Answer = { ok: true; json: string } | { ok: false; status: number; error: string };

/** The canonical query string of a search, or a 400. */
export function canonicalSearch(query: string): string {
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(query);
  } catch {
    throw new HttpError(400, 'bad query string');
  }
  const out = new URLSearchParams();
  for (const name of SEARCH_PARAMS) {
    const values = params.getAll(name);
    if (values.length === 0) continue;
    if (values.length > 1) throw new HttpError(400, `${name} must be given once`);
    const v = values[0]!;
    if (v.length > PARAM_MAX_CHARS) throw new HttpError(400, `${name} is longer than ${PARAM_MAX_CHARS} characters`);
    out.set(name, v);
  }
  return out.toString();
}

export class CatalogProxy {
  private readonly searches: RefreshingCache<Answer>;
  private readonly streamers: RefreshingCache<Answer>;

  constructor(private readonly tracker: TrackerClient, config: StreamerConfig, private readonly metrics: StreamerMetrics, private readonly log: Logger) {
    const onRefreshError = (what: string) => (key: string, error: unknown): void => {
      this.metrics.trackerErrors.inc({ what });
      this.log.debug('catalog refresh failed; serving the cached answer', { what, key, error: (error as Error).message });
    };
    this.searches = new RefreshingCache<Answer>((qs) => this.load(`/api/v1/songs${qs ? `?${qs}` : ''}`), {
      maxEntries: config.searchCacheEntries,
      ttlMs: () => config.searchTtlMs,
      retryMs: Math.min(config.refreshRetryMs, config.searchTtlMs),
      onRefreshError: onRefreshError('search'),
    });
    this.streamers = new RefreshingCache<Answer>(() => this.load('/api/v1/streamers'), {
      maxEntries: 1,
      ttlMs: () => config.streamersTtlMs,
      retryMs: Math.min(config.refreshRetryMs, config.streamersTtlMs),
      onRefreshError: onRefreshError('streamers'),
    });
  }

  /** JSON text of the tracker's answer. */
  search(canonicalQuery: string): Promise<string> {
    return this.answer(this.searches, canonicalQuery, 'search');
  }

  streamerList(): Promise<string> {
    return this.answer(this.streamers, 'all', 'streamers');
  }

  private async answer(cache: RefreshingCache<Answer>, key: string, what: string): Promise<string> {
    let answer: Answer;
    try {
      const got = await cache.getWithState(key);
      if (got.state === 'stale') this.metrics.staleAnswers.inc({ what });
      answer = got.value;
    } catch (error) {
      this.metrics.trackerErrors.inc({ what });
      this.log.warn('catalog unavailable', { what, error: (error as Error).message });
      throw unavailable(what);
    }
    if (!answer.ok) throw new HttpError(answer.status, answer.error);
    return answer.json;
  }

  private async load(path: string): Promise<Answer> {
    try {
      return { ok: true, json: JSON.stringify(await this.tracker.call<unknown>(path, { signed: false })) };
    } catch (error) {
      // The tracker's refusal (a bad limit) is an answer: cached like one, passed on as is.
      if (isTrackerAnswer(error)) return { ok: false, status: error.status, error: trackerMessage(error) };
      throw error;
    }
  }
}
