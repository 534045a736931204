// Orphan-blob collection: every gcIntervalMs, one pass over the index decides which data blobs
// no current manifest references (orphans.ts has the rule and the preconditions), and the leader
// sends a signed DELETE with its epoch to every node holding a copy. The node's change report
// then takes the replica out of the index, as for any removal (nodes are the truth).
//
// Back of the envelope (100,000 songs, ~700,000 blobs): building the reference set reads every
// current manifest once (~1 s of JSON.parse), so it is rebuilt only when the catalog's winners
// change, a page of songs per event-loop turn; the index pass costs ~0.3 s of CPU (one id string
// per blob), a chunk of slots per turn. Neither holds the loop for more than a few ms, so locate
// and search keep their latency while GC runs.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { z } from 'zod';
import type { DeleteCommand } from '../../common/contracts.js';
import { rpc, RpcError } from '../../common/http.js';
import type { Logger } from '../../common/log.js';
import type { ManifestFetcher } from '../catalog/fetcher.js';
import type { Catalog } from '../catalog/store.js';
import type { Leadership } from '../leadership.js';
import type { Topology } from '../topology/topology.js';
import { findOrphans, gcBlockedReason, ReferenceSet, referencesOf, type GcBlob, type GcPreconditions } from './orphans.js';

/** Index slots examined per event-loop turn. */
const SCAN_CHUNK_SLOTS = 16_384;
/** Songs whose manifest is read per event-loop turn while building the reference set. */
const REFERENCE_PAGE_SONGS = 500;
/** Unreferenced blobs whose grace clock is kept (~100 bytes each); more wait for a later pass. */
const MAX_TRACKED_UNREFERENCED = 200_000;
/** Blobs being deleted at once (each is one DELETE per holding node). */
const DELETE_CONCURRENT = 4;
/** A blob whose DELETE was sent is not sent again for this many intervals (its removal report is on its way). */
const RESEND_AFTER_INTERVALS = 10;

export interface GcSettings {
  gcEnabled: boolean;
  gcGraceMs: number;
  gcIntervalMs: number;
  gcMaxDeletesPerTick: number;
  nodeDeadAfterMs: number;
  rpcTimeoutMs: number;
}

/** Sends the delete; resolves with the files removed (0 when the node no longer had it). Injectable for tests. */
export type SendDelete = (nodeUrl: string, blobId: string, command: DeleteCommand, timeoutMs: number) => Promise<{ deleted: number }>;

export interface GcView {
  /** Orphans found by the last pass (deleted or about to be, unless gcEnabled is false). */
  orphans: number;
  /** Data blobs no current manifest references, still within the grace included. */
  unreferenced: number;
  /** Blobs deleted since this tracker started, and the disk bytes that freed (all copies). */
  deleted: number;
  deletedBytes: number;
  /** ISO time of the last pass that was not blocked; null before the first. */
  lastRunAt: string | null;
  /** Why the last pass decided nothing ('' when it ran). */
  blocked: string;
}

export interface GcCounters {
  deleted: number;
  deletedBytes: number;
  failed: number;
}

interface References {
  catalogVersion: number;
  set: ReferenceSet;
}

export class GcScheduler {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAtMs: number;
  private running: Promise<void> | undefined;
  private stopped = false;
  private references: References | undefined;
  private unreferencedSinceMs = new Map<string, number>();
  /** Blob id → when its DELETE was sent (bounded: pruned every pass, at most maxDeletes × RESEND_AFTER_INTERVALS). */
  private readonly sentAtMs = new Map<string, number>();
  private last = { orphans: 0, unreferenced: 0, lastRunAtMs: 0, blocked: 'not run yet' };
  readonly counters: GcCounters = { deleted: 0, deletedBytes: 0, failed: 0 };

  constructor(
    private readonly topology: Topology,
    private readonly catalog: Catalog,
    private readonly fetcher: ManifestFetcher,
    private readonly leadership: Leadership,
    private readonly settings: GcSettings,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly sendDelete: SendDelete,
    /** Called per deleted blob (metrics). */
    private readonly onDeleted: (sizeBytes: number, copies: number) => void = () => undefined,
  ) {
    this.startedAtMs = now();
  }

