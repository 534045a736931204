// Blob → replicas index, rebuilt from storage-node reports (DESIGN.md: nodes are the truth).
//
// Back of the envelope: 1,000,000 blobs × 2 replicas. A Map<string, {size, kind, Set}> costs
// ~300 bytes per blob (64-char key string, object, Set, two key strings) ≈ 300 MB and a lot of
// GC work. Here a blob is a slot in parallel typed arrays: 32-byte raw id + 8 size + 1 kind +
// 1 count + 4×2 inline replica locations + 4 generation ≈ 54 bytes, plus an open-addressing table
// of Int32 (load ≤ 0.5 → ~8 bytes per blob), plus 8 bytes of "first seen" time (repair leaves
// young blobs alone): ~70 MB for a million, nearly invisible to the GC.
// A replica is a "location": (node, disk) interned as a small integer by the registry.
// Lookup is one hash probe sequence comparing eight 32-bit words: O(1), well under a microsecond.
import type { BlobKind } from '../../common/contracts.js';

const ID_BYTES = 32;
const ID_WORDS = 8;
/** Replica locations stored inline per blob; more (rare: repair/drain overlap) spill into a Map. */
const INLINE_REPLICAS = 4;
const KIND_FREE = 255;
const KIND_CODES: Record<BlobKind, number> = { data: 0, manifest: 1 };
const KIND_NAMES: BlobKind[] = ['data', 'manifest'];
/** Location ids are Uint16; 0 means "empty". */
export const MAX_LOCATION = 0xffff;

const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = 10 + i;

export interface ScanView {
  slotLimit: number;
  /** KIND_FREE (255) marks an unused slot. */
  kinds: Uint8Array;
  counts: Uint8Array;
  /** INLINE_REPLICAS locations per slot; beyond that, `overflow`. */
  replicas: Uint16Array;
  overflow: ReadonlyMap<number, readonly number[]>;
  /** When each blob entered the index. */
  addedAtMs: Float64Array;
  sizes: Float64Array;
}

export const SCAN_INLINE_REPLICAS = INLINE_REPLICAS;
export const SCAN_KIND_FREE = KIND_FREE;

export interface AddResult {
  slot: number;
  /** The blob was not in the index before. */
  newBlob: boolean;
  /** The location was not yet a replica of this blob. */
  added: boolean;
}

export class BlobIndex {
  private capacity = 0;
  private ids = new Uint8Array(0);
  private idWords = new Uint32Array(0);
  private sizes = new Float64Array(0);
  private addedAtMs = new Float64Array(0);
  private kinds = new Uint8Array(0);
  private counts = new Uint8Array(0);
  private replicas = new Uint16Array(0);
  /** Bumped when a slot is freed, so a remembered (slot, generation) pair can tell reuse. */
  private generations = new Uint32Array(0);
  private readonly overflow = new Map<number, number[]>();
  private table = new Int32Array(0);
  private tableMask = 0;
  private readonly freeSlots: number[] = [];
  /** Slots in [0, highWater) have been used at least once. */
  private highWater = 0;
  private blobCount = 0;
  private byteCount = 0;
  /** Changes on every mutation: lets callers cache derived numbers. */
  version = 0;
  // Per-process seed: ids are hashes, but a signed node could still pick ids that share a prefix.
  private readonly seed = (Math.random() * 0x100000000) >>> 0;
  private readonly scratch = new Uint8Array(ID_BYTES);
  private readonly scratchWords = new Uint32Array(this.scratch.buffer);

  constructor(initialCapacity = 1024, private readonly now: () => number = Date.now) {
    this.growSlots(Math.max(16, initialCapacity));
    this.rehash(nextPowerOfTwo(Math.max(32, initialCapacity * 2)));
  }

  get size(): number {
    return this.blobCount;
  }
  get totalBytes(): number {
    return this.byteCount;
  }
  /** Upper bound for slot iteration. */
  get slotLimit(): number {
    return this.highWater;
  }

  /** Slot of `id`, or -1. `id` must be a validated blob id (64 lowercase hex). */
  find(id: string): number {
    if (!this.parseId(id)) return -1;
    const w = this.scratchWords;
    for (let pos = this.hashWords(w, 0) & this.tableMask; ; pos = (pos + 1) & this.tableMask) {
      const entry = this.table[pos]!;
      if (entry === 0) return -1;
      if (this.sameId(entry - 1, w)) return entry - 1;
    }
  }

