// One disk: its directory, identity, observations and state. Every file system call on it goes
// through `op`, which puts a deadline on it, times it and turns faults into observations, so one
// bad disk is masked instead of hanging or crashing the node. The decisions are the pure
// functions of disk-state.ts; this class does the I/O and keeps the clock.
import { stat, statfs } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { DiskOperatorSetting, DiskScrubStatus, DiskState, DiskStatus } from '../../common/contracts.js';
import { DiskTimeoutError, withDeadline } from './deadline.js';
import {
  applyOperator,
  classifyIoError,
  clearMask,
  computeDiskState,
  faultSeverity,
  newObservations,
  normalMs,
  noteFault,
  noteHardFault,
  noteProbe,
  recentFaults,
  type DiskObservations,
  type DiskVerdict,
  type HealthParams,
} from './disk-state.js';
import { probeOnce } from './probe.js';

export interface DiskLimits extends HealthParams {
  opTimeoutMs: number;
  probeTimeoutMs: number;
  probeBytes: number;
}

export interface OpOptions<T> {
  /** ENOENT means the disk's own directories are gone (tmp dir, the root), not a missing blob. */
  notFoundIsFault?: boolean;
  /** Releases a result that arrives after the deadline (e.g. closes a late file handle). */
  onLate?: (value: T) => void;
  /** Its duration grows with the bytes (fsync of a big blob, a directory scan): not judged as slow. */
  untimed?: boolean;
}

/** Faults from real operations counted at most once per this: 300 rooms' reads hitting one stall are one event, not 300. */
const OP_FAULT_COALESCE_MS = 1000;
/**
 * Operations past their deadline still hold a libuv thread until the kernel answers. Once one op
 * of a disk is stuck, at most this many of its ops may be in flight; more are refused at once
 * (a counted fault) instead of joining them: a hung disk must not take every thread of the pool
 * and stall the healthy disks. Small because the pool may be libuv's default of 4 threads
 * (UV_THREADPOOL_SIZE only takes effect when set before the process starts).
 */
export const MAX_OPS_WHILE_STUCK = 2;

export type ProbeResult = 'ok' | 'slow' | 'failed' | 'hung' | 'skipped';

export interface DiskEvents {
  /** The state changed (the store drops a masked disk's blobs, logs it). */
  stateChanged(disk: Disk, from: DiskState, to: DiskState): void;
  probed(disk: Disk, result: ProbeResult): void;
  fault(disk: Disk, kind: string): void;
}

export class Disk {
  readonly obs: DiskObservations = newObservations();
  private lastState: DiskState = 'healthy';
  private lastOpFaultMs = -Infinity;
  private probeInFlight?: Promise<void>;
  private probeStartedMs = 0;
  private lastProbe = { at: '', ms: 0 };
  /** Operations that missed their deadline and have not come back from the kernel yet. */
  stuckOps = 0;
  private inFlightOps = 0;
  events: DiskEvents = { stateChanged: () => {}, probed: () => {}, fault: () => {} };
  /** Filled by the store's scrubber (status only). */
  scrubStatus?: () => DiskScrubStatus;

  constructor(
    readonly id: string,
    readonly root: string,
    private readonly limits: DiskLimits,
  ) {}

  verdict(nowMs = Date.now()): DiskVerdict {
    return computeDiskState(this.obs, this.limits, nowMs);
  }

  get state(): DiskState {
    return this.verdict().state;
  }

  get healthParams(): HealthParams {
    return this.limits;
  }

  get operator(): DiskOperatorSetting {
    return this.obs.operator ?? 'none';
  }

