// The player's pure parts, in node without a browser: the persisted queue (every change written,
// torn or hostile storage ignored, bounds), the audio-track choice by name, streamer failover and
// the streamer list. The player is plain browser JavaScript (no build step), so its modules are
// imported from player/ at run time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const PLAYER_DIR = fileURLToPath(new URL('../../player/', import.meta.url));

interface Song {
  id: string;
  title: string;
  artist: string;
  language: string;
  initials: string;
  durationS: number;
  genre: string;
  version: number;
}
type Entry = Song & { entryId: string };
interface RoomStoreT {
  queue: Entry[];
  current: Entry | null;
  positionS: number;
  vocal: string;
  volume: number;
  add(s: unknown): Entry | null;
  addTop(s: unknown): Entry | null;
  moveTop(id: string): boolean;
  remove(id: string): boolean;
  advance(): Entry | null;
  setVocal(r: string): void;
  setVolume(v: number): void;
  notePosition(s: number, force?: boolean): void;
  onChange(fn: (what: string) => void): () => void;
}
interface StoreModule {
  RoomStore: new (storage: unknown) => RoomStoreT;
  STORAGE_KEY: string;
  QUEUE_MAX: number;
}
interface ApiT extends EventTarget {
  base: string;
  bases: string[];
  switches: number;
  noteFailure(): boolean;
  noteSuccess(): void;
  masterUrl(id: string): string;
  refreshStreamers(): Promise<string[]>;
  songs(params: Record<string, unknown>): Promise<Song[]>;
}
interface ApiModule {
  Api: new (origin: string) => ApiT;
  FAILOVER_AFTER_FAILURES: number;
}

async function load<T>(name: string): Promise<T> {
  return (await import(pathToFileURL(PLAYER_DIR + name).href)) as T;
}

/** localStorage as the browser has it (strings in, strings out), with a switch to refuse writes. */
class MemoryStorage {
  data = new Map<string, string>();
  writes = 0;
  full = false;
  getItem(k: string): string | null {
    return this.data.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    if (this.full) throw new Error('QuotaExceededError');
    this.writes++;
    this.data.set(k, String(v));
  }
}

const song = (id: string, title = id): Song => ({ id, title, artist: '周杰伦', language: 'zh', initials: 'X', durationS: 200, genre: '', version: 1 });

