// The blob store: a node's disks, its inventory and its change log, and the operations on blobs
// (verified write, verified read, delete, quarantine). It knows nothing about HTTP.
import { rename, unlink } from 'node:fs/promises';
import { resolve as resolvePath, join } from 'node:path';
import type { Readable } from 'node:stream';
import { BLOB_KINDS, type BlobKind, type DiskStatus } from '../../common/contracts.js';
import { randomId } from '../../common/ids.js';
import type { Logger } from '../../common/log.js';
import type { StorageNodeConfig } from '../../config/schema.js';
import { ChangeLog } from './change-log.js';
import { rankDisksForWrite } from './choose-disk.js';
import { withDeadline } from './deadline.js';
import { prepareDiskDir, removeStaleTemps, resolveNodeId, writeDiskMeta, type DiskMeta } from './disk-meta.js';
import { classifyIoError, isReadable } from './disk-state.js';
import { Disk, type DiskLimits } from './disk.js';
import { StoreError } from './errors.js';
import { Inventory, type InventoryEntry } from './inventory.js';
import { blobPath, quarantineDir, sumsPath } from './layout.js';
import { Lru } from './lru.js';
import { BlobReader } from './read.js';
import { scanDisk } from './scan.js';
import { commitStaged, discard, drainBody, openStaging, receiveBody, type Staging } from './write.js';

/** Counters the store feeds (the HTTP layer exports them as metrics). */
export interface StoreHooks {
  bytesRead(diskId: string, bytes: number): void;
  bytesWritten(diskId: string, bytes: number): void;
  corruptRead(diskId: string): void;
  hashMismatch(): void;
}

const NO_HOOKS: StoreHooks = { bytesRead: () => {}, bytesWritten: () => {}, corruptRead: () => {}, hashMismatch: () => {} };

export interface BlobStoreOptions {
  config: StorageNodeConfig;
  diskRoots: string[];
  nodeId?: string;
  log: Logger;
  hooks?: StoreHooks;
}

export interface WriteInput {
  id: string;
  kind: BlobKind;
  body: Readable;
  /** From Content-Length or the tracker's command: refuses oversize before reading, picks a disk with room. */
  declaredSizeBytes?: number;
  /** Preferred disk (the tracker's placement); another writable disk is used when it cannot. */
  diskId?: string;
}

export interface WriteResult {
  id: string;
  sizeBytes: number;
  diskId: string;
  existed: boolean;
}

export class BlobStore {
  readonly inventory = new Inventory();
  readonly changes = new ChangeLog();
  private readonly verified: Lru<string, Uint8Array>;
  private readonly locks = new Map<string, Promise<void>>();
  private readonly tempsInUse = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly refreshing = new Set<Disk>();
  /** Blob → the disk its last corrupt copy was on: a repair copy should land elsewhere. */
  private readonly quarantinedOn = new Lru<string, string>(10_000);

  private constructor(
    readonly nodeId: string,
    readonly disks: Disk[],
    private readonly config: StorageNodeConfig,
    private readonly log: Logger,
    private readonly hooks: StoreHooks,
  ) {
    this.verified = new Lru(config.verifiedCacheEntries);
  }

