// Pure liveness and replica-state rules, shared by locate, placement, repair and the cluster view.
import type { DiskState, NodeState } from '../../common/contracts.js';

/** A node is alive while its last heartbeat is at most `deadAfterMs` old. */
export function nodeStateAt(lastSeenMs: number, nowMs: number, deadAfterMs: number): NodeState {
  return nowMs - lastSeenMs <= deadAfterMs ? 'alive' : 'dead';
}

/** How long a node has been dead (0 while alive). It died when its heartbeat deadline passed. */
export function deadForMs(lastSeenMs: number, nowMs: number, deadAfterMs: number): number {
  return Math.max(0, nowMs - (lastSeenMs + deadAfterMs));
}

/** Disk states a replica can be read from (masked: no reads at all). */
export function isReadableDisk(state: DiskState): boolean {
  return state !== 'masked';
}

/**
 * What one replica is worth to repair:
 * - `live`: readable and counts toward the replica target.
 * - `readableOnly`: readable but leaving (draining), so it does not count: repair copies it away.
 * - `waiting`: on a node dead for less than the grace; it may come back, so no copy yet.
 * - `missing`: gone for repair's purpose (node dead past the grace, or disk masked: act now).
 */
export type ReplicaStatus = 'live' | 'readableOnly' | 'waiting' | 'missing';

export function replicaStatus(node: NodeState, nodeDeadForMs: number, disk: DiskState, graceMs: number): ReplicaStatus {
  if (node === 'dead') return nodeDeadForMs < graceMs ? 'waiting' : 'missing';
  if (disk === 'masked') return 'missing';
  if (disk === 'draining') return 'readableOnly';
  return 'live';
}

export const REPLICA_STATUS_CODE = { missing: 0, live: 1, readableOnly: 2, waiting: 3 } as const;
