// Where things live on a disk. Paths are only ever built from a validated blob id (64 lowercase
// hex characters) and fixed names, never from other input.
import { join } from 'node:path';
import { isBlobId, type BlobKind } from '../../common/contracts.js';

export const META_FILE = 'ktv-disk.json';
export const SUMS_SUFFIX = '.sums';
export const TMP_SUFFIX = '.tmp';

/** Top-level directory per blob kind. */
export const KIND_DIRS: Record<BlobKind, string> = { data: 'blobs', manifest: 'manifests' };

export function tmpDir(root: string): string {
  return join(root, 'tmp');
}

export function quarantineDir(root: string): string {
  return join(root, 'quarantine');
}

function assertId(id: string): void {
  // A broken invariant, not an operating error: the HTTP layer validates ids first.
  if (!isBlobId(id)) throw new Error(`refusing to build a path from an invalid blob id ${JSON.stringify(id).slice(0, 80)}`);
}

/** `<root>/blobs/ab/cd/` — two levels of 256 keep every directory small at millions of blobs. */
export function blobDir(root: string, kind: BlobKind, id: string): string {
  assertId(id);
  return join(root, KIND_DIRS[kind], id.slice(0, 2), id.slice(2, 4));
}

export function blobPath(root: string, kind: BlobKind, id: string): string {
  return join(blobDir(root, kind, id), id);
}

export function sumsPath(root: string, kind: BlobKind, id: string): string {
  return blobPath(root, kind, id) + SUMS_SUFFIX;
}

/** True when `dir1/dir2/name` is where a blob named `name` belongs. */
export function isPlacedRight(dir1: string, dir2: string, name: string): boolean {
  return isBlobId(name) && name.slice(0, 2) === dir1 && name.slice(2, 4) === dir2;
}
