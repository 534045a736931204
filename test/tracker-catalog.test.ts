// Catalog: highest version wins, tombstones, search by initials / pinyin / title / artist, filters,
// and the manifest fetcher's hash and schema checks (the test stands in for the storage nodes'
// blob GET through the fetcher's injectable transport; real nodes are in the cluster test).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { songManifestSchema, type SongManifest } from '../common/contracts.js';
import { createLogger } from '../common/log.js';
import { ManifestFetcher } from '../tracker/catalog/fetcher.js';
import { Catalog, openCatalog } from '../tracker/catalog/store.js';

const quiet = createLogger('test', 'error');
const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

function manifest(id: string, fields: Partial<SongManifest>): SongManifest {
  return songManifestSchema.parse({ type: 'ktv.song', id, version: 1, ...fields });
}

describe('catalog search', () => {
  let catalog: Catalog;
  before(() => {
    catalog = new Catalog(':memory:');
    const songs: Array<[string, Partial<SongManifest>]> = [
      ['s1', { title: '七里香', artist: '周杰伦', language: 'Mandarin', genre: 'pop', durationS: 299, createdAt: '2024-01-01' }],
      ['s2', { title: '晴天', artist: '周杰伦', language: 'Mandarin', durationS: 269, createdAt: '2024-02-01' }],
      ['s3', { title: '稻香', artist: 'Jay Chou', language: 'Mandarin', createdAt: '2024-03-01' }],
      ['s4', { title: 'Let It Be', artist: 'The Beatles', language: 'English', createdAt: '2023-01-01' }],
      ['s5', { title: '海阔天空', artist: 'Beyond', language: 'Cantonese', createdAt: '2022-01-01' }],
      ['s6', { title: '重来', artist: '某人', language: 'Mandarin', pinyin: 'chóng lái', initials: 'CL' }],
    ];
    catalog.transaction(() => songs.forEach(([id, f], i) => catalog.upsertManifest(manifest(id, f), sha(`blob${i}`))));
  });
  after(() => catalog.close());

  const ids = (q: string, extra: Record<string, string> = {}) =>
    catalog.search({ q, limit: 50, ...extra }).map((s) => s.id);

  it('initials, case-insensitive, title initials ranked before artist initials', () => {
    assert.deepEqual(ids('QLX'), ['s1']);
    assert.deepEqual(new Set(ids('ZJL')), new Set(['s1', 's2']));
    assert.deepEqual(ids('lib'), ['s4']);
    assert.deepEqual(ids('hktk'), ['s5']);
  });

  it('full pinyin without tones, spaces optional, and pinyin prefixes', () => {
    assert.deepEqual(new Set(ids('zhoujielun')), new Set(['s1', 's2']));
    assert.deepEqual(new Set(ids('zhou jie lun')), new Set(['s1', 's2']));
    assert.deepEqual(ids('qili'), ['s1']);
    assert.deepEqual(ids('qingtian'), ['s2']);
    assert.deepEqual(ids('chonglai'), ['s6'], "the manifest's own pinyin wins (tone marks folded)");
  });

  it('title and artist substrings, Chinese and Latin, 1 to n characters', () => {
    assert.deepEqual(ids('里香'), ['s1']);
    assert.deepEqual(new Set(ids('香')), new Set(['s1', 's3']));
    assert.deepEqual(ids('jay'), ['s3']);
    assert.deepEqual(ids('beatles'), ['s4']);
    assert.deepEqual(ids('IT BE'), ['s4']);
    assert.deepEqual(ids('阔天'), ['s5']);
    assert.deepEqual(ids('no such song'), []);
  });

  it('exact and prefix matches rank before substrings', () => {
    const rows = catalog.search({ q: 'xiang', limit: 10 }).map((s) => s.id);
    assert.deepEqual(new Set(rows), new Set(['s1', 's3']));
    assert.equal(ids('daoxiang')[0], 's3');
  });

  it('language and artist filters; empty q lists alphabetically or newest first', () => {
    assert.deepEqual(ids('', { language: 'english' }), ['s4']);
    assert.deepEqual(new Set(ids('', { artist: '周杰伦' })), new Set(['s1', 's2']));
    assert.deepEqual(ids('xiang', { language: 'Mandarin', artist: 'jay chou' }), ['s3']);
    assert.equal(catalog.search({ q: '', limit: 50 }).length, 6);
    assert.deepEqual(catalog.search({ q: '', limit: 3, sort: 'new' }).map((s) => s.id), ['s3', 's2', 's1']);
    assert.deepEqual(catalog.search({ q: 'zjl', limit: 3, sort: 'new' }).map((s) => s.id), ['s2', 's1']);
    assert.equal(catalog.search({ q: '', limit: 2 }).length, 2);
  });

  it('summaries carry the contract fields', () => {
    const [s] = catalog.search({ q: '七里香', limit: 1 });
    assert.deepEqual(s, { id: 's1', title: '七里香', artist: '周杰伦', language: 'Mandarin', initials: 'QLX', durationS: 299, genre: 'pop', version: 1 });
  });

  it('query text is never SQL or FTS syntax', () => {
    for (const q of ['"', "'; DROP TABLE songs; --", 'a OR b', '*', 'NEAR(a b)', '{title_key}: x', '%', '_']) {
      assert.doesNotThrow(() => catalog.search({ q, limit: 5 }), q);
    }
    assert.equal(catalog.songCount, 6);
  });
});

