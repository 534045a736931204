// One disk: its directory, identity, observations and state. Every file system call on it goes
// through `op`, which puts a deadline on it and turns faults into observations, so one bad disk
// is masked instead of hanging or crashing the node.
import { stat, statfs } from 'node:fs/promises';
import type { DiskState, DiskStatus } from '../../common/contracts.js';
import { withDeadline } from './deadline.js';
import { classifyIoError, computeDiskState, type DiskObservations, type DiskVerdict } from './disk-state.js';

export interface DiskLimits {
  opTimeoutMs: number;
  freeFloorBytes: number;
}

export interface OpOptions<T> {
  /** ENOENT means the disk's own directories are gone (tmp dir, the root), not a missing blob. */
  notFoundIsFault?: boolean;
  /** Releases a result that arrives after the deadline (e.g. closes a late file handle). */
  onLate?: (value: T) => void;
}

export class Disk {
  readonly obs: DiskObservations = { present: true, freeBytes: 0, totalBytes: 0 };
  private lastState: DiskState = 'healthy';
  /** Called when the state changes (the store drops a masked disk's blobs). */
  onStateChange: (disk: Disk, from: DiskState, to: DiskState) => void = () => {};

  constructor(
    readonly id: string,
    readonly root: string,
    private readonly limits: DiskLimits,
  ) {}

  verdict(): DiskVerdict {
    return computeDiskState(this.obs, this.limits.freeFloorBytes);
  }

  get state(): DiskState {
    return this.verdict().state;
  }

  /** Runs one file system call with a deadline; faults mark the disk. */
  async op<T>(what: string, work: () => Promise<T>, options: OpOptions<T> = {}): Promise<T> {
    try {
      return await withDeadline(work(), this.limits.opTimeoutMs, `${what} on disk ${this.id}`, options.onLate);
    } catch (error) {
      this.noteError(error, options.notFoundIsFault ?? false);
      throw error;
    }
  }

  /** Records what an error says about the disk. Safe to call with any error. */
  noteError(error: unknown, notFoundIsFault = false): void {
    const kind = classifyIoError(error);
    if (kind === 'fault' || (kind === 'not-found' && notFoundIsFault)) {
      const e = error as NodeJS.ErrnoException;
      this.obs.fault ??= { code: e.code ?? 'EIO', message: e.message, atMs: Date.now() };
    } else if (kind === 'no-space') {
      this.obs.noSpaceAtMs = Date.now();
    }
    this.publish();
  }

  /** Marks the disk masked for a reason found outside `op` (start-up failure, duplicate id). */
  markFault(code: string, message: string): void {
    this.obs.fault ??= { code, message, atMs: Date.now() };
    this.publish();
  }

  /** Periodic check: the directory is still there, and how much room is left. */
  async refresh(): Promise<void> {
    try {
      const info = await withDeadline(statfs(this.root), this.limits.opTimeoutMs, `statfs on disk ${this.id}`);
      await withDeadline(stat(this.root), this.limits.opTimeoutMs, `stat on disk ${this.id}`);
      this.obs.freeBytes = Number(info.bavail) * Number(info.bsize);
      this.obs.totalBytes = Number(info.blocks) * Number(info.bsize);
      // `present` never comes back by itself: the disk's blobs left the inventory when it
      // vanished; a restart (re-scan) brings a remounted disk back.
      // Room again after an ENOSPC (blobs deleted): take writes again.
      if (this.obs.noSpaceAtMs !== undefined && this.obs.freeBytes >= this.limits.freeFloorBytes) delete this.obs.noSpaceAtMs;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') this.obs.present = false;
      else this.noteError(error);
    }
    this.publish();
  }

  status(blobs: number, usedBytes: number): DiskStatus {
    const v = this.verdict();
    return { id: this.id, state: v.state, reason: v.reason, freeBytes: this.obs.freeBytes, totalBytes: this.obs.totalBytes, blobs, usedBytes };
  }

  private publish(): void {
    const now = this.state;
    if (now === this.lastState) return;
    const was = this.lastState;
    this.lastState = now;
    this.onStateChange(this, was, now);
  }
}
