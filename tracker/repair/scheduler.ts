// Repair scheduler: every repairIntervalMs, find under-replicated blobs and ask a destination
// node to pull a copy from a live replica (node-to-node, verified by hash on the destination).
//
// Simple case for now (a later issue adds masking priorities, popularity and bandwidth budgets):
// fewest live copies first, at most repairMaxConcurrent copies in flight, failed copies retried
// with capped exponential backoff. Over-replicated extras (a node coming back after its blobs
// were re-copied) are NOT deleted yet: deleting is the one irreversible step, and doing it safely
// needs the epoch fencing and the masking rules of that later issue. Extras cost disk, not data.
import { z } from 'zod';
import { safeId, type FetchCommand } from '../../common/contracts.js';
import { rpc } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import type { Leadership } from '../leadership.js';
import { isReadableReplica } from '../topology/locate.js';
import type { Topology } from '../topology/topology.js';
import { locationCodes, retryDelayMs, scanIndex, type ScanResult, type ScanStats } from './scan.js';

const GIB = 1024 ** 3;
/** Most blobs whose retry state is remembered; the oldest are forgotten first (they get rescanned). */
const MAX_RETRY_ENTRIES = 100_000;

export interface RepairSettings {
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
}

export class RepairScheduler {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAtMs: number;
  private readonly inFlight = new Map<string, string>(); // blob id → destination node id
  private readonly retries = new Map<string, { attempts: number; nextAtMs: number }>();
  /** The last scan and what it depended on: rescanning 1M blobs costs ~11 ms of event loop. */
  private cached:
    | { stats: ScanStats; candidates: number[]; validUntilMs: number; maxCandidates: number; indexVersion: number; codes: Uint8Array; nodeOf: Int32Array }
    | undefined;
  readonly counters: RepairCounters = { done: 0, failed: 0 };
  private lastSkipLogMs = 0;

  constructor(
    private readonly topology: Topology,
    private readonly leadership: Leadership,
    private readonly settings: RepairSettings,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly rng: () => number,
    private readonly sendFetch: SendFetch,
  ) {
    this.startedAtMs = now();
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

  /** One round: scan, then start copies up to the concurrency limit. Public for tests and benches. */
  tick(): void {
    const nowMs = this.now();
    const { candidates } = this.scan(nowMs, this.settings.repairQueueMax);
    if (!this.leadership.leader) return; // only the active tracker mutates (DESIGN.md HA)
    if (!this.mayRepair(nowMs)) return;
    for (const slot of candidates) {
      if (this.inFlight.size >= this.settings.repairMaxConcurrent) break;
      this.tryStart(slot, nowMs);
    }
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
    const { codes, nodeOf } = locationCodes(registry, nowMs, this.settings.repairGraceMs);
    const c = this.cached;
    // Besides those, time matters only when a young blob ages out of its grace (validUntilMs).
    if (c && nowMs < c.validUntilMs && c.indexVersion === index.version && c.maxCandidates >= maxCandidates && sameArray(c.codes, codes) && sameArray(c.nodeOf, nodeOf)) {
      return c;
    }
    const result = scanIndex(index, codes, nodeOf, { replicas: this.settings.replicas, maxCandidates, nowMs, newBlobGraceMs: this.settings.repairNewBlobGraceMs });
    this.cached = { ...result, maxCandidates, indexVersion: index.version, codes, nodeOf };
    return result;
  }

  private tryStart(slot: number, nowMs: number): void {
    const { index } = this.topology;
    const id = index.idOf(slot);
    if (this.inFlight.has(id)) return;
    const retry = this.retries.get(id);
    if (retry && retry.nextAtMs > nowMs) return;
    const replicas = this.topology.replicasOfSlot(slot, nowMs);
    const sources = [...new Set(replicas.filter(isReadableReplica).map((r) => r.url))];
    if (sources.length === 0) return;
    // Every node that holds a copy, dead or alive, is excluded: a dead one may come back with it.
    const holders = new Set(replicas.map((r) => r.nodeId));
    const sizeBytes = index.sizeOf(slot);
    const placed = this.topology.place(sizeBytes, 1, holders, nowMs, this.rng);
    if (!placed.ok) {
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
    this.inFlight.set(id, dest.nodeId);
    this.sendFetch(dest.url, id, command, timeoutMs).then(
      (answer) => {
        this.counters.done++;
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
