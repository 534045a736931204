// Repair bandwidth budget: token buckets for the whole cluster and for each node (a copy charges
// its source node, its destination node and the cluster), refilled at the rate of the window in
// force (business hours: low, rooms come first; maintenance window: high). Pure given the clock.
//
// A bucket holds one second of its rate. A copy larger than that may start when the bucket is
// full, and leaves it in debt (negative): otherwise a blob bigger than one second of budget
// could never be copied, and with smaller copies always fitting first it would starve. The debt
// is paid back by the refill before anything else starts, so the long-run rate stays the budget.
import { budgetWindow, type BudgetWindow } from './window.js';

/** Seconds of rate a bucket holds (its burst). */
export const BUCKET_SECONDS = 1;

export class TokenBucket {
  private tokens: number;
  private atMs: number;

  constructor(private rateBytesPerSec: number, nowMs: number) {
    this.tokens = this.capacity;
    this.atMs = nowMs;
  }

  get capacity(): number {
    return this.rateBytesPerSec * BUCKET_SECONDS;
  }

  /** Tokens now (negative: in debt). */
  level(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens;
  }

  /** Changes the rate (window switch); tokens above the new capacity are dropped. */
  setRate(rateBytesPerSec: number, nowMs: number): void {
    if (rateBytesPerSec === this.rateBytesPerSec) return;
    this.refill(nowMs);
    this.rateBytesPerSec = rateBytesPerSec;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  /** Whether `bytes` may start now: enough tokens, or (larger than the bucket) a full bucket. */
  canTake(bytes: number, nowMs: number): boolean {
    this.refill(nowMs);
    if (this.rateBytesPerSec <= 0) return false;
    return this.tokens >= Math.min(bytes, this.capacity);
  }

  /** Charges `bytes` (the balance may go negative: debt). Call after canTake said yes. */
  take(bytes: number, nowMs: number): void {
    this.refill(nowMs);
    this.tokens -= bytes;
  }

  private refill(nowMs: number): void {
    const elapsedMs = Math.max(0, nowMs - this.atMs);
    this.atMs = Math.max(this.atMs, nowMs);
    this.tokens = Math.min(this.capacity, this.tokens + (this.rateBytesPerSec * elapsedMs) / 1000);
  }
}

export interface BudgetSettings {
  repairClusterBytesPerSec: number;
  repairNodeBytesPerSec: number;
  repairMaintenanceClusterBytesPerSec: number;
  repairMaintenanceNodeBytesPerSec: number;
  maintenanceWindow: string;
}

export interface BudgetView {
  window: BudgetWindow;
  clusterBytesPerSec: number;
  nodeBytesPerSec: number;
}

/** Most nodes with a bucket; a node not seen for a while is forgotten first (bounded memory). */
const MAX_NODE_BUCKETS = 4096;

export class RepairBudget {
  private readonly cluster: TokenBucket;
  private readonly nodes = new Map<string, TokenBucket>();
  private current: BudgetView;

  constructor(private readonly settings: BudgetSettings, nowMs: number, private readonly dateOf: (nowMs: number) => Date = (ms) => new Date(ms)) {
    this.current = this.viewAt(nowMs);
    this.cluster = new TokenBucket(this.current.clusterBytesPerSec, nowMs);
  }

  /** The budget in force at `nowMs` (switches the buckets' rates when the window changed). */
  view(nowMs: number): BudgetView {
    const next = this.viewAt(nowMs);
    if (next.window !== this.current.window) {
      this.current = next;
      this.cluster.setRate(next.clusterBytesPerSec, nowMs);
      for (const b of this.nodes.values()) b.setRate(next.nodeBytesPerSec, nowMs);
    }
    return this.current;
  }

  /** May a copy of `bytes` from `source` to `dest` start now? (`source` may be undefined: not yet chosen.) */
  clusterAllows(bytes: number, nowMs: number): boolean {
    this.view(nowMs);
    return this.cluster.canTake(bytes, nowMs);
  }

  nodeAllows(nodeId: string, bytes: number, nowMs: number): boolean {
    this.view(nowMs);
    return this.bucket(nodeId, nowMs).canTake(bytes, nowMs);
  }

  /** Charges a copy to the cluster and both nodes. */
  charge(sourceNodeId: string, destNodeId: string, bytes: number, nowMs: number): void {
    this.cluster.take(bytes, nowMs);
    this.bucket(sourceNodeId, nowMs).take(bytes, nowMs);
    if (destNodeId !== sourceNodeId) this.bucket(destNodeId, nowMs).take(bytes, nowMs);
  }

  clusterLevel(nowMs: number): number {
    return this.cluster.level(nowMs);
  }

  private bucket(nodeId: string, nowMs: number): TokenBucket {
    let b = this.nodes.get(nodeId);
    if (b) {
      this.nodes.delete(nodeId); // re-insert: Map order is use order for eviction
    } else {
      b = new TokenBucket(this.current.nodeBytesPerSec, nowMs);
      if (this.nodes.size >= MAX_NODE_BUCKETS) this.nodes.delete(this.nodes.keys().next().value!);
    }
    this.nodes.set(nodeId, b);
    return b;
  }

  private viewAt(nowMs: number): BudgetView {
    const s = this.settings;
    const window = budgetWindow(s.maintenanceWindow, this.dateOf(nowMs));
    return window === 'maintenance'
      ? { window, clusterBytesPerSec: s.repairMaintenanceClusterBytesPerSec, nodeBytesPerSec: s.repairMaintenanceNodeBytesPerSec }
      : { window, clusterBytesPerSec: s.repairClusterBytesPerSec, nodeBytesPerSec: s.repairNodeBytesPerSec };
  }
}

/**
 * Bytes copied per second over the last minute: one counter per second in a ring. The rate is
 * divided by the time repair has been busy within the minute (at most 60 s), so it is right from
 * the first seconds of a repair instead of creeping up over a minute.
 */
export class RateMeter {
  private readonly perSecond = new Float64Array(60);
  private readonly secondOf = new Float64Array(60).fill(-1);
  private busySinceMs = -1;
  private lastActivityMs = -Infinity;

  constructor(private readonly windowS = 60) {}

  /** Repair work exists (queued or running) at `nowMs`: the busy period starts or continues. */
  busy(nowMs: number): void {
    if (this.busySinceMs < 0 || nowMs - this.lastActivityMs > this.windowS * 1000) this.busySinceMs = nowMs;
    this.lastActivityMs = nowMs;
  }

  add(bytes: number, nowMs: number): void {
    this.busy(nowMs);
    const s = Math.floor(nowMs / 1000);
    const i = s % this.windowS;
    if (this.secondOf[i] !== s) {
      this.secondOf[i] = s;
      this.perSecond[i] = 0;
    }
    this.perSecond[i]! += bytes;
  }

  rate(nowMs: number): number {
    const s = Math.floor(nowMs / 1000);
    let sum = 0;
    for (let i = 0; i < this.windowS; i++) if (this.secondOf[i]! > s - this.windowS) sum += this.perSecond[i]!;
    if (sum === 0 || this.busySinceMs < 0) return 0;
    const spanS = Math.min(this.windowS, Math.max(1, (nowMs - this.busySinceMs) / 1000));
    return sum / spanS;
  }
}
