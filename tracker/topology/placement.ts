// Placement: where new copies of a blob go. Pure: plain candidates in, targets out, rng injected.
// DESIGN.md: `replicas` copies on distinct nodes, weighted by free space, never on a disk that is
// not healthy. Weighting by free bytes (rather than "most free wins") spreads a bulk ingest over
// all disks instead of filling the emptiest one first while heartbeats lag behind.
import type { DiskState } from '../../common/contracts.js';

export interface PlacementCandidate {
  nodeId: string;
  url: string;
  diskId: string;
  state: DiskState;
  freeBytes: number;
}

export interface ChosenTarget {
  nodeId: string;
  url: string;
  diskId: string;
}

export type PlacementResult = { ok: true; targets: ChosenTarget[] } | { ok: false; eligibleNodes: number; reason: string };

/** Candidates must already be restricted to alive, non-excluded nodes. */
export function choosePlacement(
  candidates: readonly PlacementCandidate[],
  sizeBytes: number,
  replicas: number,
  rng: () => number,
  freeFloorBytes = 0,
): PlacementResult {
  const eligible = candidates.filter((c) => c.state === 'healthy' && c.freeBytes >= freeFloorBytes + sizeBytes);
  const nodes = new Set(eligible.map((c) => c.nodeId));
  if (nodes.size < replicas) {
    return { ok: false, eligibleNodes: nodes.size, reason: `only ${nodes.size} healthy nodes for ${replicas} replicas` };
  }
  let pool = eligible;
  const targets: ChosenTarget[] = [];
  while (targets.length < replicas) {
    // Weight: space left after this blob; at least 1 so a disk exactly at the floor stays possible.
    const weights = pool.map((c) => Math.max(1, c.freeBytes - sizeBytes));
    const total = weights.reduce((a, b) => a + b, 0);
    let pick = rng() * total;
    let chosen = pool.length - 1;
    for (let i = 0; i < pool.length; i++) {
      pick -= weights[i]!;
      if (pick < 0) {
        chosen = i;
        break;
      }
    }
    const c = pool[chosen]!;
    targets.push({ nodeId: c.nodeId, url: c.url, diskId: c.diskId });
    pool = pool.filter((p) => p.nodeId !== c.nodeId); // distinct nodes: one disk per node
  }
  return { ok: true, targets };
}
