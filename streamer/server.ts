// The streamer's HTTP layer: check the path, pick the route, answer. Decisions live elsewhere:
// resolve/ (manifests, locations, catalog), cache/ (what is kept), upstream/ (which replica).
//
// Paths are checked before anything else: only [A-Za-z0-9_.-/] characters (a legitimate URL of
// ours never needs percent-encoding, so `%2e%2e`, `%2f`, `%00` are refused as such), no `..`,
// no empty or hidden segments. Song ids and file names then match their own patterns before a
// cache or the tracker is asked anything. Every error is JSON `{"error"}`, never a stack.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { drained, HttpError } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { SongManifest } from '../common/contracts.js';
import type { StreamerConfig } from '../config/schema.js';
import { parseRange } from '../storage-node/range.js';
import { RangeCache } from './cache/range-cache.js';
import type { StreamerMetrics } from './metrics.js';
import { canonicalSearch, type CatalogProxy } from './resolve/catalog.js';
import type { LocationResolver } from './resolve/locations.js';
import type { ManifestResolver } from './resolve/manifests.js';
import type { StaticFiles } from './static.js';
import type { UpstreamReader } from './upstream/reader.js';

export const SONG_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const FILE_NAME_RE = /^[a-z0-9_-]{1,32}\.(mp4|m3u8)$/;
const PATH_RE = /^\/[A-Za-z0-9_.\/-]*$/;
const MAX_PATH_CHARS = 1024;
const MAX_QUERY_CHARS = 2048;

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** The master names the song's current version; a new version may replace it. */
const MASTER_CACHE = 'public, max-age=60';
const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, Accept-Ranges, ETag',
};

export interface StreamerDeps {
  config: StreamerConfig;
  manifests: ManifestResolver;
  locations: LocationResolver;
  catalog: CatalogProxy;
  cache: RangeCache;
  upstream: UpstreamReader;
  statics: StaticFiles;
  metrics: StreamerMetrics;
  log: Logger;
  health: () => unknown;
  /** A room started a song (GET master.m3u8): play counts for the tracker (registration.ts). */
  onPlay?: (songId: string) => void;
}

/** Route names for metrics: a fixed set, never raw paths (unbounded label values). */
type RouteName = 'master' | 'playlist' | 'media' | 'songs' | 'song' | 'streamers' | 'player' | 'vendor' | 'health' | 'metrics' | 'preflight' | 'bad-request' | 'other';

export function createStreamerHandler(deps: StreamerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, log } = deps;
  return (req, res) => {
    const route: { name: RouteName } = { name: 'other' };
    res.once('close', () => {
      metrics.requests.inc({ route: route.name, status: res.writableFinished ? String(res.statusCode) : 'aborted' });
    });
    for (const [k, v] of Object.entries(CORS_HEADERS)) res.setHeader(k, v);
    dispatch(deps, req, res, route).catch((error: unknown) => {
      if (error instanceof HttpError) {
        if (error.status >= 500) log.warn('request failed', { route: route.name, status: error.status, error: error.message });
        sendError(res, error.status, error.message);
        return;
      }
      log.error('unhandled error', { route: route.name, error: (error as Error).message });
      sendError(res, 500, 'internal error');
    });
  };
}

export function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendJson(res: ServerResponse, json: string, head: boolean, cacheControl = 'no-cache'): void {
  const body = Buffer.from(json);
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': cacheControl });
  res.end(head ? undefined : body);
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    return tag === etag || tag === '*';
  });
}

