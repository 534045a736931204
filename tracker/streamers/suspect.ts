// Streamer read failures as a disk-health signal (DESIGN.md "Health"): a disk that streamers
// failed to read from readFailuresToSuspect times within readFailureWindowMs is named in its
// node's next heartbeat answer (`suspectDisks`), once per window; the node probes it and counts
// the failures as faults (the node decides about masking: it sees its own disks). Pure with a clock.

export interface SuspectSettings {
  readFailuresToSuspect: number;
  readFailureWindowMs: number;
}

/** Failure times kept per disk at most (the threshold is small; this bounds a storm). */
const MAX_TIMES_PER_DISK = 1000;
/** (node, disk) pairs followed at most; the least recently failing are forgotten first. */
const MAX_DISKS = 10_000;

interface DiskFailures {
  node: string;
  disk: string;
  times: number[];
  lastSignalMs: number;
  pending: { failures: number; reason: string } | undefined;
}

export class SuspectDisks {
  private readonly disks = new Map<string, DiskFailures>();

  constructor(private readonly settings: SuspectSettings) {}

  /** Records one failure of a known (node, disk); returns true when it just crossed the threshold. */
  record(nodeId: string, diskId: string, reason: string, nowMs: number): boolean {
    const key = `${nodeId}\u0000${diskId}`;
    let d = this.disks.get(key);
    if (d) this.disks.delete(key);
    else {
      d = { node: nodeId, disk: diskId, times: [], lastSignalMs: -Infinity, pending: undefined };
      if (this.disks.size >= MAX_DISKS) this.disks.delete(this.disks.keys().next().value!);
    }
    this.disks.set(key, d);
    this.prune(d, nowMs);
    d.times.push(nowMs);
    if (d.times.length > MAX_TIMES_PER_DISK) d.times.shift();
    const { readFailuresToSuspect, readFailureWindowMs } = this.settings;
    if (d.times.length >= readFailuresToSuspect && !d.pending && nowMs - d.lastSignalMs >= readFailureWindowMs) {
      d.pending = {
        failures: d.times.length,
        reason: `${d.times.length} streamer read failure(s) within ${Math.round(readFailureWindowMs / 1000)} s (last: ${reason})`.slice(0, 300),
      };
      return true;
    }
    return false;
  }

  /** The node's pending signals, handed out once (the heartbeat answer carries them). */
  takeFor(nodeId: string, nowMs: number): Array<{ disk: string; failures: number; reason: string }> {
    const out: Array<{ disk: string; failures: number; reason: string }> = [];
    for (const d of this.disks.values()) {
      if (d.node !== nodeId || !d.pending) continue;
      out.push({ disk: d.disk, failures: d.pending.failures, reason: d.pending.reason });
      d.pending = undefined;
      d.lastSignalMs = nowMs;
    }
    return out;
  }

  /** Failures counted against a disk in the current window. */
  countFor(nodeId: string, diskId: string, nowMs: number): number {
    const d = this.disks.get(`${nodeId}\u0000${diskId}`);
    if (!d) return 0;
    this.prune(d, nowMs);
    return d.times.length;
  }

  private prune(d: DiskFailures, nowMs: number): void {
    const from = nowMs - this.settings.readFailureWindowMs;
    let i = 0;
    while (i < d.times.length && d.times[i]! <= from) i++;
    if (i > 0) d.times.splice(0, i);
  }
}
