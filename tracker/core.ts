// The tracker without HTTP: topology (registry, index, placement), repair, catalog. The server is
// a thin layer over these methods, and benchmarks drive them in-process.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChangeReport, ClusterView, HeartbeatRequest, HeartbeatResponse, InventoryBatch, LocateResponse, ReadFailureReport, SongSummary, StreamerHeartbeat, StreamerInfo } from '../common/contracts.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/schema.js';
import { httpBlobGetter, ManifestFetcher, type BlobGetter } from './catalog/fetcher.js';
import type { SearchParams } from './catalog/search.js';
import { openCatalog, type Catalog } from './catalog/store.js';
import { GcScheduler, httpSendDelete, type SendDelete } from './gc/scheduler.js';
import { standaloneLeadership, type Leadership } from './leadership.js';
import { createTrackerMetrics, type TrackerMetrics } from './metrics.js';
import { httpSendFetch, RepairScheduler, type SendFetch } from './repair/scheduler.js';
import type { PlacementResult } from './topology/placement.js';
import type { SyncAnswer } from './topology/reports.js';
import { Topology } from './topology/topology.js';
import { ReadFailureCounts, StreamerRegistry } from './streamers/registry.js';

export interface CoreOptions {
  config: Config;
  dataDir: string;
  secret: string;
  log: Logger;
  /** SQLite file of the catalog; default `${dataDir}/tracker.sqlite`. ':memory:' in unit tests. */
  catalogPath?: string;
  leadership?: Leadership;
  now?: () => number;
  rng?: () => number;
  /** Transports, replaceable where a test stands in for storage nodes. */
  sendFetch?: SendFetch;
  getBlob?: BlobGetter;
  sendDelete?: SendDelete;
  /** Size the blob index for this many blobs up front (benchmarks). */
  expectedBlobs?: number;
}

/** Housekeeping period: drop idle inventory reports (bounded memory). */
const HOUSEKEEPING_INTERVAL_MS = 5000;

export class TrackerCore {
  readonly topology: Topology;
  readonly catalog: Catalog;
  readonly fetcher: ManifestFetcher;
  readonly repair: RepairScheduler;
  readonly gc: GcScheduler;
  readonly leadership: Leadership;
  readonly metrics: TrackerMetrics;
  readonly now: () => number;
  /** Streamers that registered (heartbeats); soft state, rebuilt within one heartbeat period. */
  readonly streamers: StreamerRegistry;
  /** Replica read failures reported by streamers, per node and disk. */
  readonly readFailures = new ReadFailureCounts();
  private readonly config: Config;
  private readonly log: Logger;
  private readonly rng: () => number;
  private housekeeping: NodeJS.Timeout | undefined;

  constructor(o: CoreOptions) {
    const t = o.config.tracker;
    this.config = o.config;
    this.now = o.now ?? Date.now;
    this.rng = o.rng ?? Math.random;
    this.leadership = o.leadership ?? standaloneLeadership();
    this.log = o.log;
    this.streamers = new StreamerRegistry({ deadAfterMs: t.streamerDeadAfterMs, forgetAfterMs: t.streamerForgetAfterMs, maxEntries: t.streamerRegistryMax });
    if (!o.catalogPath) mkdirSync(o.dataDir, { recursive: true });
    this.catalog = openCatalog(o.catalogPath ?? join(o.dataDir, 'tracker.sqlite'), o.log.child({ part: 'catalog' }));
    this.topology = new Topology(
      { ...t, expectedBlobs: o.expectedBlobs, now: this.now },
      o.log.child({ part: 'topology' }),
      (blobId) => this.fetcher.note(blobId),
    );
    const index = this.topology.index;
    this.fetcher = new ManifestFetcher(
      this.catalog,
      {
        sourcesOf: (id) => this.topology.readableSources(id, this.now()),
        *allManifests() {
          for (let slot = 0; slot < index.slotLimit; slot++) if (index.isUsed(slot) && index.isManifest(slot)) yield index.idOf(slot);
        },
      },
      {
        concurrency: t.manifestFetchConcurrent, queueMax: t.manifestQueueMax, maxManifestBytes: t.maxManifestBytes,
        rpcTimeoutMs: o.config.rpcTimeoutMs, retryBaseMs: t.manifestRetryBaseMs, retryMaxMs: t.manifestRetryMaxMs,
      },
      o.getBlob ?? httpBlobGetter(o.secret),
      o.log.child({ part: 'catalog' }),
      this.now,
    );
    this.repair = new RepairScheduler(
      this.topology,
      this.leadership,
      {
        ...t,
        repairNewBlobGraceMs: t.repairNewBlobGraceMs ?? t.repairGraceMs,
        rpcTimeoutMs: o.config.rpcTimeoutMs,
        copyTimeoutMsPerGiB: o.config.storageNode.copyTimeoutMsPerGiB,
      },
      o.log.child({ part: 'repair' }),
      this.now,
      this.rng,
      o.sendFetch ?? httpSendFetch(o.secret),
    );
    this.metrics = createTrackerMetrics(() => this);
    this.gc = new GcScheduler(
      this.topology,
      this.catalog,
      this.fetcher,
      this.leadership,
      { ...t, rpcTimeoutMs: o.config.rpcTimeoutMs },
      o.log.child({ part: 'gc' }),
      this.now,
      o.sendDelete ?? httpSendDelete(o.secret),
      (sizeBytes, copies) => {
        this.metrics.gcDeletedBlobs.inc();
        this.metrics.gcDeletedBytes.inc(undefined, sizeBytes * copies);
      },
    );
  }

