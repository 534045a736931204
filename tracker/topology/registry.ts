// Node + disk registry. Each (node, disk) pair is interned once as a small integer "location",
// which is what the blob index stores per replica (2 bytes instead of two strings).
import type { DiskOperatorSetting, DiskProbeStatus, DiskScrubStatus, DiskState, DiskStatus, HeartbeatRequest, NodeState } from '../../common/contracts.js';
import { MAX_LOCATION } from './blobIndex.js';
import { deadForMs, nodeStateAt } from './liveness.js';

export interface DiskRecord {
  id: string;
  location: number;
  state: DiskState;
  reason: string;
  freeBytes: number;
  totalBytes: number;
  usedBytes: number;
  blobs: number;
  /** As the node last reported them (optional: older nodes do not send them). */
  operator?: DiskOperatorSetting;
  probe?: DiskProbeStatus;
  scrub?: DiskScrubStatus;
  verifying?: { checked: number; total: number };
}

export interface NodeRecord {
  id: string;
  url: string;
  bootId: string;
  lastSeenMs: number;
  disks: Map<string, DiskRecord>;
}

export interface LocationInfo {
  node: NodeRecord;
  disk: DiskRecord;
}

/** Reason of a disk its node no longer lists (pulled, replaced, failed to mount after a restart). */
export const UNLISTED_DISK_REASON = 'not listed in the node heartbeat';

export class TooManyLocationsError extends Error {}

export class Registry {
  readonly nodes = new Map<string, NodeRecord>();
  /** Index = location id; 0 is never used (it means "empty" in the blob index). */
  private readonly locations: Array<LocationInfo | undefined> = [undefined];
  /** Bumped on any topology change (new node/disk, state change), for cached scans. */
  version = 0;

  constructor(private readonly deadAfterMs: number) {}

  get locationLimit(): number {
    return this.locations.length;
  }

  location(location: number): LocationInfo | undefined {
    return this.locations[location];
  }

  nodeState(node: NodeRecord, nowMs: number): NodeState {
    return nodeStateAt(node.lastSeenMs, nowMs, this.deadAfterMs);
  }

  nodeDeadForMs(node: NodeRecord, nowMs: number): number {
    return deadForMs(node.lastSeenMs, nowMs, this.deadAfterMs);
  }

  /** Records a heartbeat: url, boot, disk states and space, last-seen time. */
  applyHeartbeat(hb: HeartbeatRequest, nowMs: number): NodeRecord {
    let node = this.nodes.get(hb.nodeId);
    if (!node) {
      node = { id: hb.nodeId, url: hb.url, bootId: hb.bootId, lastSeenMs: nowMs, disks: new Map() };
      this.nodes.set(node.id, node);
      this.version++;
    }
    if (node.url !== hb.url || node.bootId !== hb.bootId) this.version++;
    node.url = hb.url;
    node.bootId = hb.bootId;
    node.lastSeenMs = nowMs;
    const reported = new Set<string>();
    for (const status of hb.disks) {
      reported.add(status.id);
      this.updateDisk(this.ensureDisk(node, status.id), status);
    }
    // A disk the node stopped listing (pulled, failed to mount after a restart) cannot be read.
    for (const disk of node.disks.values()) {
      // (A disk already masked for another reason is relabelled too: operator commands skip it.)
      if (!reported.has(disk.id) && (disk.state !== 'masked' || disk.reason !== UNLISTED_DISK_REASON)) {
        disk.state = 'masked';
        disk.reason = UNLISTED_DISK_REASON;
        this.version++;
      }
    }
    return node;
  }

  /** The disk record, created (state unknown → `suspect`) when an inventory names it first. */
  ensureDisk(node: NodeRecord, diskId: string): DiskRecord {
    let disk = node.disks.get(diskId);
    if (disk) return disk;
    if (this.locations.length > MAX_LOCATION) throw new TooManyLocationsError(`more than ${MAX_LOCATION} node disks registered`);
    disk = { id: diskId, location: this.locations.length, state: 'suspect', reason: 'not yet in a heartbeat', freeBytes: 0, totalBytes: 0, usedBytes: 0, blobs: 0 };
    node.disks.set(diskId, disk);
    this.locations.push({ node, disk });
    this.version++;
    return disk;
  }

  /** 1 for every location on `node`: the mask a full report uses to replace the node's replicas. */
  locationMaskOf(node: NodeRecord): Uint8Array {
    const mask = new Uint8Array(this.locations.length);
    for (const disk of node.disks.values()) mask[disk.location] = 1;
    return mask;
  }

  private updateDisk(disk: DiskRecord, status: DiskStatus): void {
    if (disk.state !== status.state) this.version++;
    disk.state = status.state;
    disk.reason = status.reason;
    disk.freeBytes = status.freeBytes;
    disk.totalBytes = status.totalBytes;
    disk.usedBytes = status.usedBytes;
    disk.blobs = status.blobs;
    disk.operator = status.operator;
    disk.probe = status.probe;
    disk.scrub = status.scrub;
    disk.verifying = status.verifying;
  }
}
