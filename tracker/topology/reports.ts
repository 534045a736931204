// Applies storage-node reports to the registry and the blob index.
//
// Full report: batches are applied to the index as they arrive (those replicas exist on the
// node), and every (blob, location) seen is remembered compactly. On the final batch, in one
// synchronous step, all of the node's replicas are detached and the remembered ones re-attached,
// so blobs the node no longer has vanish, and a reader never sees a half-replaced node.
// Changes that arrive while a report is in flight are buffered and replayed after it.
import type { BlobKind, ChangeReport, HeartbeatRequest, InventoryBatch } from '../../common/contracts.js';
import type { Logger } from '../../common/log.js';
import type { BlobIndex } from './blobIndex.js';
import type { NodeRecord, Registry } from './registry.js';
import { decideChanges, heartbeatNeedsFullReport } from './sequence.js';

export interface ReportLimits {
  inventoryReportIdleMs: number;
  inventoryReportMaxBlobs: number;
  changeBufferMaxEntries: number;
}

export interface SyncAnswer {
  ok: boolean;
  needFullReport: boolean;
}

export class UnknownNodeError extends Error {}
export class ReportTooLargeError extends Error {}

/** (slot, generation, location) triples seen in a report, in growable typed arrays. */
class SeenList {
  slots = new Int32Array(1024);
  generations = new Uint32Array(1024);
  locations = new Uint16Array(1024);
  count = 0;
  push(slot: number, generation: number, location: number): void {
    if (this.count === this.slots.length) {
      const n = this.slots.length * 2;
      const s = new Int32Array(n);
      s.set(this.slots);
      const g = new Uint32Array(n);
      g.set(this.generations);
      const l = new Uint16Array(n);
      l.set(this.locations);
      this.slots = s;
      this.generations = g;
      this.locations = l;
    }
    this.slots[this.count] = slot;
    this.generations[this.count] = generation;
    this.locations[this.count] = location;
    this.count++;
  }
}

interface PendingReport {
  reportId: string;
  bootId: string;
  changeSeq: number;
  nextPart: number;
  lastBatchMs: number;
  seen: SeenList;
  buffered: ChangeReport[];
  bufferedEntries: number;
  bufferOverflowed: boolean;
}

interface NodeSync {
  applied: { bootId: string; changeSeq: number } | null;
  needFull: boolean;
  prevHeartbeatSeq: number;
  prevHeartbeatBoot: string;
  report: PendingReport | null;
}

export class NodeReports {
  private readonly syncs = new Map<string, NodeSync>();

  constructor(
    private readonly registry: Registry,
    private readonly index: BlobIndex,
    private readonly limits: ReportLimits,
    private readonly log: Logger,
    /** Called when a manifest blob gains a replica (the catalog fetches unknown ones). */
    private readonly onManifestReplica: (blobId: string) => void,
  ) {}

  /** True once a complete inventory of the node's current boot has been applied. */
  hasCompleteInventory(node: NodeRecord): boolean {
    const sync = this.syncs.get(node.id);
    return !!sync?.applied && sync.applied.bootId === node.bootId;
  }

  heartbeat(hb: HeartbeatRequest, nowMs: number): { needFullReport: boolean } {
    const node = this.registry.applyHeartbeat(hb, nowMs);
    const sync = this.syncOf(node.id);
    this.dropIdleReport(node.id, sync, nowMs);
    const needFullReport = heartbeatNeedsFullReport(
      {
        applied: sync.applied,
        needFull: sync.needFull,
        prevHeartbeatSeq: sync.prevHeartbeatBoot === hb.bootId ? sync.prevHeartbeatSeq : -1,
        reportInProgress: sync.report !== null && sync.report.bootId === hb.bootId,
      },
      hb.bootId,
      hb.changeSeq,
    );
    sync.prevHeartbeatSeq = hb.changeSeq;
    sync.prevHeartbeatBoot = hb.bootId;
    return { needFullReport };
  }