  /** Starts the periodic work (repair, manifest fetching, orphan collection, housekeeping). */
  start(): void {
    this.repair.start();
    this.fetcher.start();
    this.gc.start();
    this.housekeeping = setInterval(() => this.topology.reports.sweep(this.now()), HOUSEKEEPING_INTERVAL_MS);
    this.housekeeping.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.housekeeping);
    this.repair.stop();
    await this.gc.stop();
    await this.fetcher.close();
    await this.leadership.close?.();
    this.catalog.close();
  }

  heartbeat(hb: HeartbeatRequest): HeartbeatResponse {
    const { needFullReport } = this.topology.reports.heartbeat(hb, this.now());
    return { needFullReport, epoch: this.leadership.epoch, leader: this.leadership.leader };
  }

  inventory(batch: InventoryBatch): SyncAnswer {
    return this.topology.reports.inventory(batch, this.now());
  }

  changes(report: ChangeReport): SyncAnswer {
    return this.topology.reports.changes(report, this.now());
  }

  locate(blobId: string): LocateResponse | undefined {
    const started = process.hrtime.bigint();
    const answer = this.topology.locate(blobId, this.now());
    this.metrics.locateSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return answer;
  }

  /** Targets for a new blob of `sizeBytes` (only the leader places: placement is a mutation). */
  place(sizeBytes: number, excludeNodes: readonly string[]): PlacementResult {
    if (!this.leadership.leader) return { ok: false, eligibleNodes: 0, reason: 'this tracker is not the leader' };
    return this.topology.place(sizeBytes, this.config.tracker.replicas, new Set(excludeNodes), this.now(), this.rng);
  }

  streamerHeartbeat(hb: StreamerHeartbeat): void {
    this.streamers.heartbeat(hb, this.now());
  }

  listStreamers(): StreamerInfo[] {
    return this.streamers.list(this.now());
  }

  /** A streamer could not read a replica. Counted and logged; disk masking will use it (DESIGN.md "Health"). */
  readFailure(report: ReadFailureReport): void {
    const { registry } = this.topology;
    const labels = this.readFailures.record(report, (nodeId, diskId) => {
      const node = registry.nodes.get(nodeId);
      return { node: node !== undefined, disk: node?.disks.has(diskId) ?? false };
    });
    this.metrics.readFailures.inc({ ...labels, reason: report.reason });
    this.log.warn('replica read failure reported', {
      blob: report.blobId, node: report.nodeId, disk: report.diskId, reason: report.reason, detail: report.detail, streamer: report.streamerId,
    });
  }

  search(params: SearchParams): SongSummary[] {
    const started = process.hrtime.bigint();
    const songs = this.catalog.search(params);
    this.metrics.searchSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return songs;
  }

  clusterView(): ClusterView {
    const nowMs = this.now();
    const { registry } = this.topology;
    const stats = this.repair.stats();
    return {
      leader: this.leadership.leader,
      epoch: this.leadership.epoch,
      nodes: [...registry.nodes.values()]
        .sort((a, b) => (a.id < b.id ? -1 : 1))
        .map((n) => ({
          id: n.id,
          url: n.url,
          state: registry.nodeState(n, nowMs),
          lastHeartbeatAgoMs: Math.max(0, nowMs - n.lastSeenMs),
          disks: [...n.disks.values()].map((d) => ({
            id: d.id, state: d.state, reason: d.reason, freeBytes: d.freeBytes, totalBytes: d.totalBytes, blobs: d.blobs,
          })),
        })),
      blobs: { total: stats.total, underReplicated: stats.underReplicated, lost: stats.lost, bytes: stats.bytes },
      repair: {
        queued: Math.max(0, stats.needRepair - this.repair.inFlightCount),
        inFlight: this.repair.inFlightCount,
        done: this.repair.counters.done,
        failed: this.repair.counters.failed,
      },
      songs: this.catalog.songCount,
      gc: this.gc.view(),
      streamers: this.listStreamers(),
    };
  }
}
