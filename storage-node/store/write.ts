// The verified write path: body → temp file while hashing (whole + per chunk) → fsync → sidecar
// → rename both into place → fsync the directory. Nothing reaches blobs/ unless its SHA-256 is
// its name; everything that fails leaves no file behind.
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobKind } from '../../common/contracts.js';
import { BlobHasher } from './chunks.js';
import { closeQuietly } from './deadline.js';
import { fsyncDir } from './disk-meta.js';
import type { Disk } from './disk.js';
import { StoreError } from './errors.js';
import { blobDir, blobPath, sumsPath, tmpDir, TMP_SUFFIX } from './layout.js';

export interface WriteLimits {
  maxBlobBytes: number;
  idleTimeoutMs: number;
  chunkBytes: number;
  /** Body bytes gathered before one write call (fewer, larger writes through the libuv pool). */
  writeBufferBytes: number;
}

/** A temp file opened on a disk, before any body byte is read (so another disk can be tried). */
export interface Staging {
  disk: Disk;
  id: string;
  kind: BlobKind;
  tmpData: string;
  tmpSums: string;
  fh: FileHandle;
}

export interface Staged extends Omit<Staging, 'fh'> {
  sizeBytes: number;
}

export async function openStaging(disk: Disk, id: string, kind: BlobKind): Promise<Staging> {
  const base = join(tmpDir(disk.root), `${id}.${randomBytes(6).toString('hex')}`);
  const tmpData = base + TMP_SUFFIX;
  // ENOENT here means the disk's tmp directory is gone: the disk vanished.
  const fh = await disk.op('open temp', () => open(tmpData, 'wx', 0o644), { notFoundIsFault: true, onLate: closeQuietly });
  return { disk, id, kind, tmpData, tmpSums: base + '.sums' + TMP_SUFFIX, fh };
}

/** Streams the body into the staging file and checks it; on any failure the temp files are gone. */
export async function receiveBody(staging: Staging, body: Readable, limits: WriteLimits): Promise<Staged> {
  const { disk, fh } = staging;
  const hasher = new BlobHasher(limits.chunkBytes);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let positionBytes = 0;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    for (let off = 0; off < data.length; ) {
      const { bytesWritten } = await disk.op('write temp', () => fh.write(data, off, data.length - off, positionBytes + off));
      if (bytesWritten <= 0) throw new StoreError('disk-failed', `write on disk ${disk.id} made no progress`);
      off += bytesWritten;
    }
    positionBytes += data.length;
  };
  // No byte for idleTimeoutMs: the sender (or our disk) is stuck; give the resources back.
  const idle = setTimeout(() => {
    body.destroy(new StoreError('idle-timeout', `no body bytes for ${limits.idleTimeoutMs} ms`));
  }, limits.idleTimeoutMs);
  try {
    // destroyOnReturn: false, so refusing an oversize body can still answer 413 on the socket.
    const chunks = body.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
    for (;;) {
      const next = await chunks.next().catch((error: unknown) => {
        throw bodyError(error);
      });
      if (next.done) break;
      const chunk = next.value;
      idle.refresh();
      if (hasher.sizeBytes + chunk.length > limits.maxBlobBytes) {
        throw new StoreError('too-large', `blob over the ${limits.maxBlobBytes}-byte limit`);
      }
      hasher.update(chunk);
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= limits.writeBufferBytes) await flush();
    }
    clearTimeout(idle);
    await flush();
    const { idHex, sums } = hasher.finish();
    if (idHex !== staging.id) throw new StoreError('hash-mismatch', `hash mismatch: body is ${idHex}`);
    // Flushing a multi-GiB blob takes as long as it takes: bounded by the deadline, not judged slow.
    await disk.op('fsync temp', () => fh.sync(), { untimed: true });
    closeQuietly(fh);
    await writeSums(disk, staging.tmpSums, sums);
    return { disk, id: staging.id, kind: staging.kind, tmpData: staging.tmpData, tmpSums: staging.tmpSums, sizeBytes: hasher.sizeBytes };
  } catch (error) {
    clearTimeout(idle);
    closeQuietly(fh);
    await discard(staging);
    throw error;
  }
}

async function writeSums(disk: Disk, path: string, sums: Buffer): Promise<void> {
  const fh = await disk.op('open sums temp', () => open(path, 'wx', 0o644), { notFoundIsFault: true, onLate: closeQuietly });
  try {
    await disk.op('write sums', () => fh.writeFile(sums));
    await disk.op('fsync sums', () => fh.sync());
  } finally {
    closeQuietly(fh);
  }
}

/**
 * Moves a staged blob into place. The sidecar goes first: a crash between the two renames leaves
 * an orphan sidecar (ignored, overwritten by the next write) rather than a blob without sums.
 */
export async function commitStaged(staged: Staged): Promise<void> {
  const { disk, id, kind } = staged;
  const dir = blobDir(disk.root, kind, id);
  try {
    await disk.op('mkdir blob dir', () => mkdir(dir, { recursive: true }), { notFoundIsFault: true });
    await disk.op('rename sums', () => rename(staged.tmpSums, sumsPath(disk.root, kind, id)), { notFoundIsFault: true });
    await disk.op('rename blob', () => rename(staged.tmpData, blobPath(disk.root, kind, id)), { notFoundIsFault: true });
    await fsyncDir(disk, dir);
  } catch (error) {
    await discard(staged);
    throw error;
  }
}

/** Removes a staging's temp files (best effort: a vanished disk has nothing left to remove). */
export async function discard(staging: Pick<Staging, 'disk' | 'tmpData' | 'tmpSums'>): Promise<void> {
  for (const path of [staging.tmpData, staging.tmpSums]) {
    await staging.disk.op('remove temp', () => unlink(path)).catch(() => {});
  }
}

/** Errors of the body stream are the sender's, not the disk's. */
function bodyError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  return new StoreError('body-failed', `body stream failed: ${(error as Error)?.message ?? String(error)}`);
}

/** Reads and drops a body we do not need (the blob is already here), with the same idle bound. */
export async function drainBody(body: Readable, idleTimeoutMs: number, maxBytes: number): Promise<void> {
  const idle = setTimeout(() => body.destroy(new StoreError('idle-timeout', `no body bytes for ${idleTimeoutMs} ms`)), idleTimeoutMs);
  let seen = 0;
  try {
    const chunks = body.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
    for (;;) {
      const next = await chunks.next().catch((error: unknown) => {
        throw bodyError(error);
      });
      if (next.done) break;
      idle.refresh();
      seen += next.value.length;
      if (seen > maxBytes) throw new StoreError('too-large', `blob over the ${maxBytes}-byte limit`);
    }
  } finally {
    clearTimeout(idle);
  }
}
