// The streamer's Prometheus metrics (GET /metrics). Cache gauges are read from the cache at
// scrape time; counters are bumped on the data path (a Map lookup and an add: cheap).
import { Registry, type Counter, type Histogram } from '../common/metrics.js';
import type { RangeCache } from './cache/range-cache.js';

/** Seconds; brackets a loopback read (sub-ms) up to the 1.5 s upstream deadline. */
const UPSTREAM_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5];

export interface StreamerMetrics {
  registry: Registry;
  requests: Counter;
  servedBytes: Counter;
  cacheHits: Counter;
  cacheMisses: Counter;
  cacheBypass: Counter;
  singleFlightJoins: Counter;
  upstreamRequests: Counter;
  upstreamBytes: Counter;
  upstreamErrors: Counter;
  failovers: Counter;
  upstreamFirstByteSeconds: Histogram;
  trackerErrors: Counter;
  staleAnswers: Counter;
  readFailureReports: Counter;
  /** Total bytes served (heartbeats carry it). */
  servedTotal(): number;
}

export function createStreamerMetrics(cache: () => RangeCache): StreamerMetrics {
  const m = new Registry();
  const servedBytes = m.counter('streamer_served_bytes_total', 'Media and playlist bytes sent to clients');
  const cacheHits = m.counter('streamer_cache_hits_total', 'Range requests answered from the cache');
  const cacheMisses = m.counter('streamer_cache_misses_total', 'Range requests that started an upstream read to fill the cache');
  const cacheBypass = m.counter('streamer_cache_bypass_total', 'Range requests streamed through without the cache, by reason');
  const singleFlightJoins = m.counter('streamer_singleflight_joins_total', 'Range requests that shared an upstream read already in flight');
  m.gauge('streamer_cache_hit_ratio', 'Share of range requests served without an upstream read of their own ((hits + joins) / all)', () => {
    const good = cacheHits.get() + singleFlightJoins.get();
    const all = good + cacheMisses.get() + cacheBypass.get({ reason: 'too-large' }) + cacheBypass.get({ reason: 'inflight-budget' });
    return [[undefined, all === 0 ? 0 : good / all]];
  });
  m.gauge('streamer_cache_bytes', 'Bytes held by the range cache', () => [[undefined, cache().bytes]]);
  m.gauge('streamer_cache_entries', 'Ranges held by the range cache', () => [[undefined, cache().entries]]);
  m.gauge('streamer_cache_evictions', 'Ranges evicted from the cache since start', () => [[undefined, cache().lru.evictions]]);
  m.gauge('streamer_cache_inflight_bytes', 'Bytes being buffered by cold reads right now', () => [[undefined, cache().inflight.bytes]]);
  return {
    registry: m,
    requests: m.counter('streamer_http_requests_total', 'HTTP requests by route and status'),
    servedBytes,
    cacheHits,
    cacheMisses,
    cacheBypass,
    singleFlightJoins,
    upstreamRequests: m.counter('streamer_upstream_requests_total', 'Replica reads started, by storage node'),
    upstreamBytes: m.counter('streamer_upstream_bytes_total', 'Bytes read from storage nodes, by node'),
    upstreamErrors: m.counter('streamer_upstream_errors_total', 'Replica reads that failed, by node and reason'),
    failovers: m.counter('streamer_failovers_total', 'Reads moved to another replica after one failed (in the same client request)'),
    upstreamFirstByteSeconds: m.histogram('streamer_upstream_first_byte_seconds', 'Time to the first byte of a replica read', UPSTREAM_BUCKETS_S),
    trackerErrors: m.counter('streamer_tracker_errors_total', 'Tracker calls that failed, by what was asked'),
    staleAnswers: m.counter('streamer_stale_answers_total', 'Answers served from a cache entry past its TTL, by what'),
    readFailureReports: m.counter('streamer_read_failure_reports_total', 'Read-failure reports to the tracker, by result'),
    servedTotal: () => servedBytes.get(),
  };
}
