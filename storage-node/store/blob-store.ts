// The blob store: a node's disks, its inventory and its change log, and the operations on blobs
// (verified write, verified read, delete, quarantine), plus each disk's health loop (probes,
// recovery with verification, scrubbing, the operator's setting). It knows nothing about HTTP.
import { unlink } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { BLOB_KINDS, type BlobKind, type DiskOperatorAction, type DiskStatus } from '../../common/contracts.js';
import { randomId } from '../../common/ids.js';
import type { Logger } from '../../common/log.js';
import type { StorageNodeConfig } from '../../config/schema.js';
import { ChangeLog } from './change-log.js';
import { rankDisksForWrite } from './choose-disk.js';
import { withDeadline } from './deadline.js';
import { prepareDiskDir, removeStaleTemps, resolveNodeId, writeDiskMeta, type DiskMeta } from './disk-meta.js';
import { classifyIoError, isReadable, recoveryDue, recoveryIntact } from './disk-state.js';
import { Disk, type DiskLimits, type ProbeResult } from './disk.js';
import { StoreError } from './errors.js';
import { Inventory, type InventoryEntry } from './inventory.js';
import { blobPath, sumsPath } from './layout.js';
import { Lru } from './lru.js';
import { BlobReader } from './read.js';
import { scanDisk } from './scan.js';
import { BufferPool } from './buffer-pool.js';
import { Scrubber } from './scrub.js';
import { moveToQuarantine, verifyBlobFile } from './verify.js';
import { commitStaged, discard, drainBody, openStaging, receiveBody, type Staging } from './write.js';

/** Counters the store feeds (the HTTP layer exports them as metrics). */
export interface StoreHooks {
  bytesRead(diskId: string, bytes: number): void;
  bytesWritten(diskId: string, bytes: number): void;
  corruptRead(diskId: string): void;
  hashMismatch(): void;
  probe(diskId: string, result: ProbeResult): void;
  fault(diskId: string, kind: string): void;
  scrubBytes(diskId: string, bytes: number): void;
  scrubCorrupt(diskId: string): void;
  recovered(diskId: string, result: 'trusted' | 'aborted'): void;
}

const NO_HOOKS: StoreHooks = {
  bytesRead: () => {},
  bytesWritten: () => {},
  corruptRead: () => {},
  hashMismatch: () => {},
  probe: () => {},
  fault: () => {},
  scrubBytes: () => {},
  scrubCorrupt: () => {},
  recovered: () => {},
};