async function dispatch(deps: StreamerDeps, req: IncomingMessage, res: ServerResponse, route: { name: RouteName }): Promise<void> {
  const method = req.method ?? 'GET';
  if (method === 'OPTIONS') {
    route.name = 'preflight';
    res.writeHead(204, {
      'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
      'Access-Control-Allow-Headers': 'Range, If-None-Match, Content-Type',
      'Access-Control-Max-Age': '86400',
    });
    res.end();
    return;
  }
  if (method !== 'GET' && method !== 'HEAD') {
    sendError(res, 405, 'only GET and HEAD are served', { Allow: 'GET, HEAD, OPTIONS' });
    return;
  }
  const head = method === 'HEAD';
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? '' : raw.slice(q + 1);
  if (path.length > MAX_PATH_CHARS || query.length > MAX_QUERY_CHARS) {
    route.name = 'bad-request';
    throw new HttpError(414, 'URL too long');
  }
  if (!PATH_RE.test(path) || path.includes('..') || path.includes('//') || path.includes('/.')) {
    route.name = 'bad-request';
    throw new HttpError(400, 'bad path: only letters, digits, _ - . and / are allowed, with no .. or empty segments');
  }
  const parts = path.split('/').slice(1);

  if (parts[0] === 'hls') {
    if (parts.length !== 3) throw new HttpError(404, 'not found (HLS paths are /hls/{songId}/{file})');
    const [, songId, name] = parts as [string, string, string];
    if (!SONG_ID_RE.test(songId)) {
      route.name = 'bad-request';
      throw new HttpError(400, 'song id must be 1-64 characters of A-Z a-z 0-9 _ -');
    }
    if (!FILE_NAME_RE.test(name)) {
      route.name = 'bad-request';
      throw new HttpError(400, 'file name must be 1-32 characters of a-z 0-9 _ - ending in .mp4 or .m3u8');
    }
    route.name = name === 'master.m3u8' ? 'master' : name.endsWith('.m3u8') ? 'playlist' : 'media';
    const answer = await deps.manifests.get(songId);
    if (!answer.found) throw new HttpError(404, 'unknown song');
    if (route.name === 'master') {
      // A room starting the song (a 304 replay too): play counts steer repair order (registration.ts).
      if (!head) deps.onPlay?.(songId);
      return serveMaster(answer.manifest, req, res, head);
    }
    if (route.name === 'playlist') return servePlaylist(deps, answer.manifest, name, req, res, head);
    return serveMedia(deps, answer.manifest, name, req, res, head);
  }

  if (parts[0] === 'api' && parts[1] === 'v1') {
    if (parts[2] === 'songs' && parts.length === 3) {
      route.name = 'songs';
      sendJson(res, await deps.catalog.search(canonicalSearch(query)), head);
      return;
    }
    if (parts[2] === 'songs' && parts.length === 4) {
      route.name = 'song';
      if (!SONG_ID_RE.test(parts[3]!)) throw new HttpError(400, 'song id must be 1-64 characters of A-Z a-z 0-9 _ -');
      const answer = await deps.manifests.get(parts[3]!);
      if (!answer.found) throw new HttpError(404, 'unknown song');
      sendJson(res, answer.json, head);
      return;
    }
    if (parts[2] === 'streamers' && parts.length === 3) {
      route.name = 'streamers';
      sendJson(res, await deps.catalog.streamerList(), head);
      return;
    }
    throw new HttpError(404, 'not found');
  }

  if (path === '/health') {
    route.name = 'health';
    sendJson(res, JSON.stringify(deps.health()), head, 'no-store');
    return;
  }
  if (path === '/metrics') {
    route.name = 'metrics';
    const body = Buffer.from(deps.metrics.registry.render());
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
    res.end(head ? undefined : body);
    return;
  }
  if (parts[0] === 'vendor') {
    route.name = 'vendor';
    if (parts.length !== 2) throw new HttpError(404, 'not found');
    await deps.statics.vendorFile(parts[1]!, res, head);
    return;
  }
  route.name = 'player';
  // `/` is the player; its files are served at `/<file>` and, equally, at `/player/<file>`.
  const relative = parts[0] === 'player' ? parts.slice(1).join('/') : parts.join('/');
  await deps.statics.player(relative, res, head);
}

function serveMaster(m: SongManifest, req: IncomingMessage, res: ServerResponse, head: boolean): void {
  if (!m.masterPlaylist) throw new HttpError(404, 'this song has no master playlist');
  const etag = `"${m.id}-v${m.version}"`;
  const headers = { ETag: etag, 'Cache-Control': MASTER_CACHE, 'Content-Type': PLAYLIST_TYPE };
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  const body = Buffer.from(m.masterPlaylist);
  res.writeHead(200, { ...headers, 'Content-Length': body.length });
  res.end(head ? undefined : body);
}

async function servePlaylist(deps: StreamerDeps, m: SongManifest, name: string, req: IncomingMessage, res: ServerResponse, head: boolean): Promise<void> {
  const r = m.renditions.find((x) => (x.playlistName ?? `${x.role}.m3u8`) === name);
  if (!r || !r.playlistBlob) throw new HttpError(404, `${name} is not a playlist of this song`);
  const etag = `"${r.playlistBlob}"`;
  const headers = { ETag: etag, 'Cache-Control': IMMUTABLE, 'Content-Type': PLAYLIST_TYPE };
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  const { size } = await deps.locations.get(r.playlistBlob);
  if (size > deps.config.maxPlaylistBytes) throw new HttpError(502, `playlist is ${size} bytes, over the ${deps.config.maxPlaylistBytes}-byte limit`);
  if (size === 0) throw new HttpError(502, 'playlist is empty');
  const body = await buffered(deps, r.playlistBlob, 0, size - 1);
  if (res.destroyed) return;
  res.writeHead(200, { ...headers, 'Content-Length': body.length });
  if (head) {
    res.end();
    return;
  }
  res.end(body);
  deps.metrics.servedBytes.inc(undefined, body.length);
}