  /** Passes run even with gcEnabled false: they count orphans (for `ktv status`) and delete nothing. */
  start(): void {
    this.timer = setInterval(() => void this.tick(), this.settings.gcIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress (the catalog must outlive it). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  view(): GcView {
    return {
      orphans: this.last.orphans,
      unreferenced: this.last.unreferenced,
      deleted: this.counters.deleted,
      deletedBytes: this.counters.deletedBytes,
      lastRunAt: this.last.lastRunAtMs ? new Date(this.last.lastRunAtMs).toISOString() : null,
      blocked: this.last.blocked,
    };
  }

  /** One pass; a pass still running makes this a no-op. Public for tests. */
  tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.pass()
      .catch((error: unknown) => this.log.error('gc pass failed', { error: (error as Error).message }))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  preconditions(nowMs: number): GcPreconditions {
    const { registry, reports } = this.topology;
    return {
      leader: this.leadership.leader,
      upForMs: nowMs - this.startedAtMs,
      nodeDeadAfterMs: this.settings.nodeDeadAfterMs,
      nodes: [...registry.nodes.values()].map((n) => ({
        id: n.id,
        alive: registry.nodeState(n, nowMs) === 'alive',
        inventoryComplete: reports.hasCompleteInventory(n),
        maskedDisks: [...n.disks.values()].filter((d) => d.state === 'masked').length,
      })),
      manifestsPending: this.fetcher.queued,
    };
  }

  private async pass(): Promise<void> {
    const blockedReason = gcBlockedReason(this.preconditions(this.now()));
    if (blockedReason) return this.block(blockedReason);
    const refs = await this.currentReferences();
    if (!refs) return this.block('the catalog changed while reading it');
    const decided = await this.scan(refs);
    if (!decided) return;
    if (!this.settings.gcEnabled || decided.length === 0) return;
    await this.deleteAll(decided, refs);
  }

  /** The reference set for the catalog as it is now (cached per catalog version), or undefined if it kept changing. */
  private async currentReferences(): Promise<References | undefined> {
    const version = this.catalog.version;
    if (this.references?.catalogVersion === version) return this.references;
    const set = new ReferenceSet();
    let afterRow = 0;
    for (;;) {
      const page = this.catalog.liveManifestsAfter(afterRow, REFERENCE_PAGE_SONGS);
      for (const { row, json } of page) {
        afterRow = row;
        for (const id of referencesOf(JSON.parse(json) as Parameters<typeof referencesOf>[0])) set.add(id);
      }
      if (page.length < REFERENCE_PAGE_SONGS) break;
      await nextTurn();
      // A winner changed under us: a page already read may be stale. Try again next pass.
      if (this.stopped || this.catalog.version !== version) return undefined;
    }
    this.references = { catalogVersion: version, set };
    return this.references;
  }

  /** One pass over the index, a chunk per turn. Returns the orphans to delete, or undefined if blocked. */
  private async scan(refs: References): Promise<GcBlob[] | undefined> {
    const { index } = this.topology;
    const previous = this.unreferencedSinceMs;
    const since = new Map<string, number>();
    const orphans: GcBlob[] = [];
    let orphanCount = 0;
    const nowMs = this.now();
    const sentBefore = nowMs - RESEND_AFTER_INTERVALS * this.settings.gcIntervalMs;
    for (const [id, atMs] of this.sentAtMs) if (atMs < sentBefore) this.sentAtMs.delete(id);
    for (let start = 0; start < index.slotLimit; start += SCAN_CHUNK_SLOTS) {
      if (start > 0) {
        await nextTurn();
        if (this.stopped) return undefined;
      }
      const { addedAtMs } = index.scanView(); // re-read each turn: the arrays are replaced when the index grows
      const blobs: GcBlob[] = [];
      const end = Math.min(index.slotLimit, start + SCAN_CHUNK_SLOTS);
      for (let slot = start; slot < end; slot++) {
        if (!index.isUsed(slot)) continue;
        blobs.push({ id: index.idOf(slot), kind: index.kindOf(slot), sizeBytes: index.sizeOf(slot), firstSeenMs: addedAtMs[slot]! });
      }
      const d = findOrphans({
        // Taken again per chunk: a node dying or the catalog changing mid-pass stops the pass.
        preconditions: this.preconditions(this.now()),
        blobs,
        isReferenced: (id) => refs.set.has(id),
        isKnownManifest: (id) => this.catalog.knows(id),
        unreferencedSinceMs: previous,
        nowMs,
        graceMs: this.settings.gcGraceMs,
        maxOrphans: this.settings.gcMaxDeletesPerTick - orphans.length,
        isBeingDeleted: (id) => this.sentAtMs.has(id),
        maxTracked: MAX_TRACKED_UNREFERENCED - since.size,
      });
      if (d.blocked) {
        this.block(d.blocked);
        return undefined;
      }
      if (this.catalog.version !== refs.catalogVersion) {
        this.block('the catalog changed during the pass');
        return undefined;
      }
      for (const [id, ms] of d.unreferencedSinceMs) since.set(id, ms);
      orphanCount += d.orphanCount;
      orphans.push(...d.orphans);
    }
    this.unreferencedSinceMs = since;
    this.last = { orphans: orphanCount, unreferenced: since.size, lastRunAtMs: nowMs, blocked: '' };
    if (orphanCount > 0) this.log.info('gc pass', { orphans: orphanCount, unreferenced: since.size, deleting: this.settings.gcEnabled ? orphans.length : 0 });
    return orphans;
  }

  private async deleteAll(orphans: GcBlob[], refs: References): Promise<void> {
    const queue = [...orphans];
    const worker = async (): Promise<void> => {
      for (let b = queue.shift(); b; b = queue.shift()) {
        if (this.stopped) return;
        // Checked again right before each delete: the pass yielded, the world may have moved.
        const reason = gcBlockedReason(this.preconditions(this.now())) ?? (this.catalog.version !== refs.catalogVersion ? 'the catalog changed' : undefined);
        if (reason) {
          this.log.info('gc deletes stopped', { reason, left: queue.length + 1 });
          return;
        }
        await this.deleteOne(b);
      }
    };
    await Promise.all(Array.from({ length: DELETE_CONCURRENT }, worker));
  }

  private async deleteOne(b: GcBlob): Promise<void> {
    const nowMs = this.now();
    const slot = this.topology.index.find(b.id);
    // Gone already, or it left the index and came back (a new upload of the same bytes): not now.
    if (slot < 0 || this.topology.index.scanView().addedAtMs[slot] !== b.firstSeenMs) return;
    const nodes = new Map<string, string>(); // node id → url; the command without `disk` removes every copy on the node
    for (const r of this.topology.replicasOfSlot(slot, nowMs)) nodes.set(r.nodeId, r.url);
    this.sentAtMs.set(b.id, nowMs);
    const command: DeleteCommand = { epoch: this.leadership.epoch };
    const results = await Promise.allSettled(
      [...nodes].map(async ([nodeId, url]) => ({ nodeId, ...(await this.sendDelete(url, b.id, command, this.settings.rpcTimeoutMs)) })),
    );
    let copies = 0;
    const failures: string[] = [];
    for (const r of results) {
      if (r.status === 'fulfilled') copies += r.value.deleted;
      else failures.push((r.reason as Error).message);
    }
    if (failures.length > 0) {
      this.counters.failed++;
      this.log.warn('orphan blob delete failed', { blob: b.id, sizeBytes: b.sizeBytes, errors: failures });
    }
    if (copies > 0) {
      this.counters.deleted++;
      this.counters.deletedBytes += b.sizeBytes * copies;
      this.onDeleted(b.sizeBytes, copies);
      // What an operator looks for when a blob is missing: which, how big, from where, how old.
      this.log.info('orphan blob deleted', {
        blob: b.id, sizeBytes: b.sizeBytes, copies, nodes: [...nodes.keys()], firstSeenAgoMs: nowMs - b.firstSeenMs, epoch: command.epoch,
      });
    }
  }

  private block(reason: string): void {
    // Any doubt restarts every grace clock: a blob is only collected after a full grace of passes that could see everything.
    this.unreferencedSinceMs = new Map();
    if (reason !== this.last.blocked) this.log.debug('gc paused', { reason });
    this.last = { ...this.last, orphans: 0, unreferenced: 0, blocked: reason };
  }
}

const deleteAnswer = z.object({ deleted: z.number().int().nonnegative() }).loose();

/** The real transport: signed DELETE {node}/internal/v1/blobs/{id} with {epoch}; a 404 means already gone. */
export function httpSendDelete(secret: string): SendDelete {
  return async (nodeUrl, blobId, command, timeoutMs) => {
    try {
      const answer = deleteAnswer.safeParse(await rpc(nodeUrl, `/internal/v1/blobs/${blobId}`, { method: 'DELETE', body: command, secret, timeoutMs }));
      return { deleted: answer.success ? answer.data.deleted : 0 };
    } catch (error) {
      if (error instanceof RpcError && error.status === 404) return { deleted: 0 };
      throw error;
    }
  };
}
