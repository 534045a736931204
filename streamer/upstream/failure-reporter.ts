// Tells the tracker a replica read failed (signed POST /internal/v1/read-failures): a disk-health
// signal. Fire-and-forget and bounded: one report in flight at a time, at most `queueMax`
// waiting, the same (blob, node, reason) not repeated within `dedupeMs`; overflow is dropped and
// counted. A slow or dead tracker never holds up a room's segment.
import type { ReadFailureReport } from '../../common/contracts.js';
import type { Logger } from '../../common/log.js';
import type { TrackerClient } from '../../common/tracker-client.js';

export interface ReporterCounters {
  sent: number;
  failed: number;
  dropped: number;
}

export class FailureReporter {
  private readonly queue: ReadFailureReport[] = [];
  private readonly recent = new Map<string, number>();
  private sending = false;
  private closed = false;
  readonly counters: ReporterCounters = { sent: 0, failed: 0, dropped: 0 };

  constructor(
    private readonly tracker: TrackerClient,
    private readonly options: { queueMax: number; timeoutMs: number; dedupeMs: number },
    private readonly log: Logger,
    private readonly onResult: (result: keyof ReporterCounters) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  report(r: ReadFailureReport): void {
    if (this.closed) return;
    const nowMs = this.now();
    const key = `${r.blobId}/${r.nodeId}/${r.diskId}/${r.reason}`;
    const last = this.recent.get(key);
    if (last !== undefined && nowMs - last < this.options.dedupeMs) return;
    this.recent.delete(key);
    this.recent.set(key, nowMs);
    for (const [k, t] of this.recent) {
      if (this.recent.size <= this.options.queueMax * 4 && nowMs - t < this.options.dedupeMs) break;
      this.recent.delete(k);
    }
    if (this.queue.length >= this.options.queueMax) {
      this.count('dropped');
      return;
    }
    this.queue.push(r);
    void this.pump();
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
  }

  private count(result: keyof ReporterCounters): void {
    this.counters[result] += 1;
    this.onResult(result);
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      for (let next = this.queue.shift(); next && !this.closed; next = this.queue.shift()) {
        try {
          await this.tracker.call('/internal/v1/read-failures', { body: next, timeoutMs: this.options.timeoutMs });
          this.count('sent');
        } catch (error) {
          this.count('failed');
          this.log.debug('read-failure report not delivered', { blob: next.blobId, node: next.nodeId, error: (error as Error).message });
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
