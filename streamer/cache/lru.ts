// An LRU bounded by bytes. Pure: no I/O, no clock. A Map keeps insertion order, so the first key
// is the least recently used one; a hit re-inserts its key at the end.
export interface Sized {
  readonly byteLength: number;
}

export class ByteLru<V extends Sized> {
  private readonly map = new Map<string, V>();
  private used = 0;
  evictions = 0;

  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new Error('maxBytes must be a non-negative integer');
  }

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.map.size;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** The value, now the most recently used; undefined on a miss. */
  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  /**
   * Stores `value` as the most recently used entry, evicting the least recently used ones until
   * it fits. A value larger than the whole cache is not stored (returns false).
   */
  set(key: string, value: V): boolean {
    this.delete(key);
    if (value.byteLength > this.maxBytes) return false;
    this.map.set(key, value);
    this.used += value.byteLength;
    for (const [oldKey, old] of this.map) {
      if (this.used <= this.maxBytes) break;
      this.map.delete(oldKey);
      this.used -= old.byteLength;
      this.evictions += 1;
    }
    return true;
  }

  delete(key: string): boolean {
    const value = this.map.get(key);
    if (value === undefined) return false;
    this.map.delete(key);
    this.used -= value.byteLength;
    return true;
  }

  /** Keys from least to most recently used (tests, diagnostics). */
  keys(): string[] {
    return [...this.map.keys()];
  }
}