describe('player store (queue that survives a reload)', () => {
  test('every change is written; a new store reads the same queue, current song, position, vocal and volume', async () => {
    const { RoomStore, STORAGE_KEY } = await load<StoreModule>('store.js');
    const storage = new MemoryStorage();
    const a = new RoomStore(storage);
    const changes: string[] = [];
    a.onChange((w) => changes.push(w));
    a.add(song('s1', '七里香'));
    a.add(song('s2', '晴天'));
    const top = a.addTop(song('s3', 'Let It Be'))!;
    assert.deepEqual(a.queue.map((e) => e.id), ['s3', 's1', 's2']);
    assert.equal(a.advance()!.entryId, top.entryId);
    a.setVocal('backing');
    a.setVolume(0.46);
    a.notePosition(42.5, true);
    assert.equal(storage.writes, 7);
    assert.deepEqual(changes, ['queue', 'queue', 'queue', 'current', 'vocal', 'volume']);
    const b = new RoomStore(storage);
    assert.equal(b.current!.id, 's3');
    assert.equal(b.current!.entryId, top.entryId);
    assert.deepEqual(b.queue.map((e) => e.title), ['七里香', '晴天']);
    assert.deepEqual(b.queue.map((e) => e.entryId), a.queue.map((e) => e.entryId));
    assert.equal(b.positionS, 42.5);
    assert.equal(b.vocal, 'backing');
    assert.equal(b.volume, 0.46);
    assert.ok(storage.getItem(STORAGE_KEY)!.includes('七里香'));
  });

  test('优先 and remove by entry (the same song may be queued twice); advance on an empty queue ends at null', async () => {
    const { RoomStore } = await load<StoreModule>('store.js');
    const s = new RoomStore(new MemoryStorage());
    const first = s.add(song('s1'))!;
    const second = s.add(song('s1'))!;
    const other = s.add(song('s2'))!;
    assert.notEqual(first.entryId, second.entryId);
    assert.equal(s.moveTop(other.entryId), true);
    assert.deepEqual(s.queue.map((e) => e.entryId), [other.entryId, first.entryId, second.entryId]);
    assert.equal(s.remove(first.entryId), true);
    assert.equal(s.remove('nope'), false);
    assert.equal(s.moveTop('nope'), false);
    assert.deepEqual(s.queue.map((e) => e.entryId), [other.entryId, second.entryId]);
    s.advance();
    s.advance();
    assert.equal(s.advance(), null);
    assert.equal(s.current, null);
  });

  test('a torn write, a hostile row or a refused storage never breaks the room', async () => {
    const { RoomStore, STORAGE_KEY, QUEUE_MAX } = await load<StoreModule>('store.js');
    const torn = new MemoryStorage();
    torn.data.set(STORAGE_KEY, '{"queue":[{"id":"s1","tit');
    const a = new RoomStore(torn);
    assert.deepEqual(a.queue, []);
    assert.equal(a.current, null);
    const hostile = new MemoryStorage();
    hostile.data.set(STORAGE_KEY, JSON.stringify({ queue: [song('ok'), { id: '../../etc/passwd' }, { id: 5 }, null, 'x', { ...song('s2'), title: 7, durationS: -1 }], current: { id: 'bad id' }, vocal: 'loud', volume: 9 }));
    const b = new RoomStore(hostile);
    assert.deepEqual(b.queue.map((e) => e.id), ['ok', 's2']);
    assert.equal(b.queue[1]!.title, 's2'); // a non-string title falls back to the id
    assert.equal(b.queue[1]!.durationS, 0);
    assert.equal(b.current, null);
    assert.equal(b.vocal, 'vocal');
    assert.equal(b.volume, 1);
    const full = new MemoryStorage();
    full.full = true;
    const c = new RoomStore(full);
    assert.ok(c.add(song('s1')), 'the queue works from memory when storage refuses writes');
    for (let i = 0; i < QUEUE_MAX + 5; i++) c.add(song(`q${i}`));
    assert.equal(c.queue.length, QUEUE_MAX);
    assert.equal(c.add(song('one-more')), null);
    assert.equal(c.add({ id: 'bad id' }), null);
  });

  test('position writes are throttled unless forced', async () => {
    const { RoomStore } = await load<StoreModule>('store.js');
    const storage = new MemoryStorage();
    const s = new RoomStore(storage);
    s.add(song('s1'));
    s.advance();
    const before = storage.writes;
    s.notePosition(1);
    s.notePosition(2);
    s.notePosition(3);
    assert.equal(storage.writes, before + 1);
    s.notePosition(4, true);
    assert.equal(storage.writes, before + 2);
    assert.equal(new RoomStore(storage).positionS, 4);
  });
});

describe('player audio tracks', () => {
  test('原唱/伴唱 found by name whatever their order; a group without the role gives -1', async () => {
    const { trackIndexForRole } = await load<{ trackIndexForRole: (t: Array<{ name: string }>, r: string) => number }>('playback.js');
    const master = [{ name: '原唱 Vocal' }, { name: '伴唱 Backing' }];
    assert.equal(trackIndexForRole(master, 'vocal'), 0);
    assert.equal(trackIndexForRole(master, 'backing'), 1);
    const reversed = [{ name: '伴唱 Backing' }, { name: '原唱 Vocal' }];
    assert.equal(trackIndexForRole(reversed, 'vocal'), 1);
    assert.equal(trackIndexForRole(reversed, 'backing'), 0);
    // "Backing vocals" is the accompaniment, not the vocal.
    const english = [{ name: 'Backing vocals' }, { name: 'Lead vocal' }];
    assert.equal(trackIndexForRole(english, 'backing'), 0);
    assert.equal(trackIndexForRole(english, 'vocal'), 1);
    assert.equal(trackIndexForRole([{ name: '原唱' }], 'backing'), -1);
    assert.equal(trackIndexForRole([], 'vocal'), -1);
  });
});