  /** Runs one file system call with a deadline; faults and slow calls are noted. */
  async op<T>(what: string, work: () => Promise<T>, options: OpOptions<T> = {}): Promise<T> {
    if (this.stuckOps > 0 && this.inFlightOps >= MAX_OPS_WHILE_STUCK) {
      const refused = new DiskTimeoutError(`${what} on disk ${this.id} (refused: ${this.stuckOps} earlier operations are stuck)`, this.limits.opTimeoutMs);
      this.noteError(refused);
      throw refused;
    }
    const startedMs = performance.now();
    this.inFlightOps += 1;
    let inner: Promise<T>;
    try {
      inner = work();
    } catch (error) {
      this.inFlightOps -= 1;
      throw error;
    }
    let stuck = false;
    let done = false;
    const settled = (): void => {
      done = true;
      this.inFlightOps -= 1;
      if (stuck) this.stuckOps -= 1;
    };
    inner.then(settled, settled);
    let value: T;
    try {
      value = await withDeadline(inner, this.limits.opTimeoutMs, `${what} on disk ${this.id}`, options.onLate);
    } catch (error) {
      if (error instanceof DiskTimeoutError && !done) {
        stuck = true;
        this.stuckOps += 1;
      }
      this.noteError(error, options.notFoundIsFault ?? false);
      throw error;
    }
    const tookMs = performance.now() - startedMs;
    if (!options.untimed && tookMs > Math.max(this.limits.slowFloorMs, this.limits.slowFactor * normalMs(this.obs))) {
      this.countOpFault(`slow ${what}: ${Math.round(tookMs)} ms (normal ${Math.round(normalMs(this.obs))} ms)`, 'slow-op');
    }
    return value;
  }

  /** Records what an error says about the disk. Safe to call with any error. */
  noteError(error: unknown, notFoundIsFault = false): void {
    const kind = classifyIoError(error);
    const e = error as NodeJS.ErrnoException;
    if (kind === 'fault' && faultSeverity(error) === 'counted') {
      this.countOpFault(e.message, 'timeout');
      return;
    }
    if (kind === 'fault') {
      noteHardFault(this.obs, e.code ?? 'EIO', e.message, Date.now());
      this.events.fault(this, 'io-error');
    } else if (kind === 'not-found' && notFoundIsFault) {
      noteHardFault(this.obs, 'ENOENT', `disk directory is gone (${e.message})`, Date.now(), 'gone');
      this.events.fault(this, 'gone');
    } else if (kind === 'no-space') {
      this.obs.noSpaceAtMs = Date.now();
    }
    this.publish();
  }

  private countOpFault(what: string, kind: string): void {
    const nowMs = Date.now();
    if (nowMs - this.lastOpFaultMs < OP_FAULT_COALESCE_MS) return;
    this.lastOpFaultMs = nowMs;
    noteFault(this.obs, what, nowMs, this.limits);
    this.events.fault(this, kind);
    this.publish();
  }

  /** Marks the disk masked for a reason found outside `op` (start-up failure, duplicate id). */
  markFault(code: string, message: string, cause: 'io-error' | 'start' = 'io-error'): void {
    noteHardFault(this.obs, code, message, Date.now(), cause);
    this.publish();
  }

  /** A tracker says streamers failed to read from this disk: one counted fault (the caller rate-limits). */
  noteSuspectReport(what: string): void {
    noteFault(this.obs, what, Date.now(), this.limits);
    this.events.fault(this, 'suspect-report');
    this.publish();
  }

  /** Start-up failures without a usable identity: nothing to probe until a restart. */
  get probeable(): boolean {
    return this.obs.fault?.cause !== 'start';
  }