  /** Opens every disk (a bad one is masked, never fatal), settles the node id and scans. */
  static async open(options: BlobStoreOptions): Promise<BlobStore> {
    const { config, log } = options;
    if (options.diskRoots.length === 0) throw new Error('a storage node needs at least one disk');
    const roots = options.diskRoots.map((r) => resolvePath(r));
    const twice = roots.find((r, i) => roots.indexOf(r) !== i);
    if (twice) throw new Error(`disk ${twice} is given twice`);

    const limits: DiskLimits = { opTimeoutMs: config.diskOpTimeoutMs, freeFloorBytes: config.diskFreeFloorBytes };
    const bare = { op: <T>(what: string, work: () => Promise<T>, o?: { onLate?: (v: T) => void }) => withDeadline(work(), limits.opTimeoutMs, what, o?.onLate) };
    const prepared = await Promise.all(
      roots.map(async (root) => {
        try {
          return { root, meta: await prepareDiskDir(bare, root) };
        } catch (error) {
          return { root, error: error as Error };
        }
      }),
    );
    const metas = prepared.map((p) => p.meta).filter((m): m is DiskMeta => m !== undefined);
    const { nodeId, conflict } = resolveNodeId(options.nodeId, metas.map((m) => m.nodeId), () => randomId('n'));
    if (conflict) log.warn('disks carried other node ids; they now belong to this node', { nodeId, found: metas.map((m) => m.nodeId) });

    // Identities first (in order, so a duplicate id is caught), then each disk's I/O in parallel.
    const disks: Disk[] = [];
    const toInit: Array<{ disk: Disk; meta: DiskMeta | undefined }> = [];
    const seenIds = new Set<string>();
    for (const [i, p] of prepared.entries()) {
      if ('error' in p && p.error) {
        const disk = new Disk(`unavailable-${i + 1}`, p.root, limits);
        disk.markFault('EIO', `cannot open ${p.root}: ${p.error.message}`);
        log.error('disk unusable at start; masked', { root: p.root, error: p.error.message });
        disks.push(disk);
        continue;
      }
      const diskId = p.meta?.diskId ?? randomId('d');
      if (seenIds.has(diskId)) {
        const disk = new Disk(`duplicate-${i + 1}`, p.root, limits);
        disk.markFault('EEXIST', `disk id ${diskId} is already used by another disk of this node (a copied disk?)`);
        disks.push(disk);
        continue;
      }
      seenIds.add(diskId);
      const disk = new Disk(diskId, p.root, limits);
      disks.push(disk);
      toInit.push({ disk, meta: p.meta });
    }
    await Promise.all(
      toInit.map(async ({ disk, meta }) => {
        try {
          if (!meta || meta.nodeId !== nodeId) {
            await writeDiskMeta(disk, disk.root, { diskId: disk.id, nodeId, createdAt: meta?.createdAt ?? new Date().toISOString() });
          }
          // Nothing is being written yet: every temp file is left over from a previous run.
          const removed = await removeStaleTemps(disk, disk.root, 0, new Set());
          if (removed > 0) log.info('removed stale temp files', { disk: disk.id, removed });
        } catch (error) {
          disk.markFault((error as NodeJS.ErrnoException).code ?? 'EIO', (error as Error).message);
        }
        await disk.refresh();
      }),
    );

    const store = new BlobStore(nodeId, disks, config, log, options.hooks ?? NO_HOOKS);
    await store.scanAll();
    for (const disk of disks) disk.onStateChange = (d, from, to) => store.diskChanged(d, from, to);
    return store;
  }

  private async scanAll(): Promise<void> {
    await Promise.all(
      this.disks.map(async (disk) => {
        if (!isReadable(disk.state)) return;
        const startedMs = Date.now();
        let duplicates = 0;
        try {
          const r = await scanDisk(disk, this.config.scanConcurrency, (id, sizeBytes, kind) => {
            if (!this.inventory.add(id, { diskId: disk.id, sizeBytes, kind })) duplicates += 1;
          });
          this.log.info('disk scanned', { disk: disk.id, blobs: r.blobs, bytes: r.bytes, strays: r.strays, duplicates, tookMs: Date.now() - startedMs });
        } catch (error) {
          disk.markFault((error as NodeJS.ErrnoException).code ?? 'EIO', `scan failed: ${(error as Error).message}`);
          this.inventory.removeDisk(disk.id);
          this.log.error('disk scan failed; masked', { disk: disk.id, error: (error as Error).message });
        }
      }),
    );
  }

  /** A masked disk serves nothing: its blobs leave the inventory and the trackers get a full report. */
  private diskChanged(disk: Disk, from: string, to: string): void {
    const v = disk.verdict();
    this.log[to === 'healthy' ? 'info' : 'warn']('disk state changed', { disk: disk.id, from, to, reason: v.reason });
    if (to !== 'masked') return;
    const dropped = this.inventory.removeDisk(disk.id);
    if (dropped > 0) this.changes.reset();
  }

  diskById(id: string): Disk | undefined {
    return this.disks.find((d) => d.id === id);
  }

  diskStatuses(): DiskStatus[] {
    return this.disks.map((d) => {
      const c = this.inventory.countsFor(d.id);
      return d.status(c.blobs, c.bytes);
    });
  }

  get(id: string): InventoryEntry | undefined {
    return this.inventory.get(id);
  }

  // ---- write ----------------------------------------------------------------------------------

