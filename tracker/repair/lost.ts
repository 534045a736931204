// Lost blobs: no readable copy anywhere. Each is logged loudly once (error level, with the songs
// that use it) when it becomes lost, counted, listed in the cluster view with how long it has
// been lost, and forgotten (logged at info) when a copy reappears. Bounded: at most maxTracked
// are followed one by one; past that the count in the scan stats stays exact and one summary
// line says how many more (a whole rack down must not write a million error lines).

export interface LostInfo {
  id: string;
  sizeBytes: number;
  kind: 'data' | 'manifest';
  songs: string[];
  sinceMs: number;
}

export interface LostEvents {
  /** Newly lost (log at error level, count). */
  lost: LostInfo[];
  /** Readable again. */
  recovered: LostInfo[];
  /** Lost blobs beyond the tracked ones this round (stats.lost - tracked). */
  untracked: number;
}

export class LostBlobs {
  private readonly tracked = new Map<string, LostInfo>();
  /** Times a blob became lost since start (metrics). */
  lostTotal = 0;

  constructor(private readonly maxTracked = 1000) {}

  /**
   * Applies one scan's lost set (`current`: blob ids with their details, at most maxTracked, as the
   * scan collected them) and says what changed. `describe` is only called for new ones (songs lookup).
   */
  update(
    current: ReadonlyArray<{ id: string; sizeBytes: number; kind: 'data' | 'manifest' }>,
    totalLost: number,
    nowMs: number,
    songsOf: (id: string) => string[],
  ): LostEvents {
    const seen = new Set<string>();
    const lost: LostInfo[] = [];
    for (const c of current) {
      seen.add(c.id);
      if (this.tracked.has(c.id)) continue;
      if (this.tracked.size >= this.maxTracked) continue;
      const info: LostInfo = { ...c, songs: songsOf(c.id), sinceMs: nowMs };
      this.tracked.set(c.id, info);
      lost.push(info);
      this.lostTotal++;
    }
    const recovered: LostInfo[] = [];
    for (const [id, info] of this.tracked) {
      if (!seen.has(id)) {
        this.tracked.delete(id);
        recovered.push(info);
      }
    }
    return { lost, recovered, untracked: Math.max(0, totalLost - this.tracked.size) };
  }

  /** Longest lost first, at most `limit`. */
  list(nowMs: number, limit = 100): Array<{ id: string; sizeBytes: number; kind: 'data' | 'manifest'; songs: string[]; lostSinceAgoMs: number }> {
    return [...this.tracked.values()]
      .sort((a, b) => a.sinceMs - b.sinceMs || (a.id < b.id ? -1 : 1))
      .slice(0, limit)
      .map((l) => ({ id: l.id, sizeBytes: l.sizeBytes, kind: l.kind, songs: l.songs, lostSinceAgoMs: Math.max(0, nowMs - l.sinceMs) }));
  }

  get size(): number {
    return this.tracked.size;
  }
}