/** Suspect reports from trackers count one fault per disk per this (see suspectReported). */
const SUSPECT_REPORT_EVERY_MS_MIN = 1000;

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
  /** Buffers for range reads served to the network (at most 64 idle: 64 MiB at 1 MiB each). */
  readonly readPool: BufferPool;
  private readonly locks = new Map<string, Promise<void>>();
  private readonly tempsInUse = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly refreshing = new Set<Disk>();
  /** Blob → the disk its last corrupt copy was on: a repair copy should land elsewhere. */
  private readonly quarantinedOn = new Lru<string, string>(10_000);
  /** Each disk's meta file content (the operator setting is persisted in it). */
  private readonly metas = new Map<string, DiskMeta>();
  private readonly probing = new Set<Disk>();
  private readonly recovering = new Map<Disk, Promise<void>>();
  private readonly scrubbers = new Map<Disk, Scrubber>();
  private readonly lastSuspectMs = new Map<string, number>();
  private readonly followUps = new Map<Disk, NodeJS.Timeout>();
  private closed = false;

  private constructor(
    readonly nodeId: string,
    readonly disks: Disk[],
    private readonly config: StorageNodeConfig,
    private readonly log: Logger,
    private readonly hooks: StoreHooks,
  ) {
    this.verified = new Lru(config.verifiedCacheEntries);
    this.readPool = new BufferPool(Math.max(config.verifyChunkBytes, config.readBufferBytes), 64);
  }

  /** Opens every disk (a bad one is masked, never fatal), settles the node id and scans. */
  static async open(options: BlobStoreOptions): Promise<BlobStore> {
    const { config, log } = options;
    if (options.diskRoots.length === 0) throw new Error('a storage node needs at least one disk');
    const roots = options.diskRoots.map((r) => resolvePath(r));
    const twice = roots.find((r, i) => roots.indexOf(r) !== i);
    if (twice) throw new Error(`disk ${twice} is given twice`);

    const limits: DiskLimits = {
      opTimeoutMs: config.diskOpTimeoutMs,
      freeFloorBytes: config.diskFreeFloorBytes,
      probeTimeoutMs: config.probeTimeoutMs,
      probeBytes: config.probeBytes,
      faultWindowMs: config.faultWindowMs,
      faultsToSuspect: config.faultsToSuspect,
      faultsToMask: config.faultsToMask,
      recoveryProbes: config.recoveryProbes,
      slowFactor: config.slowFactor,
      slowFloorMs: config.slowFloorMs,
    };
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
        disk.markFault('EIO', `cannot open ${p.root}: ${p.error.message}`, 'start');
        log.error('disk unusable at start; masked', { root: p.root, error: p.error.message });
        disks.push(disk);
        continue;
      }
      const diskId = p.meta?.diskId ?? randomId('d');
      if (seenIds.has(diskId)) {
        const disk = new Disk(`duplicate-${i + 1}`, p.root, limits);
        disk.markFault('EEXIST', `disk id ${diskId} is already used by another disk of this node (a copied disk?)`, 'start');
        disks.push(disk);
        continue;
      }
      seenIds.add(diskId);
      const disk = new Disk(diskId, p.root, limits);
      // The operator's mask or drain was kept on the disk: it holds across restarts.
      if (p.meta?.operator && p.meta.operator.setting !== 'none') disk.restoreOperator(p.meta.operator.setting, p.meta.operator.note);
      disks.push(disk);
      toInit.push({ disk, meta: p.meta });
    }
    const metaById = new Map<string, DiskMeta>();
    await Promise.all(
      toInit.map(async ({ disk, meta }) => {
        try {
          const want: DiskMeta = { ...meta, diskId: disk.id, nodeId, createdAt: meta?.createdAt ?? new Date().toISOString() };
          metaById.set(disk.id, want);
          if (!meta || meta.nodeId !== nodeId) await writeDiskMeta(disk, disk.root, want);
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
    for (const [id, meta] of metaById) store.metas.set(id, meta);
    await store.scanAll();
    for (const disk of disks) {
      disk.events = {
        stateChanged: (d, from, to) => store.diskChanged(d, from, to),
        probed: (d, result) => store.hooks.probe(d.id, result),
        fault: (d, kind) => store.hooks.fault(d.id, kind),
      };
      const scrubber = new Scrubber(
        {
          disk,
          periodMs: config.scrubPeriodMs,
          bytesPerSec: config.scrubBytesPerSec,
          chunkBytes: config.verifyChunkBytes,
          readBufferBytes: config.readBufferBytes,
          retryMs: config.probeIntervalMs,
          maxTracked: 2_000_000,
          blobsOnDisk: () => [...store.inventory.entries()].filter(([, e]) => e.diskId === disk.id),
          holds: (id) => store.inventory.get(id)?.diskId === disk.id,
          corrupt: async (id, _kind, reason) => {
            store.hooks.scrubCorrupt(disk.id);
            await store.quarantine(id, disk, reason);
          },
          missing: (id) => store.forgetMissing(id, disk),
          onBytes: (bytes) => store.hooks.scrubBytes(disk.id, bytes),
          log,
        },
        // The first pass waits a little: start-up (scan, reports) comes first.
        Math.min(config.scrubPeriodMs, Math.max(config.probeIntervalMs, 1000)),
      );
      disk.scrubStatus = () => scrubber.status();
      store.scrubbers.set(disk, scrubber);
    }
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
    const level = to === 'masked' ? 'error' : to === 'healthy' ? 'info' : 'warn';
    this.log[level]('disk state changed', { disk: disk.id, from, to, reason: v.reason });
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

  /**
   * Opens a blob for verified range reads. The caller closes the reader. With `pooled`, range()
   * pieces come from `readPool` and the caller gives each back once it has been sent.
   */
  async openReader(id: string, opts: { pooled?: boolean } = {}): Promise<BlobReader> {
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
        pool: opts.pooled ? this.readPool : undefined,
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
    await moveToQuarantine(disk, removed.kind, id, (from, error) => {
      this.log.warn('could not move a corrupt file to quarantine', { from, error: error.message });
    });
  }

  /** A blob file that vanished from a disk that is otherwise fine: forget it (the tracker repairs it). */
  private forgetMissing(id: string, disk: Disk): void {
    const removed = this.inventory.remove(id, disk.id);
    if (!removed) return;
    this.log.warn('blob file missing; removed from the inventory', { blob: id, disk: disk.id });
    this.changes.record('remove', disk.id, id, removed.sizeBytes, removed.kind);
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

  /** Periodic disk checks, health probes, scrubbing and temp-file sweeps. */
  startHousekeeping(): void {
    const check = setInterval(() => {
      for (const disk of this.disks) void this.refreshOnce(disk);
    }, this.config.diskCheckIntervalMs);
    const probe = setInterval(() => {
      for (const disk of this.disks) void this.probeOnce(disk);
    }, this.config.probeIntervalMs);
    probe.unref();
    this.timers.push(probe);
    for (const scrubber of this.scrubbers.values()) scrubber.start();
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
    // A hung check is not stacked on by the next one; a gone disk is the probe's to watch.
    if (!disk.obs.present || !disk.probeable || this.refreshing.has(disk)) return;
    this.refreshing.add(disk);
    try {
      await disk.refresh();
    } finally {
      this.refreshing.delete(disk);
    }
  }

  /**
   * One probe of one disk (the Disk refuses to stack them), then recovery when it is due. A probe
   * that failed or hung on a disk still in service is followed up after probeTimeoutMs instead of
   * a whole interval: a hung disk is masked after faultsToMask probe deadlines (~3 × 2 s with the
   * defaults), not after faultsToMask intervals.
   */
  private async probeOnce(disk: Disk): Promise<void> {
    if (this.closed) return;
    let result: ProbeResult;
    if (this.probing.has(disk)) {
      // The previous call is still waiting on its deadline; Disk.probe counts a hang itself.
      result = await disk.probe();
    } else {
      this.probing.add(disk);
      try {
        result = await disk.probe();
      } finally {
        this.probing.delete(disk);
      }
    }
    if ((result === 'failed' || result === 'hung') && disk.state !== 'masked' && !this.followUps.has(disk) && !this.closed) {
      const timer = setTimeout(() => {
        this.followUps.delete(disk);
        void this.probeOnce(disk);
      }, this.config.probeTimeoutMs);
      timer.unref();
      this.followUps.set(disk, timer);
    }
    this.maybeRecover(disk);
  }

  private maybeRecover(disk: Disk): void {
    // Operations still stuck in the kernel: the disk has not really come back yet.
    if (this.closed || this.recovering.has(disk) || disk.stuckOps > 0 || !recoveryDue(disk.obs, disk.healthParams)) return;
    const run = this.recover(disk)
      .catch((error: unknown) => this.log.error('disk recovery failed', { disk: disk.id, error: (error as Error).message }))
      .finally(() => this.recovering.delete(disk));
    this.recovering.set(disk, run);
  }

  /**
   * A masked disk passed recoveryProbes probes in a row: re-hash every blob on it against its id
   * (corrupt ones quarantined), then put the good ones back in the inventory and trust the disk.
   * Nothing is served from it before that. Unthrottled, one blob at a time: the disk serves
   * nothing meanwhile, and the sooner it is back the fewer repair copies are needed.
   */
  private async recover(disk: Disk): Promise<void> {
    const params = disk.healthParams;
    const startedMs = Date.now();
    this.log.info('disk answers probes again; verifying its blobs before trusting it', { disk: disk.id });
    disk.setVerifying({ checked: 0, total: 0 });
    const found: Array<{ id: string; sizeBytes: number; kind: BlobKind }> = [];
    let intact = true;
    try {
      await scanDisk(disk, this.config.scanConcurrency, (id, sizeBytes, kind) => found.push({ id, sizeBytes, kind }));
      disk.setVerifying({ checked: 0, total: found.length });
      const good: typeof found = [];
      let corrupt = 0;
      for (const [i, blob] of found.entries()) {
        if (this.closed || !recoveryIntact(disk.obs, params)) {
          intact = false;
          break;
        }
        const r = await verifyBlobFile(disk, blob.kind, blob.id, {
          chunkBytes: this.config.verifyChunkBytes,
          readBufferBytes: this.config.readBufferBytes,
          shouldStop: () => this.closed || !recoveryIntact(disk.obs, params),
        });
        if (r.kind === 'aborted') {
          intact = false;
          break;
        }
        if (r.kind === 'ok') good.push({ ...blob, sizeBytes: r.sizeBytes });
        if (r.kind === 'corrupt') {
          corrupt += 1;
          this.hooks.scrubCorrupt(disk.id);
          this.log.error('corrupt replica found while verifying a returning disk; quarantined', { disk: disk.id, blob: blob.id, reason: r.reason });
          this.quarantinedOn.set(blob.id, disk.id);
          await moveToQuarantine(disk, blob.kind, blob.id, (from, error) => this.log.warn('could not move a corrupt file to quarantine', { from, error: error.message }));
        }
        disk.setVerifying({ checked: i + 1, total: found.length });
      }
      if (!intact || !recoveryIntact(disk.obs, params)) {
        this.log.warn('disk faulted again while being verified; stays masked', { disk: disk.id, reason: disk.verdict().reason });
        this.hooks.recovered(disk.id, 'aborted');
        return;
      }
      await disk.refresh();
      let duplicates = 0;
      for (const b of good) if (!this.inventory.add(b.id, { diskId: disk.id, sizeBytes: b.sizeBytes, kind: b.kind })) duplicates += 1;
      disk.setVerifying(undefined);
      disk.trust();
      // Thousands of adds at once: one full report to every tracker instead.
      this.changes.reset();
      this.hooks.recovered(disk.id, 'trusted');
      this.log.info('disk verified and trusted again', { disk: disk.id, blobs: good.length, corrupt, duplicates, tookMs: Date.now() - startedMs, state: disk.state });
    } catch (error) {
      this.log.warn('disk failed while being verified; stays masked', { disk: disk.id, error: (error as Error).message });
      this.hooks.recovered(disk.id, 'aborted');
    } finally {
      disk.setVerifying(undefined);
    }
  }

  /**
   * Trackers say streamers failed to read from these disks: probe each at once and count one
   * fault per disk, at most once per probe interval, however many trackers or failures report it
   * (a streamer's failures may be the network's; the disk's own probes decide the rest).
   */
  suspectReported(reports: ReadonlyArray<{ disk: string; failures: number; reason: string }>): void {
    const nowMs = Date.now();
    const everyMs = Math.max(SUSPECT_REPORT_EVERY_MS_MIN, this.config.probeIntervalMs);
    for (const r of reports) {
      const disk = this.diskById(r.disk);
      if (!disk || !isReadable(disk.state)) continue;
      if (nowMs - (this.lastSuspectMs.get(disk.id) ?? -Infinity) < everyMs) continue;
      this.lastSuspectMs.set(disk.id, nowMs);
      this.log.warn('a tracker reports read failures on a disk; probing it', { disk: disk.id, failures: r.failures, reason: r.reason });
      disk.noteSuspectReport(`streamers: ${r.failures} read failure(s)${r.reason ? `: ${r.reason}` : ''}`);
      void this.probeOnce(disk);
    }
  }

  /**
   * The operator's drain|mask|unmask, persisted in the disk's meta file so it survives a restart.
   * A disk that cannot be written is still switched in memory (masking a dying disk must work);
   * the answer says whether the setting was saved.
   */
  async operatorCommand(disk: Disk, action: DiskOperatorAction, note: string): Promise<{ status: DiskStatus; persisted: boolean }> {
    disk.applyOperator(action, note);
    this.log.warn('operator command applied', { disk: disk.id, action, note, state: disk.state });
    const meta = this.metas.get(disk.id);
    let persisted = false;
    if (meta) {
      const next: DiskMeta = { ...meta, operator: { setting: disk.operator, note: disk.obs.operatorNote ?? '', at: new Date().toISOString() } };
      try {
        await writeDiskMeta(disk, disk.root, next);
        this.metas.set(disk.id, next);
        persisted = true;
      } catch (error) {
        this.log.error('could not save the operator setting on the disk; it holds until restart', { disk: disk.id, error: (error as Error).message });
      }
    }
    if (action === 'unmask') void this.probeOnce(disk);
    const c = this.inventory.countsFor(disk.id);
    return { status: disk.status(c.blobs, c.bytes), persisted };
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    for (const s of this.scrubbers.values()) void s.stop();
    for (const t of this.followUps.values()) clearTimeout(t);
    this.followUps.clear();
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
