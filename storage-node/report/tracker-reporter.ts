// Reporting to ONE tracker: heartbeats, full inventory reports and change pushes. The node runs
// one reporter per tracker, each with its own timers and buffer, so a tracker that is down or
// slow never delays the others (DESIGN.md: nodes report to every tracker, the standby is hot).
//
// Protocol: every change is numbered (from 1 per boot). The tracker's view is exact once it has
// a full inventory consistent with sequence S and every change after S, in order. Changes are
// held back while a full report is in flight and those up to S dropped when it starts; any
// doubt (a failed push, a full buffer, a tracker asking) is settled with a new full report.
import type { ChangeReport, DiskStatus, HeartbeatRequest, HeartbeatResponse, InventoryBatch } from '../../common/contracts.js';
import { heartbeatResponse } from '../../common/contracts.js';
import { rpc } from '../../common/http.js';
import { randomId } from '../../common/ids.js';
import type { Logger } from '../../common/log.js';
import type { Change, ChangeListener, ChangeLog } from '../store/change-log.js';
import type { InventoryEntry } from '../store/inventory.js';
import { inventoryBatches } from './batches.js';
import { ChangeBuffer } from './change-buffer.js';

/** Most changes in one message (contracts.ts changeReport). */
const MAX_CHANGES_PER_MESSAGE = 10_000;

export interface ReportSource {
  nodeId: string;
  bootId: string;
  url(): string;
  changes: ChangeLog;
  diskStatuses(): DiskStatus[];
  inventory(): Iterable<[string, InventoryEntry]>;
}

export interface ReporterOptions {
  trackerUrl: string;
  source: ReportSource;
  secret: string;
  heartbeatIntervalMs: number;
  inventoryBatchBlobs: number;
  changeBufferEntries: number;
  changePushDelayMs: number;
  rpcTimeoutMs: number;
  log: Logger;
  /** Every epoch a tracker answers with (fencing: the node refuses lower ones). */
  onEpoch: (epoch: number) => void;
  /** Disks the tracker says streamers failed to read from (the node probes them). */
  onSuspectDisks?: (reports: NonNullable<HeartbeatResponse['suspectDisks']>) => void;
}

export interface ReporterStatus {
  url: string;
  ok: boolean;
  lastError: string;
  leader: boolean;
  pendingChanges: number;
}

export class TrackerReporter implements ChangeListener {
  private readonly buffer: ChangeBuffer;
  private needFull = false;
  private reporting = false;
  private pushing = false;
  private stopped = false;
  private pushTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private unsubscribe = (): void => {};
  private readonly inFlight = new Set<Promise<void>>();
  private readonly state = { ok: false, lastError: 'no heartbeat yet', leader: false };
  private readonly log: Logger;

  constructor(private readonly options: ReporterOptions) {
    this.buffer = new ChangeBuffer(options.changeBufferEntries);
    this.log = options.log.child({ tracker: options.trackerUrl });
  }

  start(): void {
    this.unsubscribe = this.options.source.changes.subscribe(this);
    this.scheduleHeartbeat(0);
  }

