// Repair order (DESIGN.md "Health"): fewest live copies first; within the same count, manifests
// first (a song without its manifest cannot be found at all, and they are tiny), then the blobs
// of the most played songs, then index order. Pure.
//
// Popularity comes from play counts (streamers count master playlist requests; the tracker keeps
// them in SQLite). PlayScores keeps blob → score in memory only for the HOT_SONGS_MAX most played
// songs (5,000 songs × ~8 blobs ≈ 40,000 entries, a few MB): the rest of the library scores 0 and
// is repaired in index order. A busy venue plays a few hundred distinct songs a night, so the
// set that matters is small; bounding it keeps a 100,000-song library from costing 100 MB here.

export interface RepairItem {
  slot: number;
  live: number;
  manifest: boolean;
  /** Plays of the songs that use the blob. */
  score: number;
}

export function compareRepairItems(a: RepairItem, b: RepairItem): number {
  return a.live - b.live || Number(b.manifest) - Number(a.manifest) || b.score - a.score || a.slot - b.slot;
}

export function orderRepairQueue<T extends RepairItem>(items: T[]): T[] {
  return items.sort(compareRepairItems);
}

/** What PlayScores needs of the catalog (a plain interface so tests pass a map). */
export interface PlaySource {
  addPlays(plays: ReadonlyArray<readonly [string, number]>, nowMs: number): void;
  topPlayed(limit: number): Array<{ songId: string; count: number }>;
  blobsOfSong(songId: string): string[];
  /** Changes when manifests change (a song may now use other blobs). */
  readonly version: number;
}

export const HOT_SONGS_MAX = 5000;
/** A reload (top songs from SQLite, then their blobs) is at most this often: ~50 ms of queries. */
export const RELOAD_MIN_INTERVAL_MS = 60_000;

export class PlayScores {
  private readonly songPlays = new Map<string, number>();
  private blobScores = new Map<string, number>();
  private loadedCatalogVersion = -1;
  private lastLoadMs = -Infinity;
  private overflowed = false;
  /** Bumped whenever a score may have changed (the repair queue is re-sorted). */
  version = 0;

  constructor(private readonly source: PlaySource, private readonly maxSongs = HOT_SONGS_MAX) {}

  /** Persists plays (one transaction) and adds them to the scores of the hot songs' blobs. */
  add(plays: ReadonlyArray<readonly [string, number]>, nowMs: number): void {
    if (plays.length === 0) return;
    this.source.addPlays(plays, nowMs);
    for (const [songId, count] of plays) {
      const known = this.songPlays.get(songId);
      if (known === undefined && this.songPlays.size >= this.maxSongs) {
        this.overflowed = true; // the next reload decides which songs are the hot ones
        continue;
      }
      this.songPlays.set(songId, (known ?? 0) + count);
      for (const blob of this.source.blobsOfSong(songId)) this.blobScores.set(blob, (this.blobScores.get(blob) ?? 0) + count);
    }
    this.version++;
  }

  /** The score of a blob (0 for a blob of no hot song). Call refresh() first in each round. */
  scoreOf(blobId: string): number {
    return this.blobScores.get(blobId) ?? 0;
  }

  get hotBlobs(): number {
    return this.blobScores.size;
  }

  /** Reloads from the catalog when it changed or the hot set overflowed, at most once a minute (and at once the first time). */
  refresh(nowMs: number): void {
    const stale = this.loadedCatalogVersion !== this.source.version || this.overflowed;
    if (!stale || nowMs - this.lastLoadMs < RELOAD_MIN_INTERVAL_MS) return;
    this.lastLoadMs = nowMs;
    this.loadedCatalogVersion = this.source.version;
    this.overflowed = false;
    this.songPlays.clear();
    const scores = new Map<string, number>();
    for (const { songId, count } of this.source.topPlayed(this.maxSongs)) {
      this.songPlays.set(songId, count);
      for (const blob of this.source.blobsOfSong(songId)) scores.set(blob, (scores.get(blob) ?? 0) + count);
    }
    this.blobScores = scores;
    this.version++;
  }
}
