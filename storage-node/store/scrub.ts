// The scrubber of one disk: every blob on it re-hashed once per scrubPeriodMs, oldest-verified
// first, at scrubBytesPerSec (token bucket; rooms come first). A mismatch is a lost replica: it
// is quarantined (never served again, removed from the inventory, so the tracker repairs it).
//
// Envelope: a 4 TB disk at the default 16 MiB/s takes ~2.9 days, inside the 7-day period, using
// ~10% of a 7200 rpm disk's sequential rate. When a pass cannot finish within the period the next
// starts as soon as it ends. The "last verified" times are in memory: after a restart the order
// within the first pass is the inventory's, which only matters for which blob is checked first.
import type { BlobKind, DiskScrubStatus } from '../../common/contracts.js';
import type { Logger } from '../../common/log.js';
import type { Disk } from './disk.js';
import { isReadable } from './disk-state.js';
import type { InventoryEntry } from './inventory.js';
import { Lru } from './lru.js';
import { TokenBucket } from './throttle.js';
import { verifyBlobFile } from './verify.js';

export interface ScrubDeps {
  disk: Disk;
  periodMs: number;
  bytesPerSec: number;
  chunkBytes: number;
  readBufferBytes: number;
  /** When to look again after finding the disk unusable (masked, verifying). */
  retryMs: number;
  /** Most "last verified" times remembered (one per blob of the disk; bounded). */
  maxTracked: number;
  blobsOnDisk(): Array<[string, InventoryEntry]>;
  /** Still held on this disk (not deleted or quarantined meanwhile)? */
  holds(id: string): boolean;
  corrupt(id: string, kind: BlobKind, reason: string): Promise<void>;
  missing(id: string): void;
  onBytes(bytes: number): void;
  log: Logger;
}

export class Scrubber {
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private wake?: () => void;
  private nextPassAtMs: number;
  private readonly lastVerifiedMs: Lru<string, number>;
  private readonly bucket: TokenBucket;
  private readonly stats = { lastPassAt: '', passVerified: 0, corruptFound: 0, bytesVerified: 0 };
  private running?: Promise<void>;

  constructor(private readonly deps: ScrubDeps, firstPassDelayMs: number) {
    this.nextPassAtMs = Date.now() + firstPassDelayMs;
    this.lastVerifiedMs = new Lru(deps.maxTracked);
    // Burst of one read buffer: the rate holds over any second, not only on average.
    this.bucket = new TokenBucket(deps.bytesPerSec, deps.readBufferBytes, Date.now());
  }

  get enabled(): boolean {
    return this.deps.bytesPerSec > 0;
  }

  status(): DiskScrubStatus {
    return { ...this.stats, rateBytesPerSec: this.deps.bytesPerSec };
  }

  start(): void {
    if (!this.enabled || this.running) return;
    this.running = this.loop().catch((error: unknown) => this.deps.log.error('scrubber stopped by a bug', { disk: this.deps.disk.id, error: (error as Error).message }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    await this.running;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, Math.max(0, ms));
      this.timer.unref();
    });
  }

  private async loop(): Promise<void> {
    const { disk, log } = this.deps;
    while (!this.stopped) {
      await this.sleep(this.nextPassAtMs - Date.now());
      if (this.stopped) return;
      if (!this.usable()) {
        this.nextPassAtMs = Date.now() + this.deps.retryMs;
        continue;
      }
      const passStartMs = Date.now();
      const finished = await this.pass();
      if (finished) {
        this.stats.lastPassAt = new Date().toISOString();
        this.nextPassAtMs = passStartMs + this.deps.periodMs;
        log.info('scrub pass done', { disk: disk.id, blobs: this.stats.passVerified, tookMs: Date.now() - passStartMs });
      } else {
        // Interrupted (disk masked, node closing): resume later; the verified ones sort last.
        this.nextPassAtMs = Date.now() + this.deps.retryMs;
      }
    }
  }

  private usable(): boolean {
    const { disk } = this.deps;
    return isReadable(disk.state) && disk.obs.verifying === undefined;
  }

  /** One pass over the disk's blobs, oldest-verified first; false when interrupted. */
  private async pass(): Promise<boolean> {
    const { disk, log } = this.deps;
    const order = this.deps.blobsOnDisk().map(([id, e]) => ({ id, kind: e.kind, at: this.lastVerifiedMs.get(id) ?? 0 }));
    order.sort((a, b) => a.at - b.at);
    this.stats.passVerified = 0;
    for (const { id, kind } of order) {
      if (this.stopped || !this.usable()) return false;
      if (!this.deps.holds(id)) continue;
      let result;
      try {
        result = await verifyBlobFile(disk, kind, id, {
          chunkBytes: this.deps.chunkBytes,
          readBufferBytes: this.deps.readBufferBytes,
          beforeRead: async (bytes) => {
            const waitMs = this.bucket.take(bytes, Date.now());
            if (waitMs > 0) await this.sleep(waitMs);
          },
          onBytes: (bytes) => {
            this.stats.bytesVerified += bytes;
            this.deps.onBytes(bytes);
          },
          shouldStop: () => this.stopped || !this.usable(),
        });
      } catch (error) {
        // A disk error: op() noted it (the health machine decides); try again later.
        log.warn('scrub read failed', { disk: disk.id, blob: id, error: (error as Error).message });
        return false;
      }
      if (result.kind === 'aborted') return false;
      if (result.kind === 'missing') {
        if (this.deps.holds(id)) this.deps.missing(id);
        continue;
      }
      if (result.kind === 'corrupt') {
        if (!this.deps.holds(id)) continue; // deleted while we read it
        this.stats.corruptFound += 1;
        log.error('scrub found a corrupt replica; quarantined', { disk: disk.id, blob: id, reason: result.reason });
        await this.deps.corrupt(id, kind, `scrub: ${result.reason}`);
        continue;
      }
      if (result.sumsRewritten) log.warn('scrub rewrote a damaged checksum sidecar (the blob itself is good)', { disk: disk.id, blob: id });
      this.lastVerifiedMs.set(id, Date.now());
      this.stats.passVerified += 1;
    }
    return true;
  }
}
