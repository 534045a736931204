// Replica order for locate answers. Pure. Readers (streamers) try replicas in the given order and
// fail over down the list, so the order is the tracker's advice on where to read.
import type { ReplicaInfo } from '../../common/contracts.js';
import { isReadableDisk } from './liveness.js';

export interface RankedReplica extends ReplicaInfo {
  freeBytes: number;
}

function tier(r: RankedReplica): number {
  if (r.nodeState !== 'alive' || !isReadableDisk(r.diskState)) return 2; // listed last, for diagnosis
  return r.diskState === 'healthy' ? 0 : 1;
}

/** Readable first; healthy before suspect/readonly/draining; then more free space (less loaded). */
export function rankReplicas<T extends RankedReplica>(replicas: T[]): T[] {
  return replicas.sort((a, b) => tier(a) - tier(b) || b.freeBytes - a.freeBytes || (a.nodeId < b.nodeId ? -1 : 1));
}

export function isReadableReplica(r: ReplicaInfo): boolean {
  return r.nodeState === 'alive' && isReadableDisk(r.diskState);
}
