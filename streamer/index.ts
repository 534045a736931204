// The streamer role: the HLS edge for rooms (DESIGN.md "Streaming path"). Resolves songs and
// blobs through the tracker (cached, so a tracker outage never stalls a room), reads byte ranges
// from the best replica with a deadline and failover, keeps hot segment ranges in memory, and
// serves the room player. `ktv streamer` and `ktv up` call startStreamer; tests run it as a process.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { safeId } from '../common/contracts.js';
import type { Logger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { ZkPresence } from '../common/zk.js';
import type { Config } from '../config/schema.js';
import { RangeCache } from './cache/range-cache.js';
import { createStreamerMetrics } from './metrics.js';
import { Registration } from './registration.js';
import { CatalogProxy } from './resolve/catalog.js';
import { LocationResolver } from './resolve/locations.js';
import { ManifestResolver } from './resolve/manifests.js';
import { createStreamerHandler } from './server.js';
import { playerDirectory, StaticFiles } from './static.js';
import { FailureReporter } from './upstream/failure-reporter.js';
import { UpstreamReader } from './upstream/reader.js';
import { ReplicaScores } from './upstream/scores.js';

export interface StreamerOptions {
  config: Config;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Tracker base URLs; calls fail over between them, heartbeats go to each. */
  trackers: string[];
  /** The cluster secret (trust zone 1): locate calls, replica reads and reports are signed. */
  secret: string;
  log: Logger;
  /** Registry id; default derived from the public URL (stable across restarts). */
  id?: string;
  /** Where the player files are (default: player/ of this installation). */
  playerDir?: string;
}

export interface StreamerHandle {
  /** Base URL with a trailing slash; the player is at `/`. */
  url: string;
  id: string;
  close(): Promise<void>;
}

/** Reports of the same (blob, node, reason) are not repeated within this window. */
const REPORT_DEDUPE_MS = 5000;
/** A request's headers, and the whole request (our requests have no body), must arrive within these. */
const HEADERS_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Waiting for in-flight responses on close, at most. */
const CLOSE_GRACE_MS = 3000;

function idFromUrl(url: string): string {
  const u = new URL(url);
  const id = `streamer-${u.hostname}-${u.port || (u.protocol === 'https:' ? '443' : '80')}`.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64);
  return id;
}

