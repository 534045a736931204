// Fills the catalog: when a manifest blob appears in the index, fetch it from a live replica,
// check its hash and schema, and upsert it. Bounded: a fixed number of fetches in flight, a
// bounded queue (overflow is recovered by a sweep over the index), a size cap and a deadline
// per fetch, capped backoff for manifests that have no reachable replica yet.
import { createHash } from 'node:crypto';
import { songManifestSchema } from '../../common/contracts.js';
import { signedBlobHeaders } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import { retryDelayMs } from '../repair/scan.js';
import type { Catalog } from './store.js';

export interface FetcherSettings {
  concurrency: number;
  queueMax: number;
  maxManifestBytes: number;
  rpcTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface ManifestSources {
  /** Size and readable node base URLs (best first) of a blob, or undefined if it left the index. */
  sourcesOf(blobId: string): { sizeBytes: number; urls: string[] } | undefined;
  /** Every manifest blob id in the index (for the overflow sweep). */
  allManifests(): Iterable<string>;
}

/** Downloads one blob, up to `maxBytes`. Injectable: tests stand in for storage nodes. */
export type BlobGetter = (nodeUrl: string, blobId: string, maxBytes: number, signal: AbortSignal) => Promise<Buffer>;

class PermanentError extends Error {}

export class ManifestFetcher {
  private readonly pending = new Map<string, { attempts: number; nextAtMs: number }>();
  private readonly running = new Set<string>();
  private overflowed = false;
  private pumpScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly settled = new Set<Promise<void>>();
  readonly counters = { fetched: 0, rejected: 0, failed: 0 };

  constructor(
    private readonly catalog: Catalog,
    private readonly sources: ManifestSources,
    private readonly settings: FetcherSettings,
    private readonly getBlob: BlobGetter,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.abort.abort();
    await Promise.allSettled([...this.settled]);
  }

  get queued(): number {
    return this.pending.size;
  }

  /** A manifest blob gained a replica. Cheap: called from inside report handling. */
  note(blobId: string): void {
    if (this.catalog.knows(blobId) || this.running.has(blobId)) return;
    const p = this.pending.get(blobId);
    if (p) {
      p.nextAtMs = 0; // a new replica appeared: worth trying now
    } else if (this.pending.size >= this.settings.queueMax) {
      this.overflowed = true;
      return;
    } else {
      this.pending.set(blobId, { attempts: 0, nextAtMs: 0 });
    }
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  tick(): void {
    if (this.overflowed && this.pending.size < this.settings.queueMax / 2) {
      this.overflowed = false;
      for (const id of this.sources.allManifests()) this.note(id);
    }
    this.pump();
  }

  private pump(): void {
    if (this.abort.signal.aborted) return;
    const nowMs = this.now();
    for (const [id, p] of this.pending) {
      if (this.running.size >= this.settings.concurrency) return;
      if (p.nextAtMs > nowMs) continue;
      this.pending.delete(id);
      this.running.add(id);
      const job = this.fetchOne(id, p.attempts).finally(() => {
        this.running.delete(id);
        this.settled.delete(job);
        this.pump();
      });
      this.settled.add(job);
    }
  }

  private async fetchOne(id: string, attempts: number): Promise<void> {
    try {
      const src = this.sources.sourcesOf(id);
      if (!src) return; // gone from the index; if it comes back, note() queues it again
      if (src.sizeBytes > this.settings.maxManifestBytes) throw new PermanentError(`manifest of ${src.sizeBytes} bytes is over ${this.settings.maxManifestBytes}`);
      if (src.urls.length === 0) throw new Error('no readable replica yet');
      const bytes = await this.download(id, src.urls);
      let parsed: unknown;
      try {
        parsed = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new PermanentError('not JSON');
      }
      const manifest = songManifestSchema.safeParse(parsed);
      if (!manifest.success) throw new PermanentError(`not a song manifest: ${manifest.error.issues[0]?.path.join('.')} ${manifest.error.issues[0]?.message}`);
      this.catalog.upsertManifest(manifest.data, id, bytes.toString('utf8'));
      this.counters.fetched++;
    } catch (error) {
      if (this.abort.signal.aborted) return;
      if (error instanceof PermanentError) {
        // The bytes are verified by their hash, so a bad manifest stays bad: remember, never refetch.
        this.counters.rejected++;
        this.catalog.reject(id, error.message);
        this.log.warn('manifest blob ignored', { blob: id, reason: error.message });
        return;
      }
      this.counters.failed++;
      const next = attempts + 1;
      if (this.pending.size < this.settings.queueMax) {
        this.pending.set(id, { attempts: next, nextAtMs: this.now() + retryDelayMs(next, this.settings.retryBaseMs, this.settings.retryMaxMs) });
      } else {
        this.overflowed = true;
      }
      this.log.debug('manifest fetch failed; will retry', { blob: id, attempts: next, error: (error as Error).message });
    }
  }

  /** Tries each replica in order; a wrong hash on one (a corrupt copy) falls through to the next. */
  private async download(id: string, urls: string[]): Promise<Buffer> {
    let lastError: unknown;
    for (const url of urls) {
      try {
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.settings.rpcTimeoutMs)]);
        const bytes = await this.getBlob(url, id, this.settings.maxManifestBytes, signal);
        const hash = createHash('sha256').update(bytes).digest('hex');
        if (hash !== id) throw new Error(`replica at ${url} has sha256 ${hash}`);
        return bytes;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }
}

/** The real transport: signed GET {node}/internal/v1/blobs/{id}, body capped at `maxBytes`. */
export function httpBlobGetter(secret: string): BlobGetter {
  return async (nodeUrl, blobId, maxBytes, signal) => {
    const url = new URL(`/internal/v1/blobs/${blobId}`, nodeUrl);
    const response = await fetch(url, { headers: signedBlobHeaders(secret, 'GET', url), signal });
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      throw new Error(`GET ${url.href}: ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > maxBytes) {
      await response.body.cancel().catch(() => undefined);
      throw new Error(`GET ${url.href}: ${declared} bytes is over ${maxBytes}`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of response.body) {
      total += (chunk as Uint8Array).byteLength;
      if (total > maxBytes) throw new Error(`GET ${url.href}: body over ${maxBytes} bytes`);
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
    return Buffer.concat(chunks);
  };
}