describe('catalog versions', () => {
  it('the highest version wins, in any arrival order; a tombstone hides the song', () => {
    const catalog = new Catalog(':memory:');
    try {
      assert.equal(catalog.upsertManifest(manifest('x', { version: 2, title: '新版本' }), sha('v2')), 'winner');
      assert.equal(catalog.upsertManifest(manifest('x', { version: 1, title: '旧版本' }), sha('v1')), 'superseded');
      assert.deepEqual(catalog.search({ q: '版本', limit: 5 }).map((s) => s.title), ['新版本']);
      assert.equal(JSON.parse(catalog.manifestJson('x')!).version, 2);
      assert.equal(catalog.upsertManifest(manifest('x', { version: 3, deleted: true }), sha('v3')), 'winner');
      assert.deepEqual(catalog.search({ q: '版本', limit: 5 }), []);
      assert.equal(catalog.manifestJson('x'), undefined);
      assert.equal(catalog.songCount, 0);
      // An older version arriving late cannot resurrect it.
      assert.equal(catalog.upsertManifest(manifest('x', { version: 2, title: '新版本' }), sha('v2b')), 'superseded');
      assert.equal(catalog.search({ q: '', limit: 5 }).length, 0);
      assert.equal(catalog.upsertManifest(manifest('x', { version: 4, title: '复活' }), sha('v4')), 'winner');
      assert.deepEqual(catalog.search({ q: 'fuhuo', limit: 5 }).map((s) => s.version), [4]);
      assert.equal(catalog.songCount, 1);
    } finally {
      catalog.close();
    }
  });

  it('a corrupt cache file is moved aside and rebuilt, not fatal', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tracker-catalog-'));
    try {
      const path = join(dir, 'tracker.sqlite');
      writeFileSync(path, 'this is not a database, just bytes of a broken disk '.repeat(200));
      const c = openCatalog(path, quiet);
      assert.equal(c.songCount, 0);
      c.upsertManifest(manifest('z', { title: 'Zebra' }), sha('z'));
      c.close();
      assert.ok(readdirSync(dir).some((f) => f.startsWith('tracker.sqlite.broken-')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('survives a restart without refetching (the SQLite file is the cache)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tracker-catalog-'));
    try {
      const path = join(dir, 'tracker.sqlite');
      const a = new Catalog(path);
      a.upsertManifest(manifest('y', { title: 'Yesterday' }), sha('y'));
      a.reject(sha('bad'), 'not JSON');
      a.close();
      const b = new Catalog(path);
      assert.equal(b.knows(sha('y')), true);
      assert.equal(b.knows(sha('bad')), true);
      assert.equal(b.songCount, 1);
      assert.deepEqual(b.search({ q: 'yes', limit: 5 }).map((s) => s.id), ['y']);
      b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('manifest fetcher', () => {
  it('stores valid manifests, ignores bad ones, retries when no replica is readable', async () => {
    const catalog = new Catalog(':memory:');
    const good = Buffer.from(JSON.stringify({ type: 'ktv.song', id: 'g1', version: 1, title: '晴天', artist: '周杰伦' }));
    const notJson = Buffer.from('{nope');
    const wrongShape = Buffer.from(JSON.stringify({ type: 'other' }));
    const blobs = new Map([[sha(good), good], [sha(notJson), notJson], [sha(wrongShape), wrongShape]]);
    const corruptId = sha('corrupt');
    blobs.set(corruptId, Buffer.from('{"type":"ktv.song"}')); // bytes that do not hash to the id
    const readable = new Set([sha(good), sha(notJson), sha(wrongShape), corruptId]);
    const late = sha(good); // starts with no readable replica, then gains one
    let nowMs = 0;
    const fetcher = new ManifestFetcher(
      catalog,
      {
        sourcesOf: (id) => (blobs.has(id) ? { sizeBytes: blobs.get(id)!.length, urls: readable.has(id) ? ['http://node/'] : [] } : undefined),
        allManifests: () => blobs.keys(),
      },
      { concurrency: 2, queueMax: 100, maxManifestBytes: 1 << 20, rpcTimeoutMs: 1000, retryBaseMs: 1000, retryMaxMs: 4000 },
      async (_url, id) => blobs.get(id)!,
      quiet,
      () => nowMs,
    );
    try {
      readable.delete(late);
      for (const id of blobs.keys()) fetcher.note(id);
      await until(() => fetcher.counters.rejected === 2 && fetcher.counters.failed >= 2);
      assert.equal(catalog.songCount, 0);
      assert.equal(catalog.knows(sha(notJson)), true, 'rejected blobs are remembered');
      assert.equal(catalog.knows(corruptId), false, 'a hash mismatch is retried, not rejected');
      readable.add(late);
      fetcher.tick(); // not due yet
      nowMs = 1500;
      fetcher.tick();
      await until(() => catalog.songCount === 1);
      assert.deepEqual(catalog.search({ q: 'qingtian', limit: 5 }).map((s) => s.id), ['g1']);
      assert.equal(catalog.manifestJson('g1'), good.toString());
    } finally {
      await fetcher.close();
      catalog.close();
    }
  });
});

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
