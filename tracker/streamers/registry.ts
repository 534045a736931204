// Streamers that registered with this tracker (heartbeats), and the read failures they report.
// Plain data and a clock: no HTTP here. Rooms ask GET /api/v1/streamers to fail over between
// streamers by themselves; the registry is soft state (rebuilt from heartbeats after a restart).
import type { ReadFailureReport, StreamerHeartbeat, StreamerInfo } from '../../common/contracts.js';

export interface StreamerRegistryOptions {
  deadAfterMs: number;
  forgetAfterMs: number;
  maxEntries: number;
}

interface Entry {
  id: string;
  url: string;
  startedAt: string;
  servedBytes: number;
  lastSeenMs: number;
}

export class StreamerRegistry {
  /** Insertion order = heartbeat order (an entry is re-inserted on each heartbeat). */
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly options: StreamerRegistryOptions) {}

  heartbeat(hb: StreamerHeartbeat, nowMs: number): void {
    this.entries.delete(hb.id);
    this.entries.set(hb.id, { id: hb.id, url: hb.url, startedAt: hb.startedAt, servedBytes: hb.servedBytes, lastSeenMs: nowMs });
    this.prune(nowMs);
  }

  /** Alive first, then by id: a room takes the first alive one it can reach. */
  list(nowMs: number): StreamerInfo[] {
    this.prune(nowMs);
    return [...this.entries.values()]
      .map((e): StreamerInfo => ({
        id: e.id,
        url: e.url,
        state: nowMs - e.lastSeenMs <= this.options.deadAfterMs ? 'alive' : 'dead',
        lastHeartbeatAgoMs: Math.max(0, nowMs - e.lastSeenMs),
        startedAt: e.startedAt,
        servedBytes: e.servedBytes,
      }))
      .sort((a, b) => (a.state === b.state ? (a.id < b.id ? -1 : 1) : a.state === 'alive' ? -1 : 1));
  }

  get size(): number {
    return this.entries.size;
  }

  private prune(nowMs: number): void {
    // Oldest heartbeats first: stop at the first entry that is recent enough and within bounds.
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.options.maxEntries && nowMs - e.lastSeenMs <= this.options.forgetAfterMs) break;
      this.entries.delete(id);
    }
  }
}

/**
 * Read failures streamers reported, counted per (node, disk) that the registry knows. The full
 * disk-health state machine (DESIGN.md "Health") will read these; today they are metrics and logs.
 * Unknown node or disk ids are counted under 'unknown' so label values stay bounded.
 */
export class ReadFailureCounts {
  private readonly counts = new Map<string, { node: string; disk: string; reason: string; count: number }>();
  total = 0;

  record(report: ReadFailureReport, known: (nodeId: string, diskId: string) => { node: boolean; disk: boolean }): { node: string; disk: string } {
    const k = known(report.nodeId, report.diskId);
    const node = k.node ? report.nodeId : 'unknown';
    const disk = k.node && k.disk ? report.diskId : 'unknown';
    const key = `${node}\u0000${disk}\u0000${report.reason}`;
    const entry = this.counts.get(key) ?? { node, disk, reason: report.reason, count: 0 };
    entry.count += 1;
    this.counts.set(key, entry);
    this.total += 1;
    return { node, disk };
  }

  rows(): Array<{ node: string; disk: string; reason: string; count: number }> {
    return [...this.counts.values()];
  }
}