  /** Adds `location` as a replica of `id` (creating the blob if needed). Idempotent. */
  addReplica(id: string, sizeBytes: number, kind: BlobKind, location: number): AddResult {
    if (location <= 0 || location > MAX_LOCATION) throw new Error(`location out of range: ${location}`);
    if (!this.parseId(id)) throw new Error(`not a blob id: ${id}`);
    const w = this.scratchWords;
    let pos = this.hashWords(w, 0) & this.tableMask;
    for (; ; pos = (pos + 1) & this.tableMask) {
      const entry = this.table[pos]!;
      if (entry === 0) break;
      const slot = entry - 1;
      if (this.sameId(slot, w)) {
        const added = this.attach(slot, location);
        if (added) this.version++;
        return { slot, newBlob: false, added };
      }
    }
    if ((this.blobCount + 1) * 2 > this.table.length) {
      this.rehash(this.table.length * 2);
      return this.addReplica(id, sizeBytes, kind, location);
    }
    const slot = this.allocSlot();
    this.idWords.set(w, slot * ID_WORDS);
    this.sizes[slot] = sizeBytes;
    this.addedAtMs[slot] = this.now();
    this.kinds[slot] = KIND_CODES[kind];
    this.counts[slot] = 0;
    this.attach(slot, location);
    this.table[pos] = slot + 1;
    this.blobCount++;
    this.byteCount += sizeBytes;
    this.version++;
    return { slot, newBlob: true, added: true };
  }

  /** Removes one replica; the blob disappears with its last replica. Returns whether it was there. */
  removeReplica(id: string, location: number): boolean {
    const slot = this.find(id);
    if (slot < 0 || !this.detach(slot, location)) return false;
    if (this.counts[slot] === 0) this.freeSlot(slot);
    this.version++;
    return true;
  }

  /**
   * Removes every replica whose location is flagged in `locationMask` (one node's disks) and
   * returns the slots left without any replica. They are NOT freed yet: a full report re-adds
   * what the node still has, then calls freeIfEmpty, so the swap is atomic for readers.
   */
  detachLocations(locationMask: Uint8Array): number[] {
    const emptied: number[] = [];
    for (let slot = 0; slot < this.highWater; slot++) {
      if (this.kinds[slot] === KIND_FREE) continue;
      const n = this.counts[slot]!;
      let removedAny = false;
      for (let i = n - 1; i >= 0; i--) {
        const loc = this.replicaAt(slot, i);
        if (locationMask[loc] === 1) {
          this.detach(slot, loc);
          removedAny = true;
        }
      }
      if (removedAny && this.counts[slot] === 0) emptied.push(slot);
    }
    if (emptied.length > 0 || locationMask.length > 0) this.version++;
    return emptied;
  }

  /** Re-adds a replica to a slot remembered earlier, if the slot still holds the same blob. */
  attachToSlot(slot: number, generation: number, location: number): boolean {
    if (slot >= this.highWater || this.kinds[slot] === KIND_FREE || this.generations[slot] !== generation) return false;
    const added = this.attach(slot, location);
    if (added) this.version++;
    return added;
  }

  freeIfEmpty(slot: number): void {
    if (slot < this.highWater && this.kinds[slot] !== KIND_FREE && this.counts[slot] === 0) {
      this.freeSlot(slot);
      this.version++;
    }
  }

  /**
   * Read-only views of the slot arrays for whole-index scans (repair runs one every second over
   * a million blobs; per-replica method calls cost ~5x more). Valid until the next mutation.
   */
  scanView(): ScanView {
    return { slotLimit: this.highWater, kinds: this.kinds, counts: this.counts, replicas: this.replicas, overflow: this.overflow, addedAtMs: this.addedAtMs, sizes: this.sizes };
  }

  // ---- slot accessors (for scans; `slot` must be in use) --------------------------------------

  isUsed(slot: number): boolean {
    return slot < this.highWater && this.kinds[slot] !== KIND_FREE;
  }
  generationOf(slot: number): number {
    return this.generations[slot]!;
  }
  sizeOf(slot: number): number {
    return this.sizes[slot]!;
  }
  kindOf(slot: number): BlobKind {
    return KIND_NAMES[this.kinds[slot]!]!;
  }
  isManifest(slot: number): boolean {
    return this.kinds[slot] === KIND_CODES.manifest;
  }
  replicaCount(slot: number): number {
    return this.counts[slot]!;
  }
  replicaAt(slot: number, i: number): number {
    return i < INLINE_REPLICAS ? this.replicas[slot * INLINE_REPLICAS + i]! : this.overflow.get(slot)![i - INLINE_REPLICAS]!;
  }
  /** The blob id (hex) of a slot. Allocates: for the few blobs a caller acts on, not for scans. */
  idOf(slot: number): string {
    return Buffer.from(this.ids.buffer, slot * ID_BYTES, ID_BYTES).toString('hex');
  }

  // ---- internals ------------------------------------------------------------------------------

  private parseId(id: string): boolean {
    if (id.length !== ID_BYTES * 2) return false;
    const out = this.scratch;
    for (let i = 0; i < ID_BYTES; i++) {
      const hi = HEX_VALUE[id.charCodeAt(2 * i)] ?? -1;
      const lo = HEX_VALUE[id.charCodeAt(2 * i + 1)] ?? -1;
      if (hi < 0 || lo < 0) return false;
      out[i] = (hi << 4) | lo;
    }
    return true;
  }

