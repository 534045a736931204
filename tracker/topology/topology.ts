// The topology as the rest of the tracker sees it: who is where, where a blob lives, where a new
// copy may go. No HTTP here; the server and the repair scheduler call in.
import type { BlobKind, LocateResponse, ReplicaInfo } from '../../common/contracts.js';
import type { Logger } from '../../common/log.js';
import { BlobIndex } from './blobIndex.js';
import { isReadableReplica, rankReplicas, type RankedReplica } from './locate.js';
import { choosePlacement, type PlacementCandidate, type PlacementResult } from './placement.js';
import { Registry, type NodeRecord } from './registry.js';
import { NodeReports, type ReportLimits } from './reports.js';

export interface TopologyOptions extends ReportLimits {
  nodeDeadAfterMs: number;
  placementFreeFloorBytes: number;
  /** Expected blob count, to size the index once instead of growing through many copies. */
  expectedBlobs?: number;
  now?: () => number;
}

export interface ReplicaLocation extends ReplicaInfo {
  location: number;
}

export class Topology {
  readonly registry: Registry;
  readonly index: BlobIndex;
  readonly reports: NodeReports;

  constructor(private readonly options: TopologyOptions, log: Logger, onManifestReplica: (blobId: string) => void) {
    this.registry = new Registry(options.nodeDeadAfterMs);
    this.index = new BlobIndex(options.expectedBlobs ?? 1024, options.now);
    this.reports = new NodeReports(this.registry, this.index, options, log, onManifestReplica);
  }

  /** Replicas of a slot, best first (see rankReplicas). */
  replicasOfSlot(slot: number, nowMs: number): ReplicaLocation[] {
    const out: Array<ReplicaLocation & RankedReplica> = [];
    const n = this.index.replicaCount(slot);
    for (let i = 0; i < n; i++) {
      const location = this.index.replicaAt(slot, i);
      const info = this.registry.location(location);
      if (!info) continue;
      out.push({
        nodeId: info.node.id,
        url: info.node.url,
        diskId: info.disk.id,
        nodeState: this.registry.nodeState(info.node, nowMs),
        diskState: info.disk.state,
        freeBytes: info.disk.freeBytes,
        location,
      });
    }
    return rankReplicas(out).map(({ freeBytes: _free, ...r }) => r);
  }

  locate(id: string, nowMs: number): LocateResponse | undefined {
    const slot = this.index.find(id);
    if (slot < 0) return undefined;
    const replicas = this.replicasOfSlot(slot, nowMs).map(({ location: _l, ...r }) => r);
    return { id, size: this.index.sizeOf(slot), kind: this.index.kindOf(slot), replicas };
  }

  /** Base URLs of nodes a blob can be read from now, best first (for copies and manifest fetches). */
  readableSources(id: string, nowMs: number): { sizeBytes: number; kind: BlobKind; urls: string[] } | undefined {
    const slot = this.index.find(id);
    if (slot < 0) return undefined;
    const urls = this.replicasOfSlot(slot, nowMs).filter(isReadableReplica).map((r) => r.url);
    return { sizeBytes: this.index.sizeOf(slot), kind: this.index.kindOf(slot), urls: [...new Set(urls)] };
  }

  placementCandidates(nowMs: number, excludeNodes: ReadonlySet<string>): PlacementCandidate[] {
    const out: PlacementCandidate[] = [];
    for (const node of this.registry.nodes.values()) {
      if (excludeNodes.has(node.id) || this.registry.nodeState(node, nowMs) !== 'alive') continue;
      // A node whose inventory is not in yet may be a restarted node with a stale view: still fine
      // to write to, its disks report their own state and space.
      for (const disk of node.disks.values()) {
        out.push({ nodeId: node.id, url: node.url, diskId: disk.id, state: disk.state, freeBytes: disk.freeBytes });
      }
    }
    return out;
  }

  place(sizeBytes: number, replicas: number, excludeNodes: ReadonlySet<string>, nowMs: number, rng: () => number): PlacementResult {
    return choosePlacement(this.placementCandidates(nowMs, excludeNodes), sizeBytes, replicas, rng, this.options.placementFreeFloorBytes);
  }

  /** Alive nodes whose current boot has not delivered a complete inventory yet. */
  nodesWithoutInventory(nowMs: number): NodeRecord[] {
    return [...this.registry.nodes.values()].filter(
      (n) => this.registry.nodeState(n, nowMs) === 'alive' && !this.reports.hasCompleteInventory(n),
    );
  }
}
