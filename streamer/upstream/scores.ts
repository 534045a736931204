// Which replica to read first. Pure: plain data and a clock.
//
// Order: readable replicas on alive nodes first (healthy disks before suspect/readonly/draining),
// replicas on nodes the tracker calls dead last (its view may be seconds old), masked disks never.
// Within a tier, a node that failed recently goes after one that did not (the penalty halves
// every `failureHalfLifeMs`), then a slow node after a fast one. Latency is compared in coarse
// classes (≤100 ms, ≤200, ≤400, …) so loopback noise never reorders replicas: ties keep the
// tracker's order, which spreads blobs over nodes.
import type { ReplicaInfo } from '../../common/contracts.js';

export interface ScoreOptions {
  failureHalfLifeMs: number;
  /** Weight of the newest first-byte time in the moving average. */
  latencyAlpha: number;
  /** Nodes remembered at most (least recently updated forgotten first). */
  maxNodes: number;
}

export const DEFAULT_SCORE_OPTIONS: ScoreOptions = { failureHalfLifeMs: 30_000, latencyAlpha: 0.3, maxNodes: 1024 };

interface NodeScore {
  firstByteMs: number;
  failures: number;
  updatedAtMs: number;
}

export interface NodeScoreView {
  nodeId: string;
  firstByteMs: number;
  failures: number;
}

function tier(r: ReplicaInfo): number {
  if (r.nodeState !== 'alive') return 2;
  return r.diskState === 'healthy' ? 0 : 1;
}

export function latencyClass(firstByteMs: number): number {
  if (!(firstByteMs > 100)) return 0;
  return Math.min(9, Math.ceil(Math.log2(firstByteMs / 100)));
}

export class ReplicaScores {
  private readonly nodes = new Map<string, NodeScore>();

  constructor(private readonly options: ScoreOptions = DEFAULT_SCORE_OPTIONS, private readonly now: () => number = Date.now) {}

  success(nodeId: string, firstByteMs: number): void {
    const s = this.touch(nodeId);
    s.firstByteMs = s.firstByteMs < 0 ? firstByteMs : s.firstByteMs + this.options.latencyAlpha * (firstByteMs - s.firstByteMs);
  }

  failure(nodeId: string): void {
    const s = this.touch(nodeId);
    s.failures += 1;
  }

  /** Decayed failure count of a node (0 for one never seen). */
  failures(nodeId: string): number {
    const s = this.nodes.get(nodeId);
    if (!s) return 0;
    return s.failures * 2 ** (-(this.now() - s.updatedAtMs) / this.options.failureHalfLifeMs);
  }

  /**
   * Replicas worth trying, best first; masked disks are left out. Ties: with `spreadKey` (a
   * segment's blob and offset), by a hash of key and node, so equal replicas share the reads
   * segment by segment and the same segment always goes to the same node (its page cache holds
   * it once); without, the given order.
   */
  order<T extends ReplicaInfo>(replicas: readonly T[], spreadKey?: string): T[] {
    const ranked = replicas
      .filter((r) => r.diskState !== 'masked')
      .map((r, index) => {
        const s = this.nodes.get(r.nodeId);
        const failureClass = Math.min(9, Math.round(this.failures(r.nodeId)));
        const slowClass = s && s.firstByteMs >= 0 ? latencyClass(s.firstByteMs) : 0;
        return { r, tie: spreadKey === undefined ? index : fnv1a(`${spreadKey}|${r.nodeId}`), rank: tier(r) * 100 + failureClass * 10 + slowClass };
      });
    ranked.sort((a, b) => a.rank - b.rank || a.tie - b.tie);
    return ranked.map((x) => x.r);
  }

  view(): NodeScoreView[] {
    return [...this.nodes].map(([nodeId, s]) => ({ nodeId, firstByteMs: Math.round(Math.max(0, s.firstByteMs)), failures: Number(this.failures(nodeId).toFixed(2)) }));
  }

  private touch(nodeId: string): NodeScore {
    const nowMs = this.now();
    let s = this.nodes.get(nodeId);
    if (s) {
      // Fold the decay into the count so it keeps halving from its last update.
      s.failures *= 2 ** (-(nowMs - s.updatedAtMs) / this.options.failureHalfLifeMs);
      this.nodes.delete(nodeId);
    } else {
      s = { firstByteMs: -1, failures: 0, updatedAtMs: nowMs };
    }
    s.updatedAtMs = nowMs;
    this.nodes.set(nodeId, s);
    for (const oldest of this.nodes.keys()) {
      if (this.nodes.size <= this.options.maxNodes) break;
      this.nodes.delete(oldest);
    }
    return s;
  }
}

/** 32-bit FNV-1a of a string's UTF-16 code units: cheap, well spread, deterministic. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
