// The verified read path. A range read touches whole chunks; each chunk's SHA-256 is checked
// against the blob's sidecar before any byte of it is handed out, so a reader can get a short
// answer but never a wrong byte.
//
// Trade-off: chunks already verified are remembered per file identity (device, inode, size,
// mtime) in a bounded LRU, so a hot segment read by 300 rooms is hashed once, not 300 times.
// Bit rot that leaves mtime alone is then not seen by reads; finding it is the scrubber's job
// (it re-hashes everything on a schedule, a later issue) — the cache only skips re-checks of
// bytes that were good when last read.
//
// A missing or wrong-length sidecar (crash between the two renames, an operator's copy) is
// rebuilt by hashing the whole file once: the id is the SHA-256, so the file proves itself.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { closeQuietly } from './deadline.js';
import { BlobHasher, chunkCount, chunkSpan, chunksForRange, DIGEST_BYTES, sha256 } from './chunks.js';
import type { Disk } from './disk.js';
import { StoreError } from './errors.js';
import type { InventoryEntry } from './inventory.js';
import { blobPath, sumsPath, tmpDir, TMP_SUFFIX } from './layout.js';
import type { BufferPool } from './buffer-pool.js';
import type { Lru } from './lru.js';

export interface ReadDeps {
  chunkBytes: number;
  readBufferBytes: number;
  /** Verified chunks per file identity: a bitset, one bit per chunk. */
  verified: Lru<string, Uint8Array>;
  /** Called once when the blob turns out corrupt; moves the replica aside. */
  onCorrupt: (reason: string) => Promise<void>;
  onBytesRead: (bytes: number) => void;
  /** Pieces of range() come from here; the consumer gives each back once sent (optional). */
  pool?: BufferPool;
}

export class BlobReader {
  private constructor(
    readonly id: string,
    readonly entry: InventoryEntry,
    private readonly disk: Disk,
    private readonly fh: FileHandle,
    private readonly identity: string,
    private readonly deps: ReadDeps,
  ) {}

  static async open(id: string, entry: InventoryEntry, disk: Disk, deps: ReadDeps): Promise<BlobReader> {
    const path = blobPath(disk.root, entry.kind, id);
    const fh = await disk.op('open blob', () => open(path, 'r'), { onLate: closeQuietly });
    try {
      const info = await disk.op('fstat blob', () => fh.stat());
      if (info.size !== entry.sizeBytes) {
        await deps.onCorrupt(`size on disk ${info.size} differs from the ${entry.sizeBytes} bytes written`);
        throw corrupt(id, disk);
      }
      // ctime too: any write to the file (or a utimes that puts the mtime back) changes it.
      return new BlobReader(id, entry, disk, fh, `${id}:${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`, deps);
    } catch (error) {
      closeQuietly(fh);
      throw error;
    }
  }

  get diskId(): string {
    return this.disk.id;
  }

  close(): void {
    closeQuietly(this.fh);
  }

  /**
   * Yields the verified bytes of [startByte, endByte] (inclusive) in pieces of at most a chunk.
   * Throws StoreError('corrupt') at the first bad chunk, after quarantining the replica.
   */
  async *range(startByte: number, endByte: number): AsyncGenerator<Buffer> {
    const { chunkBytes, readBufferBytes } = this.deps;
    const size = this.entry.sizeBytes;
    if (size === 0 || endByte < startByte) return;
    const { first, last } = chunksForRange(startByte, endByte, chunkBytes);
    const bits = this.verifiedBits(chunkCount(size, chunkBytes));
    let sums: Buffer | undefined;
    for (let c = first; c <= last; c++) {
      const span = chunkSpan(c, size, chunkBytes);
      const from = Math.max(startByte, span.startByte);
      const to = Math.min(endByte + 1, span.endByte);
      if (isSet(bits, c)) {
        // Known good: read only the slice asked for, in bounded buffers.
        for (let at = from; at < to; at += readBufferBytes) yield await this.readExact(at, Math.min(readBufferBytes, to - at), true);
        continue;
      }
      sums ??= await this.loadSums(first, last);
      const whole = await this.readExact(span.startByte, span.endByte - span.startByte, true);
      const expected = sums.subarray((c - first) * DIGEST_BYTES, (c - first + 1) * DIGEST_BYTES);
      if (!sha256(whole).equals(expected)) {
        await this.deps.onCorrupt(`chunk ${c} does not match its checksum`);
        throw corrupt(this.id, this.disk);
      }
      setBit(bits, c);
      yield whole.subarray(from - span.startByte, to - span.startByte);
    }
  }

