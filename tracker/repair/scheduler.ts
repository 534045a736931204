// Repair scheduler: every repairIntervalMs, find under-replicated blobs and ask a destination
// node to pull a copy from a live replica (node-to-node, verified by hash on the destination).
//
// Order (priority.ts): fewest live copies first, then manifests, then the blobs of the most
// played songs. A masked disk's copies count as missing at once and a dead node's after
// repairGraceMs (liveness.ts), so both simply show up here as under-replicated blobs.
// Pace (budget.ts): a copy starts only when the cluster bucket and the buckets of its source and
// destination nodes allow it; the budget is low in business hours and high in the maintenance
// window. The queue is strict: when the cluster budget says no, nothing behind it starts either
// (a large blob waits for a full bucket instead of being starved by small ones).
// At most repairMaxConcurrent copies in flight; failed copies retried with capped backoff.
//
// Over-replicated extras (a node coming back after its blobs were re-copied, a drained disk the
// operator has not pulled yet) are NOT deleted: deleting is the one irreversible step, and doing
// it safely needs the HA fencing of a later issue. Extras cost disk, not data.
import { z } from 'zod';
import { safeId, type FetchCommand } from '../../common/contracts.js';
import { rpc } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import { trackerSchema } from '../../config/schema.js';
import type { Leadership } from '../leadership.js';
import { isReadableReplica } from '../topology/locate.js';
import type { Topology } from '../topology/topology.js';
import { RateMeter, RepairBudget, type BudgetSettings, type BudgetView } from './budget.js';
import { LostBlobs } from './lost.js';
import { orderRepairQueue, type PlayScores, type RepairItem } from './priority.js';
import { locationCodes, retryDelayMs, scanIndex, type DrainCounts, type ScanResult, type ScanStats } from './scan.js';

const GIB = 1024 ** 3;
/** Most blobs whose retry state is remembered; the oldest are forgotten first (they get rescanned). */
const MAX_RETRY_ENTRIES = 100_000;

/** Budget settings are optional here (older callers, unit tests): the config defaults apply. */
export interface RepairSettings extends Partial<BudgetSettings> {
  replicas: number;
  repairIntervalMs: number;
  repairGraceMs: number;
  repairNewBlobGraceMs: number;
  repairMaxConcurrent: number;
  repairQueueMax: number;
  repairRetryBaseMs: number;
  repairRetryMaxMs: number;
  nodeDeadAfterMs: number;
  rpcTimeoutMs: number;
  /** The storage node's own deadline for a copy; ours is a bit longer so the node answers first. */
  copyTimeoutMsPerGiB: number;
}

/**
 * Sends the fetch command and resolves with the disk the node stored the copy on (its answer may
 * name another disk than the one asked for). Injectable so tests can stand in for storage nodes.
 */
export type SendFetch = (destUrl: string, blobId: string, command: FetchCommand, timeoutMs: number) => Promise<{ diskId?: string }>;

export interface RepairCounters {
  done: number;
  failed: number;
  /** Bytes copied since start. */
  copiedBytes: number;
}

/** Optional collaborators: popularity, the songs of a blob (for lost-blob logs), lost-blob events. */
export interface RepairHooks {
  scores?: PlayScores;
  songsOf?: (blobId: string) => string[];
  onLost?: (count: number) => void;
  /** The local date of a clock value (the maintenance window); tests pass a fixed zone. */
  dateOf?: (nowMs: number) => Date;
}

export interface RepairQueueView {
  queued: number;
  inFlight: number;
  done: number;
  failed: number;
  queuedBytes: number;
  rateBytesPerSec: number;
  etaS: number | null;
  budget: BudgetView;
  copiedBytes: number;
}

/** Lost blobs followed one by one (and listed, up to 100, in the cluster view). */
const MAX_LOST_TRACKED = 1000;

export class RepairScheduler {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAtMs: number;
  private readonly inFlight = new Map<string, { dest: string; sizeBytes: number }>(); // blob id → copy
  private readonly retries = new Map<string, { attempts: number; nextAtMs: number }>();
  /** The last scan and what it depended on: rescanning 1M blobs costs ~11 ms of event loop. */
  private cached:
    | (ScanResult & { maxCandidates: number; indexVersion: number; codes: Uint8Array; nodeOf: Int32Array; draining: Uint8Array })
    | undefined;
  /** The cached scan's candidates in priority order, and what that order depended on. */
  private ordered: { scan: ScanResult; scoresVersion: number; items: RepairItem[] } | undefined;
  readonly counters: RepairCounters = { done: 0, failed: 0, copiedBytes: 0 };
  readonly budget: RepairBudget;
  readonly lost = new LostBlobs(MAX_LOST_TRACKED);
  private readonly rate = new RateMeter();
  private lastSkipLogMs = 0;