  async write(input: WriteInput): Promise<WriteResult> {
    const { id, kind, body } = input;
    const maxBytes = this.config.maxBlobBytes;
    if (input.declaredSizeBytes !== undefined && input.declaredSizeBytes > maxBytes) {
      throw new StoreError('too-large', `blob of ${input.declaredSizeBytes} bytes is over the ${maxBytes}-byte limit`);
    }
    const held = this.inventory.get(id);
    if (held) {
      await drainBody(body, this.config.writeIdleTimeoutMs, maxBytes);
      return { id, sizeBytes: held.sizeBytes, diskId: held.diskId, existed: true };
    }
    const staging = await this.stage(input);
    const temps = [staging.tmpData, staging.tmpSums];
    for (const t of temps) this.tempsInUse.add(t);
    try {
      const staged = await receiveBody(staging, body, {
        maxBlobBytes: maxBytes,
        idleTimeoutMs: this.config.writeIdleTimeoutMs,
        chunkBytes: this.config.verifyChunkBytes,
        writeBufferBytes: this.config.readBufferBytes,
      });
      this.hooks.bytesWritten(staging.disk.id, staged.sizeBytes);
      return await this.withIdLock(id, async () => {
        const now = this.inventory.get(id);
        if (now) {
          // A concurrent write of the same blob won; ours is a duplicate.
          await discard(staged);
          return { id, sizeBytes: now.sizeBytes, diskId: now.diskId, existed: true };
        }
        await commitStaged(staged);
        this.inventory.add(id, { diskId: staged.disk.id, sizeBytes: staged.sizeBytes, kind });
        this.changes.record('add', staged.disk.id, id, staged.sizeBytes, kind);
        return { id, sizeBytes: staged.sizeBytes, diskId: staged.disk.id, existed: false };
      });
    } catch (error) {
      if (error instanceof StoreError) {
        if (error.code === 'hash-mismatch') this.hooks.hashMismatch();
        throw error;
      }
      throw diskError(staging.disk, error);
    } finally {
      for (const t of temps) this.tempsInUse.delete(t);
    }
  }

  /** Opens a temp file on the best disk; a disk that fails to open one is skipped (and noted). */
  private async stage(input: WriteInput): Promise<Staging> {
    const choices = this.disks.map((d) => ({ id: d.id, state: d.state, freeBytes: d.obs.freeBytes }));
    const avoid = this.quarantinedOn.get(input.id);
    const ranked = rankDisksForWrite(choices, input.diskId, input.declaredSizeBytes ?? 0, this.config.diskFreeFloorBytes, avoid);
    const reasons: string[] = [];
    for (const diskId of ranked) {
      const disk = this.diskById(diskId)!;
      try {
        return await openStaging(disk, input.id, input.kind);
      } catch (error) {
        reasons.push(`${diskId}: ${(error as Error).message}`);
        this.log.warn('cannot open a temp file; trying another disk', { disk: diskId, error: (error as Error).message });
      }
    }
    const what = input.declaredSizeBytes === undefined ? 'this blob' : `a blob of ${input.declaredSizeBytes} bytes`;
    const why = reasons.length > 0 ? ` (${reasons.join('; ')})` : '';
    throw new StoreError('no-space', `no writable disk has room for ${what}${why}`);
  }

  // ---- read -----------------------------------------------------------------------------------

  /** Opens a blob for verified range reads. The caller closes the reader. */
  async openReader(id: string): Promise<BlobReader> {
    const entry = this.inventory.get(id);
    const disk = entry && this.diskById(entry.diskId);
    if (!entry || !disk || !isReadable(disk.state)) throw new StoreError('not-found', `blob ${id} is not on this node`);
    try {
      return await BlobReader.open(id, entry, disk, {
        chunkBytes: this.config.verifyChunkBytes,
        readBufferBytes: this.config.readBufferBytes,
        verified: this.verified,
        onCorrupt: (reason) => this.quarantine(id, disk, reason),
        onBytesRead: (bytes) => this.hooks.bytesRead(disk.id, bytes),
      });
    } catch (error) {
      if (error instanceof StoreError) throw error;
      if (classifyIoError(error) === 'not-found') {
        // The file is gone. Either the whole disk vanished (refresh masks it) or just this file.
        await disk.refresh();
        const removed = this.inventory.remove(id, disk.id);
        if (removed) this.changes.record('remove', disk.id, id, removed.sizeBytes, removed.kind);
        throw new StoreError('not-found', `blob ${id} is not on this node`);
      }
      throw diskError(disk, error);
    }
  }

