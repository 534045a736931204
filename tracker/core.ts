// The tracker without HTTP: topology (registry, index, placement), repair, catalog. The server is
// a thin layer over these methods, and benchmarks drive them in-process.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChangeReport, ClusterView, DiskOperatorCommand, DiskStatus, DrainProgress, HeartbeatRequest, HeartbeatResponse, InventoryBatch, LocateResponse, ReadFailureReport, SongSummary, StreamerHeartbeat, StreamerInfo } from '../common/contracts.js';
import { diskStatus } from '../common/contracts.js';
import { rpc, RpcError } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/schema.js';
import { httpBlobGetter, ManifestFetcher, type BlobGetter } from './catalog/fetcher.js';
import type { SearchParams } from './catalog/search.js';
import { openCatalog, type Catalog } from './catalog/store.js';
import { GcScheduler, httpSendDelete, type SendDelete } from './gc/scheduler.js';
import { fenced, standaloneLeadership, type Leadership } from './leadership.js';
import { createTrackerMetrics, type TrackerMetrics } from './metrics.js';
import { PlayScores } from './repair/priority.js';
import { httpSendFetch, RepairScheduler, type SendFetch } from './repair/scheduler.js';
import { SuspectDisks } from './streamers/suspect.js';
import type { PlacementResult } from './topology/placement.js';
import type { SyncAnswer } from './topology/reports.js';
import { Topology } from './topology/topology.js';
import { UNLISTED_DISK_REASON } from './topology/registry.js';
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
  /** The local date of a clock value (maintenance window); default `new Date(ms)`. */
  dateOf?: (nowMs: number) => Date;
}

/** An operator command for a node the tracker does not know (HTTP 404). */
export class UnknownTargetError extends Error {}
/** The node did not answer or refused (HTTP 502, with the node's words). */
export class NodeUnreachableError extends Error {}

/** The answer of an operator command: what each disk says now, or why it failed. */
export interface DiskOperatorAnswer {
  node: string;
  disks: Array<{ disk: string; ok: boolean; status?: DiskStatus; error?: string }>;
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
  /** Read failures in the current window per disk, and the suspect signals for heartbeat answers. */
  readonly suspects: SuspectDisks;
  /** Popularity (play counts) for repair order; persisted in the catalog's SQLite file. */
  readonly plays: PlayScores;
  private readonly secret: string;
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
    this.secret = o.secret;
    this.suspects = new SuspectDisks(t);
    this.streamers = new StreamerRegistry({ deadAfterMs: t.streamerDeadAfterMs, forgetAfterMs: t.streamerForgetAfterMs, maxEntries: t.streamerRegistryMax });
    if (!o.catalogPath) mkdirSync(o.dataDir, { recursive: true });
    this.catalog = openCatalog(o.catalogPath ?? join(o.dataDir, 'tracker.sqlite'), o.log.child({ part: 'catalog' }));
    this.topology = new Topology(
      { ...t, expectedBlobs: o.expectedBlobs, now: this.now },
      o.log.child({ part: 'topology' }),
      (blobId) => this.fetcher.note(blobId),
    );
    const index = this.topology.index;
    this.plays = new PlayScores(this.catalog);
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
      fenced(this.leadership, o.sendFetch ?? httpSendFetch(o.secret)),
      {
        scores: this.plays,
        songsOf: (blobId) => this.catalog.songsOfBlob(blobId),
        onLost: (count) => this.metrics.blobsLostTotal.inc(undefined, count),
        dateOf: o.dateOf,
      },
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
      fenced(this.leadership, o.sendDelete ?? httpSendDelete(o.secret)),
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
    const nowMs = this.now();
    const { needFullReport } = this.topology.reports.heartbeat(hb, nowMs);
    const answer: HeartbeatResponse = { needFullReport, epoch: this.leadership.epoch, leader: this.leadership.leader };
    const suspectDisks = this.suspects.takeFor(hb.nodeId, nowMs);
    if (suspectDisks.length > 0) {
      answer.suspectDisks = suspectDisks;
      this.log.warn('asking a node to check disks streamers cannot read', { node: hb.nodeId, disks: suspectDisks });
    }
    return answer;
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

  /** HA presence: the node's ZooKeeper znode is gone, so it is dead from now on (until it heartbeats again). */
  nodeLeft(nodeId: string): void {
    const node = this.topology.registry.nodes.get(nodeId);
    const nowMs = this.now();
    if (!node || this.topology.registry.nodeState(node, nowMs) !== 'alive') return;
    node.lastSeenMs = nowMs - this.config.tracker.nodeDeadAfterMs - 1;
    this.log.warn('storage node left ZooKeeper: dead now', { node: nodeId });
  }

