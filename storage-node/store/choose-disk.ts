// Which disk takes a new blob. Pure: the caller passes the disks' current state.
import type { DiskState } from '../../common/contracts.js';
import { isWritable } from './disk-state.js';

export interface DiskChoice {
  id: string;
  state: DiskState;
  freeBytes: number;
}

/**
 * Disks to try, best first: the requested disk when it can take the blob (the tracker chose it
 * for placement), then the other writable disks, healthy before suspect, by most free space. A disk that would drop under
 * the free-space floor with this blob is left out. A disk to avoid (it just held a corrupt copy
 * of this very blob) goes last: still better than no copy, but the worst place for a new one.
 * Empty: nowhere to write (507).
 */
export function rankDisksForWrite(
  disks: DiskChoice[],
  requestedId: string | undefined,
  sizeBytes: number,
  freeFloorBytes: number,
  avoidId?: string,
): string[] {
  const fits = disks.filter((d) => isWritable(d.state) && d.freeBytes - sizeBytes >= freeFloorBytes);
  // Healthy before suspect (a suspect disk still takes writes, as a last resort), then by room.
  const rank = (d: DiskChoice): number => (d.state === 'suspect' ? 1 : 0);
  fits.sort((a, b) => rank(a) - rank(b) || b.freeBytes - a.freeBytes || a.id.localeCompare(b.id));
  const requested = fits.find((d) => d.id === requestedId);
  const ordered = requested ? [requested, ...fits.filter((d) => d !== requested)] : fits;
  const avoided = ordered.filter((d) => d.id === avoidId);
  return [...ordered.filter((d) => d.id !== avoidId), ...avoided].map((d) => d.id);
}