  private hashWords(words: Uint32Array, offset: number): number {
    let h = Math.imul(words[offset]! ^ this.seed, 0x9e3779b1);
    h ^= words[offset + 1]!;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    return (h ^ (h >>> 13)) >>> 0;
  }

  private sameId(slot: number, w: Uint32Array): boolean {
    const base = slot * ID_WORDS;
    const ids = this.idWords;
    for (let i = 0; i < ID_WORDS; i++) if (ids[base + i] !== w[i]) return false;
    return true;
  }

  private attach(slot: number, location: number): boolean {
    const n = this.counts[slot]!;
    for (let i = 0; i < n; i++) if (this.replicaAt(slot, i) === location) return false;
    if (n >= 255) return false; // absurd, but never wrap the Uint8 count
    if (n < INLINE_REPLICAS) {
      this.replicas[slot * INLINE_REPLICAS + n] = location;
    } else {
      let extra = this.overflow.get(slot);
      if (!extra) this.overflow.set(slot, (extra = []));
      extra.push(location);
    }
    this.counts[slot] = n + 1;
    return true;
  }

  private detach(slot: number, location: number): boolean {
    const n = this.counts[slot]!;
    let at = -1;
    for (let i = 0; i < n; i++) {
      if (this.replicaAt(slot, i) === location) {
        at = i;
        break;
      }
    }
    if (at < 0) return false;
    // Move the last replica into the hole, then drop the last position.
    const last = this.replicaAt(slot, n - 1);
    if (at < INLINE_REPLICAS) this.replicas[slot * INLINE_REPLICAS + at] = last;
    else this.overflow.get(slot)![at - INLINE_REPLICAS] = last;
    if (n - 1 >= INLINE_REPLICAS) {
      const extra = this.overflow.get(slot)!;
      extra.pop();
      if (extra.length === 0) this.overflow.delete(slot);
    } else {
      this.replicas[slot * INLINE_REPLICAS + n - 1] = 0;
    }
    this.counts[slot] = n - 1;
    return true;
  }

  private allocSlot(): number {
    const reused = this.freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.highWater === this.capacity) this.growSlots(Math.ceil(this.capacity * 1.5));
    return this.highWater++;
  }

  private freeSlot(slot: number): void {
    // Remove from the table with backward-shift deletion (linear probing keeps no tombstones).
    const mask = this.tableMask;
    let pos = this.hashWords(this.idWords, slot * ID_WORDS) & mask;
    while (this.table[pos] !== slot + 1) pos = (pos + 1) & mask;
    let hole = pos;
    for (let j = (hole + 1) & mask; this.table[j] !== 0; j = (j + 1) & mask) {
      const home = this.hashWords(this.idWords, (this.table[j]! - 1) * ID_WORDS) & mask;
      // Move entry j into the hole unless its home lies cyclically in (hole, j].
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!inRange) {
        this.table[hole] = this.table[j]!;
        hole = j;
      }
    }
    this.table[hole] = 0;
    this.blobCount--;
    this.byteCount -= this.sizes[slot]!;
    this.kinds[slot] = KIND_FREE;
    this.counts[slot] = 0;
    this.overflow.delete(slot);
    this.replicas.fill(0, slot * INLINE_REPLICAS, (slot + 1) * INLINE_REPLICAS);
    this.generations[slot] = (this.generations[slot]! + 1) >>> 0;
    this.freeSlots.push(slot);
  }

  private growSlots(capacity: number): void {
    const ids = new Uint8Array(capacity * ID_BYTES);
    ids.set(this.ids);
    this.ids = ids;
    this.idWords = new Uint32Array(ids.buffer);
    this.sizes = grow(this.sizes, new Float64Array(capacity));
    this.addedAtMs = grow(this.addedAtMs, new Float64Array(capacity));
    const kinds = new Uint8Array(capacity).fill(KIND_FREE);
    kinds.set(this.kinds);
    this.kinds = kinds;
    this.counts = grow(this.counts, new Uint8Array(capacity));
    this.replicas = grow(this.replicas, new Uint16Array(capacity * INLINE_REPLICAS));
    this.generations = grow(this.generations, new Uint32Array(capacity));
    this.capacity = capacity;
  }

  private rehash(tableSize: number): void {
    this.table = new Int32Array(tableSize);
    this.tableMask = tableSize - 1;
    for (let slot = 0; slot < this.highWater; slot++) {
      if (this.kinds[slot] === KIND_FREE) continue;
      let pos = this.hashWords(this.idWords, slot * ID_WORDS) & this.tableMask;
      while (this.table[pos] !== 0) pos = (pos + 1) & this.tableMask;
      this.table[pos] = slot + 1;
    }
  }
}

function grow<T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(old: T, fresh: T): T {
  fresh.set(old as never);
  return fresh;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