  constructor(
    private readonly topology: Topology,
    private readonly leadership: Leadership,
    private readonly settings: RepairSettings,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly rng: () => number,
    private readonly sendFetch: SendFetch,
    private readonly hooks: RepairHooks = {},
  ) {
    this.startedAtMs = now();
    const d = trackerSchema.parse({});
    this.budget = new RepairBudget(
      {
        repairClusterBytesPerSec: settings.repairClusterBytesPerSec ?? d.repairClusterBytesPerSec,
        repairNodeBytesPerSec: settings.repairNodeBytesPerSec ?? d.repairNodeBytesPerSec,
        repairMaintenanceClusterBytesPerSec: settings.repairMaintenanceClusterBytesPerSec ?? d.repairMaintenanceClusterBytesPerSec,
        repairMaintenanceNodeBytesPerSec: settings.repairMaintenanceNodeBytesPerSec ?? d.repairMaintenanceNodeBytesPerSec,
        maintenanceWindow: settings.maintenanceWindow ?? d.maintenanceWindow,
      },
      this.startedAtMs,
      hooks.dateOf,
    );
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.settings.repairIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Counts for the cluster view and metrics (rescanned only if something they depend on changed). */
  stats(): ScanStats {
    return this.scan(this.now(), 0).stats;
  }

  /** Drain progress per location and node ordinal, from the same (cached) scan. */
  drainCounts(): DrainCounts {
    return this.scan(this.now(), 0).drain;
  }

  /** The repair queue for the cluster view and metrics. */
  queueView(): RepairQueueView {
    const nowMs = this.now();
    const { stats, needRepairBytes } = this.scan(nowMs, 0);
    let inFlightBytes = 0;
    for (const c of this.inFlight.values()) inFlightBytes += c.sizeBytes;
    const queuedBytes = Math.max(0, needRepairBytes - inFlightBytes);
    const budget = this.budget.view(nowMs);
    const rateBytesPerSec = Math.round(this.rate.rate(nowMs));
    const speed = rateBytesPerSec > 0 ? rateBytesPerSec : budget.clusterBytesPerSec;
    return {
      queued: Math.max(0, stats.needRepair - this.inFlight.size),
      inFlight: this.inFlight.size,
      done: this.counters.done,
      failed: this.counters.failed,
      queuedBytes,
      rateBytesPerSec,
      etaS: queuedBytes > 0 && speed > 0 ? Math.ceil(queuedBytes / speed) : null,
      budget,
      copiedBytes: this.counters.copiedBytes,
    };
  }

  /** The current queue in priority order (at most repairQueueMax). For tests and the view. */
  queue(): RepairItem[] {
    return this.orderedQueue(this.scan(this.now(), this.settings.repairQueueMax));
  }

  /** One round: scan, then start copies in priority order within the budget and the concurrency limit. Public for tests and benches. */
  tick(): void {
    const nowMs = this.now();
    this.hooks.scores?.refresh(nowMs);
    const scan = this.scan(nowMs, this.settings.repairQueueMax);
    if (!this.leadership.leader) return; // only the active tracker mutates (DESIGN.md HA)
    if (!this.mayRepair(nowMs)) return;
    if (scan.candidates.length === 0 && this.inFlight.size === 0) return;
    this.rate.busy(nowMs);
    const { index } = this.topology;
    for (const item of this.orderedQueue(scan)) {
      if (this.inFlight.size >= this.settings.repairMaxConcurrent) break;
      const id = index.idOf(item.slot);
      if (this.inFlight.has(id)) continue;
      const retry = this.retries.get(id);
      if (retry && retry.nextAtMs > nowMs) continue;
      // Strict order: when the cluster budget refuses this blob, nothing behind it starts.
      if (!this.budget.clusterAllows(index.sizeOf(item.slot), nowMs)) break;
      this.tryStart(item.slot, nowMs);
    }
  }

  private orderedQueue(scan: ScanResult): RepairItem[] {
    const scores = this.hooks.scores;
    const scoresVersion = scores?.version ?? 0;
    const o = this.ordered;
    if (o && o.scan === scan && o.scoresVersion === scoresVersion) return o.items;
    const { index } = this.topology;
    const withScores = scores !== undefined && scores.hotBlobs > 0;
    // idOf allocates a string: only when some blob has a score at all (≤ repairQueueMax of them).
    const items = scan.candidates.map((slot, i): RepairItem => ({
      slot,
      live: scan.candidateLive[i]!,
      manifest: index.isManifest(slot),
      score: withScores ? scores.scoreOf(index.idOf(slot)) : 0,
    }));
    orderRepairQueue(items);
    this.ordered = { scan, scoresVersion, items };
    return items;
  }

  /**
   * Right after a tracker start, or while a node's inventory is still arriving, the index does not
   * know every replica: every blob would look under-replicated and we would start a copy storm.
   * (HDFS calls this safe mode.)
   */
  private mayRepair(nowMs: number): boolean {
    let reason = '';
    if (nowMs - this.startedAtMs < this.settings.nodeDeadAfterMs) reason = 'waiting for nodes to check in after start';
    else {
      const pending = this.topology.nodesWithoutInventory(nowMs);
      if (pending.length > 0) reason = `waiting for the inventory of ${pending.map((n) => n.id).join(', ')}`;
    }
    if (reason && nowMs - this.lastSkipLogMs > 10_000) {
      this.lastSkipLogMs = nowMs;
      this.log.debug('repair paused', { reason });
    }
    return reason === '';
  }

  /**
   * A scan depends only on the index and on each location's status code (node alive / waiting /
   * missing, disk state). Both are cheap to compare, so an unchanged cluster costs no rescan:
   * locate requests are not held up behind an 11 ms loop every second.
   */
  private scan(nowMs: number, maxCandidates: number): ScanResult {
    const { registry, index } = this.topology;
    const { codes, nodeOf, draining, nodeCount } = locationCodes(registry, nowMs, this.settings.repairGraceMs);
    const c = this.cached;
    // Besides those, time matters only when a young blob ages out of its grace (validUntilMs).
    if (
      c && nowMs < c.validUntilMs && c.indexVersion === index.version && c.maxCandidates >= maxCandidates &&
      sameArray(c.codes, codes) && sameArray(c.nodeOf, nodeOf) && sameArray(c.draining, draining)
    ) {
      return c;
    }
    // Keep the queue's depth when only the view asks (maxCandidates 0) so the next tick reuses this scan.
    const depth = Math.max(maxCandidates, c?.maxCandidates ?? 0);
    const result = scanIndex(index, codes, nodeOf, {
      replicas: this.settings.replicas, maxCandidates: depth, nowMs, newBlobGraceMs: this.settings.repairNewBlobGraceMs,
      maxLost: MAX_LOST_TRACKED, draining, nodeCount,
    });
    this.cached = { ...result, maxCandidates: depth, indexVersion: index.version, codes, nodeOf, draining };
    this.noteLost(result, nowMs);
    return this.cached;
  }

  /** Lost blobs: loud once when lost, quiet again when a copy reappears (lost.ts). */
  private noteLost(result: ScanResult, nowMs: number): void {
    const { index } = this.topology;
    const current = result.lostSlots.map((slot) => ({ id: index.idOf(slot), sizeBytes: index.sizeOf(slot), kind: index.kindOf(slot) }));
    const songsOf = this.hooks.songsOf ?? (() => []);
    const events = this.lost.update(current, result.stats.lost, nowMs, songsOf);
    for (const l of events.lost) {
      this.log.error('BLOB LOST: no readable copy on any node', { blob: l.id, kind: l.kind, sizeBytes: l.sizeBytes, songs: l.songs });
    }
    if (events.lost.length > 0) this.hooks.onLost?.(events.lost.length);
    if (events.untracked > 0 && events.lost.length > 0) {
      this.log.error('more blobs lost than are listed one by one', { lost: result.stats.lost, listed: this.lost.size });
    }
    for (const r of events.recovered) {
      this.log.info('lost blob readable again', { blob: r.id, songs: r.songs, lostForMs: nowMs - r.sinceMs });
    }
  }

  private tryStart(slot: number, nowMs: number): void {
    const { index } = this.topology;
    const id = index.idOf(slot);
    if (this.inFlight.has(id)) return;
    const retry = this.retries.get(id);
    if (retry && retry.nextAtMs > nowMs) return;
    const sizeBytes = index.sizeOf(slot);
    const replicas = this.topology.replicasOfSlot(slot, nowMs);
    const readable = replicas.filter(isReadableReplica);
    if (readable.length === 0) return;
    // The source the destination tries first is the one charged: the best-ranked with budget left.
    const source = readable.find((r) => this.budget.nodeAllows(r.nodeId, sizeBytes, nowMs));
    if (!source) return; // every source node is at its budget: a later round
    const sources = [...new Set([source.url, ...readable.map((r) => r.url)])];
    // Every node that holds a copy, dead or alive, is excluded: a dead one may come back with it.
    const holders = new Set(replicas.map((r) => r.nodeId));
    // So is every node at its budget (as a destination it would be charged too).
    const excluded = new Set(holders);
    let overBudget = 0;
    for (const node of this.topology.registry.nodes.values()) {
      if (!holders.has(node.id) && !this.budget.nodeAllows(node.id, sizeBytes, nowMs)) {
        excluded.add(node.id);
        overBudget++;
      }
    }
    const placed = this.topology.place(sizeBytes, 1, excluded, nowMs, this.rng);
    if (!placed.ok) {
      if (overBudget > 0) return; // a destination may have budget again next round
      if (nowMs - this.lastSkipLogMs > 10_000) {
        this.lastSkipLogMs = nowMs;
        this.log.warn('repair has no destination', { blob: id, reason: placed.reason });
      }
      return;
    }
    const dest = placed.targets[0]!;
    const kind = index.kindOf(slot);
    const command: FetchCommand = { sources: sources.slice(0, 16), size: sizeBytes, kind, disk: dest.diskId, epoch: this.leadership.epoch };
    const timeoutMs = Math.ceil(this.settings.rpcTimeoutMs + this.settings.copyTimeoutMsPerGiB * (1 + sizeBytes / GIB));
    this.inFlight.set(id, { dest: dest.nodeId, sizeBytes });
    this.budget.charge(source.nodeId, dest.nodeId, sizeBytes, nowMs);
    this.sendFetch(dest.url, id, command, timeoutMs).then(
      (answer) => {
        this.counters.done++;
        this.counters.copiedBytes += sizeBytes;
        this.rate.add(sizeBytes, this.now());
        this.retries.delete(id);
        // The destination verified and stored it (2xx). Record it now, on the disk the node says
        // it used, so the next round does not copy it again; the node's change report confirms.
        // Without a disk in the answer, record nothing and leave the blob alone until that report.
        const disk = answer.diskId ? this.topology.registry.nodes.get(dest.nodeId)?.disks.get(answer.diskId) : undefined;
        if (disk) index.addReplica(id, sizeBytes, kind, disk.location);
        else this.retries.set(id, { attempts: 0, nextAtMs: this.now() + this.settings.repairRetryMaxMs });
        this.log.info('replica copied', { blob: id, to: dest.nodeId, disk: answer.diskId ?? '?', sizeBytes });
      },
      (error: unknown) => {
        this.counters.failed++;
        const attempts = (this.retries.get(id)?.attempts ?? 0) + 1;
        this.retries.delete(id); // re-insert at the end: Map order is age order for eviction
        this.retries.set(id, { attempts, nextAtMs: this.now() + retryDelayMs(attempts, this.settings.repairRetryBaseMs, this.settings.repairRetryMaxMs) });
        if (this.retries.size > MAX_RETRY_ENTRIES) this.retries.delete(this.retries.keys().next().value!);
        this.log.warn('replica copy failed', { blob: id, to: dest.nodeId, attempts, error: (error as Error).message });
      },
    ).finally(() => this.inFlight.delete(id));
  }
}

const fetchAnswer = z.object({ disk: safeId.optional() }).loose();

/** The real transport: signed POST {dest}/internal/v1/blobs/{id}/fetch. */
export function httpSendFetch(secret: string): SendFetch {
  return async (destUrl, blobId, command, timeoutMs) => {
    const answer = fetchAnswer.safeParse(await rpc(destUrl, `/internal/v1/blobs/${blobId}/fetch`, { method: 'POST', body: command, secret, timeoutMs }));
    return { diskId: answer.success ? answer.data.disk : undefined };
  };
}

function sameArray(a: Uint8Array | Int32Array, b: Uint8Array | Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