  /** Stops the timers and waits for calls in flight (each bounded by rpcTimeoutMs). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    clearTimeout(this.pushTimer);
    clearTimeout(this.heartbeatTimer);
    await Promise.allSettled([...this.inFlight]);
  }

  status(): ReporterStatus {
    return { url: this.options.trackerUrl, ...this.state, pendingChanges: this.buffer.length };
  }

  onChange(change: Change): void {
    if (!this.buffer.push(change)) {
      this.log.warn('change buffer full; a full report will follow', { entries: this.options.changeBufferEntries });
      this.needFull = true;
      return;
    }
    this.schedulePush();
  }

  onReset(): void {
    this.buffer.clear();
    this.needFull = true;
  }

  private track(work: Promise<void>): void {
    // The tracked functions catch their own errors; this is the backstop that keeps a surprise
    // from becoming an unhandled rejection (which would end the process).
    const settled = work.catch((error: unknown) => this.log.error('reporter bug', { error: (error as Error).message }));
    this.inFlight.add(settled);
    void settled.finally(() => this.inFlight.delete(settled));
  }

  private call<T>(path: string, body: unknown): Promise<T> {
    return rpc<T>(this.options.trackerUrl, path, { body, secret: this.options.secret, timeoutMs: this.options.rpcTimeoutMs });
  }

  // ---- heartbeats ------------------------------------------------------------------------------

  private scheduleHeartbeat(delayMs: number): void {
    if (this.stopped) return;
    this.heartbeatTimer = setTimeout(() => this.track(this.heartbeat()), delayMs);
  }

  private async heartbeat(): Promise<void> {
    const { source } = this.options;
    try {
      // Deliver pending changes first, so the sequence we claim has (nearly always) arrived.
      await this.pushChanges();
      const body: HeartbeatRequest = {
        nodeId: source.nodeId,
        url: source.url(),
        changeSeq: source.changes.seq,
        bootId: source.bootId,
        disks: source.diskStatuses(),
      };
      const parsed = heartbeatResponse.safeParse(await this.call('/internal/v1/heartbeat', body));
      if (!parsed.success) throw new Error('heartbeat answer is malformed');
      this.options.onEpoch(parsed.data.epoch);
      this.state.leader = parsed.data.leader;
      this.markOk();
      if (parsed.data.suspectDisks && parsed.data.suspectDisks.length > 0) this.options.onSuspectDisks?.(parsed.data.suspectDisks);
      if (parsed.data.needFullReport) this.needFull = true;
      if (this.needFull && !this.reporting && !this.stopped) this.track(this.fullReport());
    } catch (error) {
      this.markFailed('heartbeat', error);
    } finally {
      this.scheduleHeartbeat(this.options.heartbeatIntervalMs);
    }
  }

  // ---- changes ---------------------------------------------------------------------------------

  private schedulePush(): void {
    if (this.pushTimer || this.stopped) return;
    // A short delay turns a burst of changes into one message.
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      this.track(this.pushChanges());
    }, this.options.changePushDelayMs);
  }

  private async pushChanges(): Promise<void> {
    if (this.pushing || this.reporting || this.needFull || this.stopped) return;
    this.pushing = true;
    const { source } = this.options;
    try {
      for (;;) {
        if (this.reporting || this.needFull || this.stopped) return;
        const run = this.buffer.peekRun(MAX_CHANGES_PER_MESSAGE);
        if (run.length === 0) return;
        const body: ChangeReport = {
          nodeId: source.nodeId,
          bootId: source.bootId,
          fromSeq: run[0]!.seq,
          changes: run.map((c) => ({ op: c.op, disk: c.disk, blob: c.blob, size: c.size, kind: c.kind })),
        };
        const answer = await this.call<{ needFullReport?: unknown } | undefined>('/internal/v1/changes', body);
        this.buffer.dropThrough(run[run.length - 1]!.seq);
        if (answer?.needFullReport === true) {
          this.needFull = true;
          return;
        }
      }
    } catch (error) {
      // The tracker may or may not have applied them: only a full report settles it.
      this.needFull = true;
      this.markFailed('change push', error);
    } finally {
      this.pushing = false;
    }
  }

  // ---- full report -----------------------------------------------------------------------------

  private async fullReport(): Promise<void> {
    const { source } = this.options;
    this.reporting = true;
    // Consumed now; anything that sets it again meanwhile (overflow, reset) asks for another.
    this.needFull = false;
    const reportId = randomId('r');
    const changeSeq = source.changes.seq;
    // The report covers every change up to changeSeq. It reads the live inventory rather than a
    // copy (700k entries): a blob changed meanwhile may or may not be listed, and its change,
    // delivered after the final batch, settles it.
    this.buffer.dropThrough(changeSeq);
    const startedMs = Date.now();
    let blobs = 0;
    let part = 0;
    try {
      const batches = inventoryBatches(source.inventory(), this.options.inventoryBatchBlobs);
      let current = batches.next();
      for (;;) {
        if (this.stopped) throw new Error('stopped');
        const following = current.done ? current : batches.next();
        const disks = current.done ? [] : current.value;
        const body: InventoryBatch = { nodeId: source.nodeId, bootId: source.bootId, reportId, changeSeq, part, final: following.done === true, disks };
        const answer = await this.call<{ ok?: unknown; needFullReport?: unknown } | undefined>('/internal/v1/inventory', body);
        if (answer?.ok === false || answer?.needFullReport === true) throw new Error('the tracker dropped the report');
        for (const d of disks) blobs += d.blobs.length;
        part += 1;
        if (body.final) break;
        current = following;
      }
      this.log.info('full inventory reported', { blobs, parts: part, changeSeq, tookMs: Date.now() - startedMs });
    } catch (error) {
      this.needFull = true;
      this.markFailed('inventory report', error);
    } finally {
      this.reporting = false;
      if (this.buffer.length > 0) this.schedulePush();
    }
  }

  private markOk(): void {
    if (!this.state.ok) this.log.info('tracker reachable');
    this.state.ok = true;
    this.state.lastError = '';
  }

  private markFailed(what: string, error: unknown): void {
    const message = `${what}: ${(error as Error).message}`;
    // Log the transition, not every failed heartbeat of a tracker that is down.
    if (this.state.ok || this.state.lastError === 'no heartbeat yet') this.log.warn('tracker call failed', { error: message });
    this.state.ok = false;
    this.state.lastError = message;
  }
}
