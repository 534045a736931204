// Prometheus metrics of the tracker (GET /metrics). Gauges are computed at scrape time from the
// core, so they can never drift from what the cluster view says.
import { DISK_STATES, NODE_STATES } from '../common/contracts.js';
import { Registry as MetricsRegistry, type Counter, type Histogram } from '../common/metrics.js';
import type { TrackerCore } from './core.js';

/** Seconds, Prometheus style; the buckets bracket the 2 ms (locate) and 20 ms (search) targets. */
const LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1];

export interface TrackerMetrics {
  registry: MetricsRegistry;
  httpRequests: Counter;
  searchSeconds: Histogram;
  locateSeconds: Histogram;
  gcDeletedBlobs: Counter;
  gcDeletedBytes: Counter;
  readFailures: Counter;
  blobsLostTotal: Counter;
}

export function createTrackerMetrics(core: () => TrackerCore): TrackerMetrics {
  const m = new MetricsRegistry();
  m.gauge('tracker_nodes', 'Storage nodes by state', () => {
    const nowMs = core().now();
    const counts = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
    for (const n of core().topology.registry.nodes.values()) {
      const s = core().topology.registry.nodeState(n, nowMs);
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    return [...counts].map(([state, v]) => [{ state }, v]);
  });
  m.gauge('tracker_disks', 'Storage node disks by state', () => {
    const counts = new Map<string, number>(DISK_STATES.map((s) => [s, 0]));
    for (const n of core().topology.registry.nodes.values()) for (const d of n.disks.values()) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
    return [...counts].map(([state, v]) => [{ state }, v]);
  });
  m.gauge('tracker_blobs', 'Blobs in the index', () => [[undefined, core().topology.index.size]]);
  m.gauge('tracker_blob_bytes', 'Bytes of distinct blobs in the index (one copy each)', () => [[undefined, core().topology.index.totalBytes]]);
  m.gauge('tracker_blobs_under_replicated', 'Blobs with fewer live copies than the replica target', () => [[undefined, core().repair.stats().underReplicated]]);
  m.gauge('tracker_blobs_lost', 'Blobs with no readable copy', () => [[undefined, core().repair.stats().lost]]);
  m.gauge('tracker_repairs_in_flight', 'Replica copies in progress', () => [[undefined, core().repair.inFlightCount]]);
  m.gauge('tracker_repair_copies', 'Replica copies finished since start, by result', () => [
    [{ result: 'done' }, core().repair.counters.done],
    [{ result: 'failed' }, core().repair.counters.failed],
  ]);
  m.gauge('tracker_repair_queued_blobs', 'Blobs waiting for a repair copy', () => [[undefined, core().repair.queueView().queued]]);
  m.gauge('tracker_repair_queued_bytes', 'Bytes of the blobs waiting for a repair copy', () => [[undefined, core().repair.queueView().queuedBytes]]);
  m.gauge('tracker_repair_rate_bytes_per_second', 'Repair copy throughput over the last minute', () => [[undefined, core().repair.queueView().rateBytesPerSec]]);
  m.gauge('tracker_repair_copied_bytes', 'Bytes copied by repair since start', () => [[undefined, core().repair.counters.copiedBytes]]);
  m.gauge('tracker_repair_budget_bytes_per_second', 'Repair bandwidth budget in force, by scope and window', () => {
    const b = core().repair.queueView().budget;
    return [[{ scope: 'cluster', window: b.window }, b.clusterBytesPerSec], [{ scope: 'node', window: b.window }, b.nodeBytesPerSec]];
  });
  m.gauge('tracker_lost_blobs_listed', 'Lost blobs followed one by one (cluster view lostBlobs)', () => [[undefined, core().repair.lost.size]]);
  m.gauge('tracker_play_scored_blobs', 'Blobs of the most played songs with a repair priority score', () => [[undefined, core().plays.hotBlobs]]);
  m.gauge('tracker_songs', 'Songs in the catalog (not deleted)', () => [[undefined, core().catalog.songCount]]);
  m.gauge('tracker_manifest_fetches', 'Manifest blob fetches since start, by result', () => {
    const c = core().fetcher.counters;
    return [[{ result: 'fetched' }, c.fetched], [{ result: 'rejected' }, c.rejected], [{ result: 'failed' }, c.failed]];
  });
  m.gauge('tracker_manifest_queue', 'Manifest blobs waiting to be fetched', () => [[undefined, core().fetcher.queued]]);
  m.gauge('gc_orphan_blobs', 'Data blobs the last GC pass found unreferenced past the grace (0 while GC is paused)', () => [[undefined, core().gc.view().orphans]]);
  m.gauge('gc_unreferenced_blobs', 'Data blobs no current manifest references, grace not yet over included', () => [[undefined, core().gc.view().unreferenced]]);
  m.gauge('gc_delete_failures', 'Orphan deletes with at least one node failing, since start', () => [[undefined, core().gc.counters.failed]]);
  m.gauge('tracker_streamers', 'Registered streamers by state', () => {
    const counts = new Map<string, number>([['alive', 0], ['dead', 0]]);
    for (const s of core().listStreamers()) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
    return [...counts].map(([state, v]) => [{ state }, v]);
  });
  return {
    registry: m,
    httpRequests: m.counter('tracker_http_requests_total', 'HTTP requests by route and status'),
    searchSeconds: m.histogram('tracker_search_seconds', 'Catalog search time', LATENCY_BUCKETS_S),
    locateSeconds: m.histogram('tracker_locate_seconds', 'Blob locate time', LATENCY_BUCKETS_S),
    gcDeletedBlobs: m.counter('gc_deleted_blobs_total', 'Orphan data blobs deleted by GC'),
    gcDeletedBytes: m.counter('gc_deleted_bytes_total', 'Disk bytes freed by GC (blob size × copies removed)'),
    readFailures: m.counter('tracker_read_failures_total', 'Replica read failures reported by streamers, by node, disk and reason'),
    blobsLostTotal: m.counter('tracker_blobs_lost_total', 'Times a blob was found with no readable copy (each logged at error level)'),
  };
}