describe('player streamer failover', () => {
  test('a streamer is left after FAILOVER_AFTER_FAILURES failures in a row; a single one is kept', async () => {
    const { Api, FAILOVER_AFTER_FAILURES } = await load<ApiModule>('api.js');
    const single = new Api('http://127.0.0.1:8080/');
    for (let i = 0; i < 10; i++) assert.equal(single.noteFailure(), false);
    assert.equal(single.base, 'http://127.0.0.1:8080');
    assert.equal(single.masterUrl('s1'), 'http://127.0.0.1:8080/hls/s1/master.m3u8');

    const api = new Api('http://127.0.0.1:8080');
    api.bases = ['http://127.0.0.1:8080', 'http://127.0.0.1:8081'];
    const switched: string[] = [];
    api.addEventListener('switched', (e) => switched.push((e as CustomEvent<{ base: string }>).detail.base));
    for (let i = 1; i < FAILOVER_AFTER_FAILURES; i++) assert.equal(api.noteFailure(), false);
    api.noteSuccess(); // a success in between resets the count
    for (let i = 1; i < FAILOVER_AFTER_FAILURES; i++) assert.equal(api.noteFailure(), false);
    assert.equal(api.noteFailure(), true);
    assert.equal(api.base, 'http://127.0.0.1:8081');
    assert.deepEqual(switched, ['http://127.0.0.1:8081']);
  });

  test('the streamer list: current first, dead ones and junk left out, bounded; a failed refresh keeps the list', async () => {
    const { Api } = await load<ApiModule>('api.js');
    const realFetch = globalThis.fetch;
    try {
      let answer: unknown = {
        streamers: [
          { id: 'b', url: 'http://10.0.0.2:8080/', state: 'alive' },
          { id: 'a', url: 'http://127.0.0.1:8080/', state: 'alive' },
          { id: 'c', url: 'http://10.0.0.3:8080/', state: 'dead' },
          { id: 'd', url: 'javascript:alert(1)', state: 'alive' },
          { id: 'e', url: 42 },
          ...Array.from({ length: 40 }, (_, i) => ({ id: `x${i}`, url: `http://10.1.0.${i}:8080/`, state: 'alive' })),
        ],
      };
      globalThis.fetch = (async () => new Response(JSON.stringify(answer), { status: 200 })) as typeof fetch;
      const api = new Api('http://127.0.0.1:8080/');
      const bases = await api.refreshStreamers();
      assert.equal(bases[0], 'http://127.0.0.1:8080');
      assert.equal(bases[1], 'http://10.0.0.2:8080');
      assert.ok(!bases.includes('http://10.0.0.3:8080'));
      assert.ok(bases.every((b) => b.startsWith('http://')));
      assert.equal(bases.length, 16);
      answer = 'not json at all';
      globalThis.fetch = (async () => {
        throw new TypeError('network');
      }) as typeof fetch;
      assert.deepEqual(await api.refreshStreamers(), bases);
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  test('song rows are validated; an error answer becomes an ApiError with its status', async () => {
    const { Api } = await load<ApiModule>('api.js');
    const realFetch = globalThis.fetch;
    try {
      globalThis.fetch = (async (url: string) => {
        if (String(url).includes('q=bad')) return new Response(JSON.stringify({ error: 'q is longer than 100 characters' }), { status: 400 });
        return new Response(JSON.stringify({ songs: [song('s1', '七里香'), { id: '<script>' }, { title: 'no id' }] }), { status: 200 });
      }) as typeof fetch;
      const api = new Api('http://127.0.0.1:8080/');
      const rows = await api.songs({ q: 'ZJL' });
      assert.deepEqual(rows.map((r) => r.id), ['s1']);
      await assert.rejects(api.songs({ q: 'bad' }), (e: Error & { status?: number }) => e.status === 400 && /longer/.test(e.message));
    } finally {
      globalThis.fetch = realFetch;
    }
  });
});