/** A range through the cache; a range the cache will not hold is read straight into a buffer. */
async function buffered(deps: StreamerDeps, blobId: string, startByte: number, endByte: number): Promise<Buffer> {
  const answer = cached(deps, blobId, startByte, endByte);
  if (typeof answer !== 'string') return (await answer).buffer;
  return deps.upstream.readBuffer(blobId, startByte, endByte);
}

function cached(deps: StreamerDeps, blobId: string, startByte: number, endByte: number): ReturnType<RangeCache['get']> {
  const { cache, metrics, upstream } = deps;
  const answer = cache.get(RangeCache.key(blobId, startByte, endByte), endByte - startByte + 1, () => upstream.readBuffer(blobId, startByte, endByte));
  if (typeof answer === 'string') {
    metrics.cacheBypass.inc({ reason: answer });
    return answer;
  }
  return answer.then((a) => {
    if (a.outcome === 'hit') metrics.cacheHits.inc();
    else if (a.outcome === 'miss') metrics.cacheMisses.inc();
    else metrics.singleFlightJoins.inc();
    return a;
  });
}

async function serveMedia(deps: StreamerDeps, m: SongManifest, name: string, req: IncomingMessage, res: ServerResponse, head: boolean): Promise<void> {
  const r = m.renditions.find((x) => (x.name ?? `${x.role}.mp4`) === name);
  if (!r) throw new HttpError(404, `${name} is not a file of this song`);
  const sizeBytes = r.sizeBytes;
  const etag = `"${r.blob}"`;
  const base: Record<string, string | number> = {
    ETag: etag,
    'Cache-Control': IMMUTABLE,
    'Accept-Ranges': 'bytes',
    'Content-Type': r.role === 'video' ? 'video/mp4' : 'audio/mp4',
  };
  const range = parseRange(req.headers.range, sizeBytes);
  if (range.kind === 'multiple' || range.kind === 'unsatisfiable') {
    sendError(res, 416, range.kind === 'multiple' ? 'one byte range per request (multiple ranges are not served)' : `range not satisfiable for a file of ${sizeBytes} bytes`, {
      'Content-Range': `bytes */${sizeBytes}`,
    });
    return;
  }
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, base).end();
    return;
  }
  const partial = range.kind === 'partial';
  const [startByte, endByte] = partial ? [range.startByte, range.endByte] : [0, sizeBytes - 1];
  const lengthBytes = Math.max(0, endByte - startByte + 1);
  const headers = { ...base, 'Content-Length': lengthBytes, ...(partial ? { 'Content-Range': `bytes ${startByte}-${endByte}/${sizeBytes}` } : {}) };
  const status = partial ? 206 : 200;
  if (head || lengthBytes === 0) {
    res.writeHead(status, headers).end();
    return;
  }
  const answer = cached(deps, r.blob, startByte, endByte);
  if (typeof answer === 'string') {
    await streamThrough(deps, r.blob, startByte, endByte, status, headers, res);
    return;
  }
  const { buffer } = await answer;
  // The client may have gone while we read; the bytes are in the cache for the next one.
  if (res.destroyed) return;
  res.writeHead(status, headers);
  res.end(buffer);
  deps.metrics.servedBytes.inc(undefined, buffer.length);
}


/**
 * A range too large to buffer: upstream chunks go to the client as they come, at the client's
 * pace (memory per request is a few socket buffers). Nothing is sent before the first chunk, so
 * a range no replica can serve is still a clean 502; the reader resumes on another replica after
 * a mid-body failure; only when all fail after bytes went out is the connection cut.
 */
async function streamThrough(deps: StreamerDeps, blobId: string, startByte: number, endByte: number, status: number, headers: Record<string, string | number>, res: ServerResponse): Promise<void> {
  const chunks = deps.upstream.stream(blobId, startByte, endByte);
  try {
    let next = await chunks.next();
    if (res.destroyed) return;
    res.writeHead(status, headers);
    while (!next.done) {
      const ok = res.write(next.value);
      deps.metrics.servedBytes.inc(undefined, next.value.length);
      if (!ok) await drained(res);
      if (res.destroyed) return;
      next = await chunks.next();
    }
    res.end();
  } catch (error) {
    if (!res.headersSent) throw error;
    deps.log.warn('stream cut: no replica could finish the range', { blob: blobId, startByte, endByte, error: (error as Error).message });
    res.destroy();
  } finally {
    await chunks.return(undefined).catch(() => {});
  }
}
