// Song manifests through the tracker (GET /api/v1/songs/{id}), cached: refreshed in the background
// after manifestTtlMs, kept indefinitely while the tracker is down, unknown ids remembered briefly.
import { songManifestSchema, type SongManifest } from '../../common/contracts.js';
import type { Logger } from '../../common/log.js';
import type { TrackerClient } from '../../common/tracker-client.js';
import type { StreamerConfig } from '../../config/schema.js';
import type { StreamerMetrics } from '../metrics.js';
import { RefreshingCache } from './refreshing-cache.js';
import { isTrackerAnswer, unavailable } from './tracker-errors.js';

export type ManifestAnswer =
  | { found: true; manifest: SongManifest; /** The tracker's JSON, passed on as is (fields we do not parse included). */ json: string }
  | { found: false };

export class ManifestResolver {
  private readonly cache: RefreshingCache<ManifestAnswer>;

  constructor(private readonly tracker: TrackerClient, config: StreamerConfig, private readonly metrics: StreamerMetrics, private readonly log: Logger) {
    this.cache = new RefreshingCache<ManifestAnswer>((id) => this.load(id), {
      maxEntries: config.manifestCacheEntries,
      ttlMs: (answer) => (answer.found ? config.manifestTtlMs : config.missingSongTtlMs),
      retryMs: config.refreshRetryMs,
      onRefreshError: (id, error) => {
        this.metrics.trackerErrors.inc({ what: 'manifest' });
        this.log.debug('manifest refresh failed; serving the cached one', { song: id, error: (error as Error).message });
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  /** Throws HttpError 503 when the song is not cached and no tracker answers. */
  async get(songId: string): Promise<ManifestAnswer> {
    try {
      const { value, state } = await this.cache.getWithState(songId);
      if (state === 'stale') this.metrics.staleAnswers.inc({ what: 'manifest' });
      return value;
    } catch (error) {
      this.metrics.trackerErrors.inc({ what: 'manifest' });
      this.log.warn('manifest unavailable', { song: songId, error: (error as Error).message });
      throw unavailable('song manifest');
    }
  }

  private async load(songId: string): Promise<ManifestAnswer> {
    let raw: unknown;
    try {
      raw = await this.tracker.call<unknown>(`/api/v1/songs/${songId}`, { signed: false });
    } catch (error) {
      if (isTrackerAnswer(error, 404) || isTrackerAnswer(error, 400)) return { found: false };
      throw error;
    }
    const parsed = songManifestSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`tracker sent an invalid manifest for ${songId}`);
    const manifest = parsed.data;
    if (manifest.id !== songId) throw new Error(`tracker sent the manifest of ${manifest.id} for ${songId}`);
    // A standby tracker whose catalog lags must not take a room back to an older version.
    const previous = this.cache.peek(songId);
    if (previous?.found && previous.manifest.version > manifest.version) return previous;
    if (manifest.deleted) return { found: false };
    return { found: true, manifest, json: JSON.stringify(raw) };
  }
}