  inventory(batch: InventoryBatch, nowMs: number): SyncAnswer {
    const node = this.registry.nodes.get(batch.nodeId);
    if (!node) throw new UnknownNodeError(`unknown node ${batch.nodeId}: send a heartbeat first`);
    const sync = this.syncOf(node.id);
    this.dropIdleReport(node.id, sync, nowMs);
    let report = sync.report;
    if (!report || report.reportId !== batch.reportId) {
      // Only a first part starts a report: a late batch of an abandoned report must not kill the new one.
      if (batch.part !== 0) return { ok: false, needFullReport: true };
      if (report) this.log.info('inventory report replaced by a newer one', { node: node.id, old: report.reportId, new: batch.reportId });
      report = {
        reportId: batch.reportId, bootId: batch.bootId, changeSeq: batch.changeSeq, nextPart: 0, lastBatchMs: nowMs,
        seen: new SeenList(), buffered: [], bufferedEntries: 0, bufferOverflowed: false,
      };
      sync.report = report;
    }
    if (batch.part < report.nextPart) return { ok: true, needFullReport: false }; // a resent batch
    if (batch.part > report.nextPart || batch.bootId !== report.bootId || batch.changeSeq !== report.changeSeq) {
      this.log.warn('inventory report out of order; dropped', { node: node.id, report: report.reportId, part: batch.part, expected: report.nextPart });
      sync.report = null;
      sync.needFull = true;
      return { ok: false, needFullReport: true };
    }
    let entries = 0;
    for (const d of batch.disks) entries += d.blobs.length;
    if (report.seen.count + entries > this.limits.inventoryReportMaxBlobs) {
      sync.report = null;
      throw new ReportTooLargeError(`inventory report over ${this.limits.inventoryReportMaxBlobs} blobs`);
    }
    for (const d of batch.disks) {
      const location = this.registry.ensureDisk(node, d.id).location;
      for (const [id, sizeBytes, kind] of d.blobs) {
        const r = this.index.addReplica(id, sizeBytes, kind, location);
        report.seen.push(r.slot, this.index.generationOf(r.slot), location);
        if (r.added && kind === 'manifest') this.onManifestReplica(id);
      }
    }
    report.nextPart++;
    report.lastBatchMs = nowMs;
    if (batch.final) this.finishReport(node, sync, report);
    return { ok: true, needFullReport: false };
  }

  changes(change: ChangeReport, nowMs: number): SyncAnswer {
    const node = this.registry.nodes.get(change.nodeId);
    if (!node) return { ok: true, needFullReport: true };
    const sync = this.syncOf(node.id);
    this.dropIdleReport(node.id, sync, nowMs);
    const report = sync.report;
    if (report && report.bootId === change.bootId) {
      if (report.bufferedEntries + change.changes.length > this.limits.changeBufferMaxEntries) {
        report.bufferOverflowed = true; // replaying a partial buffer would leave a gap: ask again after
      } else {
        report.buffered.push(change);
        report.bufferedEntries += change.changes.length;
      }
      return { ok: true, needFullReport: false };
    }
    if (!sync.applied || sync.applied.bootId !== change.bootId) return { ok: true, needFullReport: true };
    this.applyChanges(node, sync, change);
    return { ok: true, needFullReport: sync.needFull };
  }

  /** Drops reports of nodes that stopped sending (bounds memory; the node resends on request). */
  sweep(nowMs: number): void {
    for (const [nodeId, sync] of this.syncs) this.dropIdleReport(nodeId, sync, nowMs);
  }

  private applyChanges(node: NodeRecord, sync: NodeSync, change: ChangeReport): void {
    const applied = sync.applied!;
    const decision = decideChanges(applied.changeSeq, change.fromSeq, change.changes.length);
    if (decision.action === 'duplicate') return;
    if (decision.action === 'gap') {
      this.log.info('change gap; asking for a full report', { node: node.id, applied: applied.changeSeq, fromSeq: change.fromSeq });
      sync.needFull = true;
      return;
    }
    for (let i = decision.skip; i < change.changes.length; i++) {
      const c = change.changes[i]!;
      const location = this.registry.ensureDisk(node, c.disk).location;
      if (c.op === 'add') this.addReplica(c.blob, c.size, c.kind, location);
      else this.index.removeReplica(c.blob, location);
    }
    applied.changeSeq = change.fromSeq + change.changes.length - 1;
  }

  private addReplica(id: string, sizeBytes: number, kind: BlobKind, location: number): void {
    const r = this.index.addReplica(id, sizeBytes, kind, location);
    if (r.added && kind === 'manifest') this.onManifestReplica(id);
  }

  private finishReport(node: NodeRecord, sync: NodeSync, report: PendingReport): void {
    const emptied = this.index.detachLocations(this.registry.locationMaskOf(node));
    const seen = report.seen;
    for (let i = 0; i < seen.count; i++) this.index.attachToSlot(seen.slots[i]!, seen.generations[i]!, seen.locations[i]!);
    for (const slot of emptied) this.index.freeIfEmpty(slot);
    sync.applied = { bootId: report.bootId, changeSeq: report.changeSeq };
    sync.needFull = report.bufferOverflowed;
    sync.report = null;
    report.buffered.sort((a, b) => a.fromSeq - b.fromSeq);
    for (const change of report.buffered) this.applyChanges(node, sync, change);
    this.log.info('inventory applied', { node: node.id, blobs: seen.count, changeSeq: sync.applied.changeSeq, replayedChanges: report.bufferedEntries });
  }

  private dropIdleReport(nodeId: string, sync: NodeSync, nowMs: number): void {
    if (sync.report && nowMs - sync.report.lastBatchMs > this.limits.inventoryReportIdleMs) {
      this.log.warn('inventory report went idle; dropped', { node: nodeId, report: sync.report.reportId });
      sync.report = null;
    }
  }

  private syncOf(nodeId: string): NodeSync {
    let sync = this.syncs.get(nodeId);
    if (!sync) {
      sync = { applied: null, needFull: false, prevHeartbeatSeq: -1, prevHeartbeatBoot: '', report: null };
      this.syncs.set(nodeId, sync);
    }
    return sync;
  }
}