export async function startStreamer(opts: StreamerOptions): Promise<StreamerHandle> {
  const { config, log } = opts;
  const sc = config.streamer;
  if (opts.secret.length < 16) throw new Error('the cluster secret must be at least 16 characters');
  if (opts.id !== undefined && !safeId.safeParse(opts.id).success) throw new Error('--id must be 1-64 characters of A-Z a-z 0-9 _ . -');
  if (sc.publicUrl) {
    const u = new URL(sc.publicUrl);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.pathname !== '/' || u.search) throw new Error('streamer.publicUrl must be a base URL like http://10.0.0.5:8080/');
  }

  const tracker = new TrackerClient(opts.trackers, opts.secret, sc.trackerTimeoutMs);
  const cache = new RangeCache({ maxBytes: sc.cacheBytes, maxEntryBytes: sc.cacheMaxEntryBytes, inflightMaxBytes: sc.inflightBufferBytes });
  const metrics = createStreamerMetrics(() => cache);
  const manifests = new ManifestResolver(tracker, sc, metrics, log.child({ part: 'resolve' }));
  const locations = new LocationResolver(tracker, sc, metrics, log.child({ part: 'resolve' }));
  const catalog = new CatalogProxy(tracker, sc, metrics, log.child({ part: 'catalog' }));
  const scores = new ReplicaScores();
  const reporter = new FailureReporter(
    tracker,
    { queueMax: sc.readFailureQueueMax, timeoutMs: sc.trackerTimeoutMs, dedupeMs: REPORT_DEDUPE_MS },
    log.child({ part: 'reports' }),
    (result) => metrics.readFailureReports.inc({ result }),
  );
  let id = opts.id ?? '';
  const upstreamOptions = {
    secret: opts.secret,
    timeoutMs: sc.upstreamTimeoutMs,
    minBytesPerS: sc.upstreamMinBytesPerS,
    maxAttempts: sc.upstreamMaxAttempts,
    maxSocketsPerNode: sc.upstreamMaxSocketsPerNode,
    streamerId: id || 'streamer',
  };
  const upstream = new UpstreamReader(upstreamOptions, locations, scores, reporter, metrics, log.child({ part: 'upstream' }));
  const statics = new StaticFiles(opts.playerDir ?? playerDirectory());
  const startedAt = new Date().toISOString();
  let url = '';
  let registration: Registration | undefined;

  const handler = createStreamerHandler({
    config: sc, manifests, locations, catalog, cache, upstream, statics, metrics, log,
    // The registration exists once the server has its address (below); plays before that are none.
    onPlay: (songId) => registration?.countPlay(songId),
    health: () => ({
      ok: true,
      role: 'streamer',
      id,
      url,
      startedAt,
      trackers: opts.trackers,
      servedBytes: metrics.servedTotal(),
      cache: { bytes: cache.bytes, entries: cache.entries, maxBytes: sc.cacheBytes, inflight: cache.inflight },
      manifests: manifests.size,
      locations: locations.size,
      replicas: scores.view(),
      readFailureReports: reporter.counters,
    }),
  });

  const server = http.createServer({ keepAlive: true }, handler);
  // Rooms keep one connection and ask for a segment every few seconds: keep it open past that.
  server.keepAliveTimeout = sc.clientKeepAliveMs;
  // On Node 20 the headers and request deadlines start with the first byte of a request, not at
  // the end of the previous one (checked), so they can be short without cutting idle keep-alive
  // connections; the old "headersTimeout > keepAliveTimeout" advice is for older Node versions.
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  // No progress for this long while a request is open (a client that stopped reading): cut.
  server.timeout = sc.clientIdleTimeoutMs;
  server.maxConnections = sc.maxConnections;
  // A request the HTTP parser refuses (bad characters, huge headers) still gets a JSON error.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({ error: error.code === 'HPE_HEADER_OVERFLOW' ? 'request headers too large' : 'bad request' });
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const bound = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const boundUrl = `http://${bound.includes(':') ? `[${bound}]` : bound}:${address.port}/`;
  url = sc.publicUrl ? new URL(sc.publicUrl).href : boundUrl;
  if (!id) id = idFromUrl(url);
  upstreamOptions.streamerId = id;

  registration = new Registration({
    trackers: opts.trackers,
    secret: opts.secret,
    intervalMs: sc.heartbeatIntervalMs,
    timeoutMs: sc.trackerTimeoutMs,
    body: () => ({ id, url, startedAt, servedBytes: metrics.servedTotal() }),
    log: log.child({ part: 'registration' }),
  });
  registration.start();
  // HA (ha.zk / --zk): an ephemeral znode under streamers/, gone at once on a clean stop.
  const presence = opts.config.ha.zk
    ? new ZkPresence({ connect: opts.config.ha.zk, sessionTimeoutMs: opts.config.ha.sessionTimeoutMs, path: `${opts.config.ha.root}/streamers/${id}`, data: JSON.stringify({ id, url }), log: log.child({ part: 'zk' }) })
    : undefined;
  presence?.start();
  log.info('streamer listening', { url, id, trackers: opts.trackers, cacheBytes: sc.cacheBytes, upstreamTimeoutMs: sc.upstreamTimeoutMs, player: opts.playerDir ?? playerDirectory() });

  let closing: Promise<void> | undefined;
  return {
    url,
    id,
    close: () => {
      closing ??= (async () => {
        presence?.close();
        await registration.stop();
        reporter.close();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
          force.unref();
          server.close(() => {
            clearTimeout(force);
            resolve();
          });
          server.closeIdleConnections();
        });
        upstream.close();
        log.info('streamer stopped');
      })();
      return closing;
    },
  };
}
