// A disk's state is computed from what we have observed of it, by a pure function, so the later
// health machine (suspect, probes, latency outliers, recovery) extends the observations and this
// function without touching the I/O code.
import type { DiskState } from '../../common/contracts.js';

export interface DiskObservations {
  /** The disk's directory answered the last check (false once it vanished). */
  present: boolean;
  freeBytes: number;
  totalBytes: number;
  /** The first fault seen on a real operation (EIO, timeout, …). Sticky until restart for now. */
  fault?: { code: string; message: string; atMs: number };
  /** The last operation that failed for lack of space; cleared by a check that finds room. */
  noSpaceAtMs?: number;
}

export interface DiskVerdict {
  state: DiskState;
  reason: string;
}

export function computeDiskState(obs: DiskObservations, freeFloorBytes: number): DiskVerdict {
  if (!obs.present) return { state: 'masked', reason: 'disk directory is gone' };
  if (obs.fault) return { state: 'masked', reason: `I/O fault (${obs.fault.code}): ${obs.fault.message}`.slice(0, 500) };
  if (obs.noSpaceAtMs !== undefined) return { state: 'readonly', reason: 'disk full (ENOSPC on write)' };
  if (obs.freeBytes < freeFloorBytes) {
    return { state: 'readonly', reason: `free space ${obs.freeBytes} bytes is under the floor of ${freeFloorBytes} bytes` };
  }
  return { state: 'healthy', reason: '' };
}

/** What an error from a disk operation says about the disk itself. */
export type IoErrorClass = 'fault' | 'no-space' | 'not-found' | 'other';

const FAULT_CODES = new Set(['EIO', 'ETIMEDOUT', 'EROFS', 'ENXIO', 'ENODEV', 'ESTALE', 'EUCLEAN', 'EBADMSG', 'ENOTCONN']);

export function classifyIoError(error: unknown): IoErrorClass {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (FAULT_CODES.has(code)) return 'fault';
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'no-space';
  if (code === 'ENOENT') return 'not-found';
  return 'other';
}

/** Only a healthy disk takes new blobs; readonly and masked ones never do. */
export function isWritable(state: DiskState): boolean {
  return state === 'healthy';
}

/** Reads are served from every disk that is not masked (a readonly or draining disk still reads). */
export function isReadable(state: DiskState): boolean {
  return state !== 'masked';
}