  streamerHeartbeat(hb: StreamerHeartbeat): void {
    const nowMs = this.now();
    this.streamers.heartbeat(hb, nowMs);
    if (hb.plays && hb.plays.length > 0) this.plays.add(hb.plays, nowMs);
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
    if (labels.disk !== 'unknown') this.suspects.record(report.nodeId, report.diskId, report.reason, this.now());
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

  /**
   * Operator command (`ktv disk …`, `ktv node drain`): forwarded, signed, to the node's
   * POST /internal/v1/disks/{disk}/operator; `diskId` undefined means every disk of the node.
   * The node decides and keeps the setting (it must survive a tracker outage); we relay its answer.
   */
  async diskOperator(nodeId: string, diskId: string | undefined, command: DiskOperatorCommand): Promise<DiskOperatorAnswer> {
    const node = this.topology.registry.nodes.get(nodeId);
    if (!node) throw new UnknownTargetError(`unknown node "${nodeId}"`);
    if (diskId !== undefined && !node.disks.has(diskId)) throw new UnknownTargetError(`node "${nodeId}" has no disk "${diskId}"`);
    // Node-wide: the disks the node lists now (one it stopped listing would only answer 404).
    let diskIds = diskId !== undefined ? [diskId] : [...node.disks.values()].filter((d) => d.reason !== UNLISTED_DISK_REASON).map((d) => d.id);
    if (diskIds.length === 0) throw new UnknownTargetError(`node "${nodeId}" reported no disks`);
    if (diskId === undefined && command.action === 'unmask') {
      // Node undrain: clear only what a drain set, not a disk the operator masked on purpose
      // (a node that does not report the setting gets the command for every disk).
      const disks = [...node.disks.values()];
      if (disks.some((d) => d.operator !== undefined)) diskIds = disks.filter((d) => d.operator === 'drain').map((d) => d.id);
      if (diskIds.length === 0) return { node: nodeId, disks: [] };
    }
    const answer: DiskOperatorAnswer = { node: nodeId, disks: [] };
    for (const disk of diskIds) {
      try {
        const raw = await rpc(node.url, `/internal/v1/disks/${encodeURIComponent(disk)}/operator`, {
          method: 'POST', body: command, secret: this.secret, timeoutMs: this.config.rpcTimeoutMs,
        });
        const parsed = diskStatus.safeParse(raw);
        answer.disks.push(parsed.success ? { disk, ok: true, status: parsed.data } : { disk, ok: true });
      } catch (error) {
        const e = error as RpcError;
        const why = e.status === 0 ? `node ${nodeId} unreachable at ${node.url}: ${e.message}` : `node ${nodeId} refused: ${e.message}`;
        answer.disks.push({ disk, ok: false, error: why });
      }
    }
    this.log.info('operator command forwarded', { node: nodeId, action: command.action, note: command.note, disks: answer.disks.map((d) => ({ disk: d.disk, ok: d.ok, error: d.error })) });
    if (answer.disks.every((d) => !d.ok)) throw new NodeUnreachableError(answer.disks.map((d) => `${d.disk}: ${d.error}`).join('; '));
    return answer;
  }

  clusterView(): ClusterView {
    const nowMs = this.now();
    const { registry } = this.topology;
    const stats = this.repair.stats();
    const drain = this.repair.drainCounts();
    const repair = this.repair.queueView();
    const progress = (blobs: number, bytes: number): DrainProgress => ({ remainingBlobs: blobs, remainingBytes: bytes, safeToRemove: blobs === 0 });
    const ordinals = new Map([...registry.nodes.keys()].map((id, i) => [id, i]));
    return {
      leader: this.leadership.leader,
      epoch: this.leadership.epoch,
      nodes: [...registry.nodes.values()]
        .sort((a, b) => (a.id < b.id ? -1 : 1))
        .map((n) => {
          const disks = [...n.disks.values()];
          const ordinal = ordinals.get(n.id)!;
          // A node is draining when its disks are: a masked one among them holds nothing readable
          // (its blobs already left the index), so it neither blocks nor counts.
          const allDraining = disks.some((d) => d.state === 'draining') && disks.every((d) => d.state === 'draining' || d.state === 'masked');
          return {
            id: n.id,
            url: n.url,
            state: registry.nodeState(n, nowMs),
            lastHeartbeatAgoMs: Math.max(0, nowMs - n.lastSeenMs),
            disks: disks.map((d) => ({
              id: d.id, state: d.state, reason: d.reason, freeBytes: d.freeBytes, totalBytes: d.totalBytes, blobs: d.blobs,
              ...(d.operator !== undefined ? { operator: d.operator } : {}),
              ...(d.probe ? { probe: d.probe } : {}),
              ...(d.scrub ? { scrub: d.scrub } : {}),
              ...(d.verifying ? { verifying: d.verifying } : {}),
              readFailures: this.suspects.countFor(n.id, d.id, nowMs),
              ...(d.state === 'draining' ? { drain: progress(drain.diskBlobs[d.location] ?? 0, drain.diskBytes[d.location] ?? 0) } : {}),
            })),
            ...(allDraining ? { drain: progress(drain.nodeBlobs[ordinal] ?? 0, drain.nodeBytes[ordinal] ?? 0) } : {}),
          };
        }),
      blobs: { total: stats.total, underReplicated: stats.underReplicated, lost: stats.lost, bytes: stats.bytes },
      repair,
      lostBlobs: this.repair.lost.list(nowMs, 100),
      songs: this.catalog.songCount,
      gc: this.gc.view(),
      streamers: this.listStreamers(),
    };
  }
}