  private verifiedBits(chunks: number): Uint8Array {
    let bits = this.deps.verified.get(this.identity);
    if (!bits) {
      bits = new Uint8Array(Math.ceil(chunks / 8));
      this.deps.verified.set(this.identity, bits);
    }
    return bits;
  }

  /** Reads exactly `length` bytes at `position`; a short file is corruption (truncated). */
  private async readExact(position: number, length: number, pooled = false): Promise<Buffer> {
    const buf = pooled && this.deps.pool ? this.deps.pool.take(length) : Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.disk.op('read blob', () => this.fh.read(buf, got, length - got, position + got));
      if (bytesRead === 0) {
        await this.deps.onCorrupt('file is shorter than its recorded size');
        throw corrupt(this.id, this.disk);
      }
      got += bytesRead;
    }
    this.deps.onBytesRead(length);
    return buf;
  }

  /** The digests of chunks first..last, from the sidecar (rebuilt when missing or damaged). */
  private async loadSums(first: number, last: number): Promise<Buffer> {
    const path = sumsPath(this.disk.root, this.entry.kind, this.id);
    const expectedBytes = chunkCount(this.entry.sizeBytes, this.deps.chunkBytes) * DIGEST_BYTES;
    let fh: FileHandle | undefined;
    try {
      fh = await this.disk.op('open sums', () => open(path, 'r'), { onLate: closeQuietly });
      const info = await this.disk.op('fstat sums', () => fh!.stat());
      if (info.size === expectedBytes) {
        const length = (last - first + 1) * DIGEST_BYTES;
        const buf = Buffer.alloc(length);
        const { bytesRead } = await this.disk.op('read sums', () => fh!.read(buf, 0, length, first * DIGEST_BYTES));
        if (bytesRead === length) return buf;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    } finally {
      closeQuietly(fh);
    }
    const all = await this.rebuildSums(path);
    return all.subarray(first * DIGEST_BYTES, (last + 1) * DIGEST_BYTES);
  }

  private async rebuildSums(path: string): Promise<Buffer> {
    const { chunkBytes, readBufferBytes } = this.deps;
    const hasher = new BlobHasher(chunkBytes);
    const size = this.entry.sizeBytes;
    for (let at = 0; at < size; at += readBufferBytes) hasher.update(await this.readExact(at, Math.min(readBufferBytes, size - at)));
    const { idHex, sums } = hasher.finish();
    if (idHex !== this.id) {
      await this.deps.onCorrupt(`missing checksums, and the file hashes to ${idHex}`);
      throw corrupt(this.id, this.disk);
    }
    // Every chunk was just hashed as part of a file whose hash is its id: all are good.
    this.verifiedBits(chunkCount(size, chunkBytes)).fill(0xff);
    // Saving is an optimisation: the bytes are verified either way, so a failure only costs a
    // re-hash next time (and a disk fault is recorded by op()).
    await this.saveSums(path, sums).catch(() => {});
    return sums;
  }

  private async saveSums(path: string, sums: Buffer): Promise<void> {
    const tmp = join(tmpDir(this.disk.root), `${this.id}.${randomBytes(6).toString('hex')}.sums${TMP_SUFFIX}`);
    const out = await this.disk.op('open sums temp', () => open(tmp, 'wx', 0o644), { onLate: closeQuietly });
    try {
      await this.disk.op('write sums', () => out.writeFile(sums));
      await this.disk.op('fsync sums', () => out.sync());
      closeQuietly(out);
      await this.disk.op('rename sums', () => rename(tmp, path));
    } catch (error) {
      closeQuietly(out);
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }
}

function corrupt(id: string, disk: Disk): StoreError {
  return new StoreError('corrupt', `blob ${id} is corrupt on disk ${disk.id}; replica quarantined`);
}

function isSet(bits: Uint8Array, i: number): boolean {
  return (bits[i >> 3]! & (1 << (i & 7))) !== 0;
}

function setBit(bits: Uint8Array, i: number): void {
  bits[i >> 3]! |= 1 << (i & 7);
}
