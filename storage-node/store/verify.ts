// Full verification of one stored blob: every byte re-hashed, the whole against its id (its
// SHA-256) and each chunk against the sums sidecar. Used by the scrubber (throttled) and when a
// masked disk comes back (every blob, before the disk is trusted again).
//
// The id decides: a file that hashes to its id is good, whatever its sidecar says; a damaged or
// missing sidecar is rewritten from the file. A file that does not hash to its id is corrupt.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobKind } from '../../common/contracts.js';
import { BlobHasher } from './chunks.js';
import { closeQuietly } from './deadline.js';
import type { Disk } from './disk.js';
import { classifyIoError } from './disk-state.js';
import { blobPath, quarantineDir, sumsPath, tmpDir, TMP_SUFFIX } from './layout.js';

export interface VerifyOptions {
  chunkBytes: number;
  readBufferBytes: number;
  /** Called before each read with its size; resolves when the read may go (a throttle). */
  beforeRead?: (bytes: number) => Promise<void>;
  onBytes?: (bytes: number) => void;
  /** Checked between reads; true stops the verification (result 'aborted'). */
  shouldStop?: () => boolean;
}

export type VerifyResult =
  | { kind: 'ok'; sizeBytes: number; sumsRewritten: boolean }
  | { kind: 'missing' }
  | { kind: 'corrupt'; reason: string }
  | { kind: 'aborted' };

export async function verifyBlobFile(disk: Disk, kind: BlobKind, id: string, options: VerifyOptions): Promise<VerifyResult> {
  const path = blobPath(disk.root, kind, id);
  let fh: FileHandle;
  try {
    fh = await disk.op('open blob (verify)', () => open(path, 'r'), { onLate: closeQuietly });
  } catch (error) {
    if (classifyIoError(error) === 'not-found') return { kind: 'missing' };
    throw error;
  }
  const hasher = new BlobHasher(options.chunkBytes);
  try {
    const size = (await disk.op('fstat blob (verify)', () => fh.stat())).size;
    const buf = Buffer.allocUnsafe(Math.min(options.readBufferBytes, Math.max(1, size)));
    for (let at = 0; at < size; ) {
      if (options.shouldStop?.()) return { kind: 'aborted' };
      const want = Math.min(buf.length, size - at);
      await options.beforeRead?.(want);
      const { bytesRead } = await disk.op('read blob (verify)', () => fh.read(buf, 0, want, at));
      if (bytesRead === 0) return { kind: 'corrupt', reason: `file ended at ${at} of ${size} bytes while being read` };
      hasher.update(buf.subarray(0, bytesRead));
      options.onBytes?.(bytesRead);
      at += bytesRead;
    }
  } finally {
    closeQuietly(fh);
  }
  const { idHex, sums } = hasher.finish();
  if (idHex !== id) return { kind: 'corrupt', reason: `the file hashes to ${idHex}` };
  const sidecar = sumsPath(disk.root, kind, id);
  const stored = await disk.op('read sums (verify)', () => readFile(sidecar)).catch((error: unknown) => {
    if (classifyIoError(error) === 'not-found') return undefined;
    throw error;
  });
  if (stored?.equals(sums)) return { kind: 'ok', sizeBytes: hasher.sizeBytes, sumsRewritten: false };
  await writeSums(disk, id, sidecar, sums);
  return { kind: 'ok', sizeBytes: hasher.sizeBytes, sumsRewritten: true };
}

async function writeSums(disk: Disk, id: string, path: string, sums: Buffer): Promise<void> {
  const tmp = join(tmpDir(disk.root), `${id}.${randomBytes(6).toString('hex')}.sums${TMP_SUFFIX}`);
  const out = await disk.op('open sums temp', () => open(tmp, 'wx', 0o644), { onLate: closeQuietly });
  try {
    await disk.op('write sums', () => out.writeFile(sums));
    await disk.op('fsync sums', () => out.sync());
    closeQuietly(out);
    await disk.op('rename sums', () => rename(tmp, path));
  } catch (error) {
    closeQuietly(out);
    await unlink(tmp).catch(() => {});
    throw error;
  }
}

/** Moves a corrupt replica and its sidecar into quarantine/ (kept for an operator to look at). */
export async function moveToQuarantine(disk: Disk, kind: BlobKind, id: string, onError: (from: string, error: Error) => void): Promise<void> {
  const stamp = Date.now();
  const moves: Array<[string, string]> = [
    [blobPath(disk.root, kind, id), join(quarantineDir(disk.root), `${id}.${stamp}`)],
    [sumsPath(disk.root, kind, id), join(quarantineDir(disk.root), `${id}.${stamp}.sums`)],
  ];
  for (const [from, to] of moves) {
    await disk.op('quarantine', () => rename(from, to)).catch((error: unknown) => {
      if (classifyIoError(error) !== 'not-found') onError(from, error as Error);
    });
  }
}