  /** Moves a corrupt replica aside (for an operator to look at) and forgets it. */
  private async quarantine(id: string, disk: Disk, reason: string): Promise<void> {
    this.hooks.corruptRead(disk.id);
    const removed = this.inventory.remove(id, disk.id);
    if (!removed) return; // another reader got here first
    this.log.error('corrupt replica quarantined', { blob: id, disk: disk.id, reason });
    this.quarantinedOn.set(id, disk.id);
    this.changes.record('remove', disk.id, id, removed.sizeBytes, removed.kind);
    const stamp = Date.now();
    const moves: Array<[string, string]> = [
      [blobPath(disk.root, removed.kind, id), join(quarantineDir(disk.root), `${id}.${stamp}`)],
      [sumsPath(disk.root, removed.kind, id), join(quarantineDir(disk.root), `${id}.${stamp}.sums`)],
    ];
    for (const [from, to] of moves) {
      await disk.op('quarantine', () => rename(from, to)).catch((error: unknown) => {
        this.log.warn('could not move a corrupt file to quarantine', { from, error: (error as Error).message });
      });
    }
  }

  // ---- delete ---------------------------------------------------------------------------------

  /** Deletes the node's copies (only `diskId`'s when given); returns how many files held it. */
  async delete(id: string, diskId?: string): Promise<number> {
    return this.withIdLock(id, async () => {
      const targets = this.disks.filter((d) => isReadable(d.state) && (diskId === undefined || d.id === diskId));
      let deleted = 0;
      for (const disk of targets) {
        // Both kinds: a stray duplicate found by an old scan may be of either.
        for (const kind of BLOB_KINDS) {
          const gone = await disk.op('delete blob', () => unlink(blobPath(disk.root, kind, id))).then(
            () => true,
            (error: unknown) => {
              if (classifyIoError(error) === 'not-found') return false;
              throw diskError(disk, error);
            },
          );
          if (!gone) continue;
          deleted += 1;
          await disk.op('delete sums', () => unlink(sumsPath(disk.root, kind, id))).catch(() => {});
        }
      }
      const removed = this.inventory.remove(id, diskId);
      if (removed) this.changes.record('remove', removed.diskId, id, removed.sizeBytes, removed.kind);
      if (deleted === 0 && !removed) throw new StoreError('not-found', `blob ${id} is not on this node`);
      return deleted;
    });
  }

  // ---- housekeeping ---------------------------------------------------------------------------

  /** Periodic disk checks and temp-file sweeps. */
  startHousekeeping(): void {
    const check = setInterval(() => {
      for (const disk of this.disks) void this.refreshOnce(disk);
    }, this.config.diskCheckIntervalMs);
    const sweepEveryMs = Math.max(10_000, Math.floor(this.config.tempFileMaxAgeMs / 2));
    const sweep = setInterval(() => {
      for (const disk of this.disks) {
        if (!isReadable(disk.state)) continue;
        removeStaleTemps(disk, disk.root, this.config.tempFileMaxAgeMs, this.tempsInUse).catch(() => {});
      }
    }, sweepEveryMs);
    check.unref();
    sweep.unref();
    this.timers.push(check, sweep);
  }

  private async refreshOnce(disk: Disk): Promise<void> {
    // A masked disk stays masked until restart; a hung check is not stacked on by the next one.
    if (disk.state === 'masked' || this.refreshing.has(disk)) return;
    this.refreshing.add(disk);
    try {
      await disk.refresh();
    } finally {
      this.refreshing.delete(disk);
    }
  }

  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

  /** Runs `fn` after every earlier call for the same blob has settled (write vs delete races). */
  private async withIdLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }
}

/** A raw file system error during a blob operation, as a store error. */
function diskError(disk: Disk, error: unknown): StoreError {
  const e = error as NodeJS.ErrnoException;
  if (classifyIoError(error) === 'no-space') return new StoreError('no-space', `disk ${disk.id} is full`);
  return new StoreError('disk-failed', `disk ${disk.id} failed: ${e.code ?? ''} ${e.message}`.trim());
}