  /**
   * One health probe under probeTimeoutMs. At most one is in flight: while an earlier probe is
   * still stuck in the kernel, each call counts one more fault instead of stacking another.
   */
  async probe(): Promise<ProbeResult> {
    if (!this.probeable) return 'skipped';
    const nowMs = Date.now();
    if (this.probeInFlight) {
      if (nowMs - this.probeStartedMs < this.limits.probeTimeoutMs) return 'skipped';
      noteFault(this.obs, `probe still hung after ${nowMs - this.probeStartedMs} ms`, nowMs, this.limits);
      this.lastProbe = { at: new Date(nowMs).toISOString(), ms: -1 };
      this.events.fault(this, 'probe-hung');
      this.events.probed(this, 'hung');
      this.publish();
      return 'hung';
    }
    this.probeStartedMs = nowMs;
    const startedMs = performance.now();
    const wasGone = !this.obs.present;
    const work = probeOnce(this.root, this.id, this.limits.probeBytes, wasGone);
    this.probeInFlight = work.then(
      () => {},
      () => {},
    );
    void this.probeInFlight.then(() => (this.probeInFlight = undefined));
    let result: ProbeResult;
    try {
      await withDeadline(work, this.limits.probeTimeoutMs, `probe of disk ${this.id}`);
      const durationMs = performance.now() - startedMs;
      if (wasGone) this.obs.present = true;
      result = noteProbe(this.obs, { ok: true, durationMs }, Date.now(), this.limits);
      this.lastProbe = { at: new Date().toISOString(), ms: Math.round(durationMs * 10) / 10 };
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' && !wasGone) noteHardFault(this.obs, 'ENOENT', `disk directory is gone (${e.message})`, Date.now(), 'gone');
      else if (classifyIoError(error) === 'fault' && faultSeverity(error) === 'instant') noteHardFault(this.obs, e.code ?? 'EIO', e.message, Date.now());
      noteProbe(this.obs, { ok: false, what: e.message }, Date.now(), this.limits);
      this.lastProbe = { at: new Date().toISOString(), ms: -1 };
      result = 'failed';
    }
    if (result !== 'ok') this.events.fault(this, result === 'slow' ? 'slow-probe' : 'probe-failed');
    this.events.probed(this, result);
    this.publish();
    return result;
  }

  /** The operator's drain|mask|unmask (the store persists it in the meta file). */
  applyOperator(action: 'drain' | 'mask' | 'unmask', note: string): void {
    applyOperator(this.obs, action, note, Date.now());
    this.publish();
  }

  /** Restores a persisted operator setting at start (before the store listens). */
  restoreOperator(setting: DiskOperatorSetting, note: string): void {
    this.obs.operator = setting;
    this.obs.operatorNote = note;
    this.publish();
  }

  setVerifying(progress: { checked: number; total: number } | undefined): void {
    if (progress) this.obs.verifying = progress;
    else delete this.obs.verifying;
  }

  /** Verification passed: trusted again. */
  trust(): void {
    clearMask(this.obs);
    this.publish();
  }

  /** Periodic check: the directory is still there, and how much room is left. */
  async refresh(): Promise<void> {
    try {
      const info = await withDeadline(statfs(this.root), this.limits.opTimeoutMs, `statfs on disk ${this.id}`);
      await withDeadline(stat(this.root), this.limits.opTimeoutMs, `stat on disk ${this.id}`);
      this.obs.freeBytes = Number(info.bavail) * Number(info.bsize);
      this.obs.totalBytes = Number(info.blocks) * Number(info.bsize);
      // `present` comes back only through a probe that finds this disk's meta file.
      // Room again after an ENOSPC (blobs deleted): take writes again.
      if (this.obs.noSpaceAtMs !== undefined && this.obs.freeBytes >= this.limits.freeFloorBytes) delete this.obs.noSpaceAtMs;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        if (this.obs.present) this.events.fault(this, 'gone');
        noteHardFault(this.obs, 'ENOENT', 'disk directory is gone', Date.now(), 'gone');
      } else this.noteError(error);
    }
    this.publish();
  }

  status(blobs: number, usedBytes: number): DiskStatus {
    const nowMs = Date.now();
    const v = this.verdict(nowMs);
    return {
      id: this.id,
      state: v.state,
      reason: v.reason,
      freeBytes: this.obs.freeBytes,
      totalBytes: this.obs.totalBytes,
      blobs,
      usedBytes,
      operator: this.operator,
      probe: {
        lastAt: this.lastProbe.at,
        lastMs: this.lastProbe.ms,
        normalMs: Math.round(normalMs(this.obs) * 10) / 10,
        okStreak: this.obs.okStreak ?? 0,
        recentFaults: recentFaults(this.obs, this.limits.faultWindowMs, nowMs).length,
      },
      ...(this.scrubStatus ? { scrub: this.scrubStatus() } : {}),
      ...(this.obs.verifying ? { verifying: { ...this.obs.verifying } } : {}),
    };
  }

  /** Re-evaluates the state (faults leave the window with time) and tells the store of a change. */
  publish(): void {
    const now = this.state;
    if (now === this.lastState) return;
    const was = this.lastState;
    this.lastState = now;
    this.events.stateChanged(this, was, now);
  }
}
