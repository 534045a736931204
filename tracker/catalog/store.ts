// The catalog: song manifests cached in SQLite and indexed for search. A CACHE (DESIGN.md):
// manifests are blobs on the storage nodes, so deleting tracker.sqlite loses nothing; it is
// refilled by fetching manifest blobs again. What it saves is refetching them after a restart.
//
// Per song id the highest version wins (ties: the larger blob id, so every tracker agrees);
// a `deleted: true` tombstone stays in `songs` (so an older version cannot resurrect the song)
// but leaves the search index.
import { renameSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { SongManifest, SongSummary } from '../../common/contracts.js';
import type { Logger } from '../../common/log.js';
import { songKeys } from './keys.js';
import { SongSearch, type SearchParams } from './search.js';

/**
 * Bump when the schema changes: the cache is dropped and rebuilt rather than migrated. The
 * `plays` table is NOT part of the cache (no storage node holds play counts), so it is created
 * apart and never dropped.
 */
const SCHEMA_VERSION = '4';

const PLAYS_SCHEMA = `
CREATE TABLE IF NOT EXISTS plays (song_id TEXT PRIMARY KEY, count INTEGER NOT NULL, last_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS plays_count ON plays(count DESC);
`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS manifests (
  blob_id TEXT PRIMARY KEY, song_id TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (blob_id TEXT PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID;
-- Which songs use a blob (any stored version): rendition blobs, playlist blobs and the manifest
-- blob itself. For repair priority (popular songs first) and for naming the songs of a lost blob.
CREATE TABLE IF NOT EXISTS blob_songs (blob_id TEXT NOT NULL, song_id TEXT NOT NULL, PRIMARY KEY (blob_id, song_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blob_songs_song ON blob_songs(song_id);
CREATE TABLE IF NOT EXISTS songs (
  row INTEGER PRIMARY KEY,
  song_id TEXT NOT NULL UNIQUE,
  version INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  deleted INTEGER NOT NULL,
  title TEXT NOT NULL, artist TEXT NOT NULL, language TEXT NOT NULL, genre TEXT NOT NULL,
  initials TEXT NOT NULL, duration_s REAL NOT NULL, created_at TEXT NOT NULL,
  title_key TEXT NOT NULL, artist_key TEXT NOT NULL, title_py TEXT NOT NULL, artist_py TEXT NOT NULL,
  title_ini TEXT NOT NULL, artist_ini TEXT NOT NULL, language_key TEXT NOT NULL, all_keys TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS songs_title ON songs(title_key) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_artist ON songs(artist_key, title_key) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_language ON songs(language_key, title_key) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_title_py ON songs(title_py) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_artist_py ON songs(artist_py) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_title_ini ON songs(title_ini) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_artist_ini ON songs(artist_ini) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS songs_new ON songs(created_at, row) WHERE deleted = 0;
-- Covering index for short queries: the scan reads only the index, filters and sort columns included.
CREATE INDEX IF NOT EXISTS songs_all_keys ON songs(all_keys, language_key, artist_key, created_at) WHERE deleted = 0;
CREATE VIRTUAL TABLE IF NOT EXISTS songs_fts USING fts5(
  title_key, artist_key, title_py, artist_py, title_ini, artist_ini,
  content='', contentless_delete=1, tokenize='trigram'
);
`;

const DROP = `
DROP TABLE IF EXISTS songs_fts; DROP TABLE IF EXISTS songs; DROP TABLE IF EXISTS rejected; DROP TABLE IF EXISTS blob_songs;
DROP TABLE IF EXISTS manifests; DROP TABLE IF EXISTS meta;
`;

export type UpsertResult = 'winner' | 'superseded';

interface SongRow {
  row: number;
  version: number;
  blob_id: string;
  deleted: number;
}

export class Catalog {
  private readonly db: Database.Database;
  private readonly search_: SongSearch;
  /** Manifest blobs already handled (stored or rejected): never fetched again. */
  private readonly knownBlobs = new Set<string>();
  private liveSongs = 0;
  private winnerChanges = 0;
  private readonly stmt: {
    insertManifest: Database.Statement;
    reject: Database.Statement;
    songBySongId: Database.Statement;
    insertSong: Database.Statement;
    updateSong: Database.Statement;
    ftsDelete: Database.Statement;
    ftsInsert: Database.Statement;
    manifestOfSong: Database.Statement;
    liveManifestsAfter: Database.Statement;
    insertBlobSong: Database.Statement;
    songsOfBlob: Database.Statement;
    blobsOfSong: Database.Statement;
    addPlays: Database.Statement;
    playsOf: Database.Statement;
    topPlayed: Database.Statement;
  };

  /** `path` is `${dataDir}/tracker.sqlite`, or ':memory:' in tests. */
  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // A cache: losing the last transactions on power loss only means refetching a few manifests.
    this.db.pragma('synchronous = NORMAL');
    const version = this.readSchemaVersion();
    if (version !== undefined && version !== SCHEMA_VERSION) this.db.exec(DROP);
    this.db.exec(SCHEMA);
    this.db.exec(PLAYS_SCHEMA);
    this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run('schema', SCHEMA_VERSION);
    this.stmt = {
      insertManifest: this.db.prepare('INSERT OR IGNORE INTO manifests (blob_id, song_id, version, json) VALUES (?, ?, ?, ?)'),
      reject: this.db.prepare('INSERT OR REPLACE INTO rejected (blob_id, reason) VALUES (?, ?)'),
      songBySongId: this.db.prepare('SELECT row, version, blob_id, deleted FROM songs WHERE song_id = ?'),
      insertSong: this.db.prepare(`INSERT INTO songs (song_id, version, blob_id, deleted, title, artist, language, genre,
        initials, duration_s, created_at, title_key, artist_key, title_py, artist_py, title_ini, artist_ini, language_key, all_keys)
        VALUES (@songId, @version, @blobId, @deleted, @title, @artist, @language, @genre, @initials, @durationS, @createdAt,
        @titleKey, @artistKey, @titlePy, @artistPy, @titleIni, @artistIni, @languageKey, @allKeys)`),
      updateSong: this.db.prepare(`UPDATE songs SET version = @version, blob_id = @blobId, deleted = @deleted, title = @title,
        artist = @artist, language = @language, genre = @genre, initials = @initials, duration_s = @durationS,
        created_at = @createdAt, title_key = @titleKey, artist_key = @artistKey, title_py = @titlePy, artist_py = @artistPy,
        title_ini = @titleIni, artist_ini = @artistIni, language_key = @languageKey, all_keys = @allKeys WHERE row = @row`),
      ftsDelete: this.db.prepare('DELETE FROM songs_fts WHERE rowid = ?'),
      ftsInsert: this.db.prepare(`INSERT INTO songs_fts (rowid, title_key, artist_key, title_py, artist_py, title_ini, artist_ini)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      manifestOfSong: this.db.prepare('SELECT m.json AS json FROM songs s JOIN manifests m ON m.blob_id = s.blob_id WHERE s.song_id = ? AND s.deleted = 0'),
      liveManifestsAfter: this.db.prepare(`SELECT s.row AS row, m.json AS json FROM songs s JOIN manifests m ON m.blob_id = s.blob_id
        WHERE s.deleted = 0 AND s.row > ? ORDER BY s.row LIMIT ?`),
      insertBlobSong: this.db.prepare('INSERT OR IGNORE INTO blob_songs (blob_id, song_id) VALUES (?, ?)'),
      songsOfBlob: this.db.prepare('SELECT song_id FROM blob_songs WHERE blob_id = ? ORDER BY song_id LIMIT ?').pluck(),
      blobsOfSong: this.db.prepare('SELECT blob_id FROM blob_songs WHERE song_id = ?').pluck(),
      addPlays: this.db.prepare(`INSERT INTO plays (song_id, count, last_at) VALUES (?, ?, ?)
        ON CONFLICT(song_id) DO UPDATE SET count = count + excluded.count, last_at = excluded.last_at`),
      playsOf: this.db.prepare('SELECT count FROM plays WHERE song_id = ?').pluck(),
      topPlayed: this.db.prepare('SELECT song_id AS songId, count FROM plays ORDER BY count DESC LIMIT ?'),
    };
    for (const r of this.db.prepare('SELECT blob_id FROM manifests UNION ALL SELECT blob_id FROM rejected').pluck().iterate()) {
      this.knownBlobs.add(r as string);
    }
    this.liveSongs = this.db.prepare('SELECT count(*) FROM songs WHERE deleted = 0').pluck().get() as number;
    this.search_ = new SongSearch(this.db);
  }

  get songCount(): number {
    return this.liveSongs;
  }

  /** Changes whenever a song's winning version changes: what manifests reference may have changed (GC). */
  get version(): number {
    return this.winnerChanges;
  }

  knows(blobId: string): boolean {
    return this.knownBlobs.has(blobId);
  }

  /** Remembers a manifest blob that is not a valid manifest, so it is not fetched again. */
  reject(blobId: string, reason: string): void {
    this.stmt.reject.run(blobId, reason.slice(0, 500));
    this.knownBlobs.add(blobId);
  }

  /**
   * Stores a parsed manifest (its blob id and, when known, the exact JSON text of the blob) and
   * makes it the song's current version if it is the highest. Also the bulk-load entry point for
   * benchmarks (wrap many calls in `transaction`).
   */
  upsertManifest(m: SongManifest, blobId: string, jsonText: string = JSON.stringify(m)): UpsertResult {
    return this.db.transaction((): UpsertResult => {
      this.stmt.insertManifest.run(blobId, m.id, m.version, jsonText);
      this.knownBlobs.add(blobId);
      this.stmt.insertBlobSong.run(blobId, m.id);
      for (const r of m.renditions) {
        this.stmt.insertBlobSong.run(r.blob, m.id);
        if (r.playlistBlob) this.stmt.insertBlobSong.run(r.playlistBlob, m.id);
      }
      const current = this.stmt.songBySongId.get(m.id) as SongRow | undefined;
      if (current && (current.version > m.version || (current.version === m.version && current.blob_id >= blobId))) {
        return 'superseded';
      }
      const keys = songKeys(m);
      const row = {
        songId: m.id, version: m.version, blobId, deleted: m.deleted ? 1 : 0, title: m.title, artist: m.artist,
        language: m.language, genre: m.genre, durationS: m.durationS, createdAt: m.createdAt ?? '', ...keys,
      };
      let rowId: number;
      if (current) {
        rowId = current.row;
        this.stmt.updateSong.run({ ...row, row: rowId });
        if (!current.deleted) {
          this.stmt.ftsDelete.run(rowId);
          this.liveSongs--;
        }
      } else {
        rowId = Number(this.stmt.insertSong.run(row).lastInsertRowid);
      }
      this.winnerChanges++;
      if (!m.deleted) {
        this.stmt.ftsInsert.run(rowId, keys.titleKey, keys.artistKey, keys.titlePy, keys.artistPy, keys.titleIni, keys.artistIni);
        this.liveSongs++;
      }
      return 'winner';
    })();
  }

  /** Runs `fn` in one transaction (bulk loads: 100,000 upserts in seconds instead of minutes). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** The current manifest's JSON text, or undefined for an unknown or deleted song. */
  manifestJson(songId: string): string | undefined {
    const r = this.stmt.manifestOfSong.get(songId) as { json: string } | undefined;
    return r?.json;
  }

  /**
   * The current manifests (winning version, song not deleted) after `afterRow`, in row order: GC
   * pages through all songs this way, a bounded page per event-loop turn.
   */
  liveManifestsAfter(afterRow: number, limit: number): Array<{ row: number; json: string }> {
    return this.stmt.liveManifestsAfter.all(afterRow, limit) as Array<{ row: number; json: string }>;
  }

  // ---- play counts (streamers count master playlist requests; repair order, 热门) -------------

  /** Adds plays in one transaction: [songId, count] pairs, as a streamer heartbeat carries them. */
  addPlays(plays: ReadonlyArray<readonly [string, number]>, nowMs: number): void {
    if (plays.length === 0) return;
    this.db.transaction(() => {
      for (const [songId, count] of plays) this.stmt.addPlays.run(songId, count, Math.floor(nowMs));
    })();
  }

  playsOf(songId: string): number {
    return (this.stmt.playsOf.get(songId) as number | undefined) ?? 0;
  }

  /** The most played songs, most first. */
  topPlayed(limit: number): Array<{ songId: string; count: number }> {
    return this.stmt.topPlayed.all(limit) as Array<{ songId: string; count: number }>;
  }

  /** Songs whose manifests (any stored version) use this blob, or whose manifest it is; sorted, at most `limit`. */
  songsOfBlob(blobId: string, limit = 20): string[] {
    return this.stmt.songsOfBlob.all(blobId, limit) as string[];
  }

  /** Blobs a song's stored manifests use (renditions, playlists, the manifest blobs). */
  blobsOfSong(songId: string): string[] {
    return this.stmt.blobsOfSong.all(songId) as string[];
  }

  search(params: SearchParams): SongSummary[] {
    return this.search_.search(params);
  }

  close(): void {
    this.db.close();
  }

  private readSchemaVersion(): string | undefined {
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!exists) return undefined;
    const r = this.db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: string } | undefined;
    return r?.value ?? '';
  }
}

/**
 * Opens the catalog; an unreadable file (corrupt, not a database, from a crash of the disk) is
 * moved aside and a fresh one created: it is a cache, and the tracker must start regardless.
 */
export function openCatalog(path: string, log: Logger, nowMs = Date.now()): Catalog {
  try {
    return new Catalog(path);
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (path === ':memory:' || !/^SQLITE_(CORRUPT|NOTADB)/.test(code)) throw error;
    const aside = `${path}.broken-${nowMs}`;
    log.warn('catalog cache unreadable; starting a new one (manifests are fetched again)', { path, aside, error: (error as Error).message });
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        renameSync(path + suffix, aside + suffix);
      } catch {
        /* the -wal/-shm files may not exist */
      }
    }
    return new Catalog(path);
  }
}
