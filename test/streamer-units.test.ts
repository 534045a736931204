// The streamer's pure parts, without sockets: cache policy (LRU by bytes, oversize entries,
// single-flight), the refreshing cache that outlives the tracker, replica ordering, the search
// canonicaliser, and the tracker's streamer registry.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ByteLru } from '../streamer/cache/lru.js';
import { RangeCache } from '../streamer/cache/range-cache.js';
import { SingleFlight } from '../streamer/cache/single-flight.js';
import { canonicalSearch } from '../streamer/resolve/catalog.js';
import { RefreshingCache } from '../streamer/resolve/refreshing-cache.js';
import { latencyClass, ReplicaScores } from '../streamer/upstream/scores.js';
import { ReadFailureCounts, StreamerRegistry } from '../tracker/streamers/registry.js';
import type { ReplicaInfo } from '../common/contracts.js';

const buf = (n: number, fill = 1): Buffer => Buffer.alloc(n, fill);

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}

describe('ByteLru', () => {
  test('bounded by bytes; evicts the least recently used first; a get refreshes an entry', () => {
    const lru = new ByteLru<Buffer>(100);
    lru.set('a', buf(40));
    lru.set('b', buf(40));
    assert.equal(lru.bytes, 80);
    assert.ok(lru.get('a'), 'a is now the most recently used');
    lru.set('c', buf(40)); // 120 > 100: b goes (a was touched)
    assert.deepEqual(lru.keys(), ['a', 'c']);
    assert.equal(lru.bytes, 80);
    assert.equal(lru.evictions, 1);
    lru.set('d', buf(100)); // needs everything
    assert.deepEqual(lru.keys(), ['d']);
    assert.equal(lru.bytes, 100);
  });

  test('an entry bigger than the whole cache is not stored and evicts nothing', () => {
    const lru = new ByteLru<Buffer>(100);
    lru.set('a', buf(60));
    assert.equal(lru.set('huge', buf(101)), false);
    assert.deepEqual(lru.keys(), ['a']);
    assert.equal(lru.bytes, 60);
  });

  test('replacing and deleting a key keep the byte count exact', () => {
    const lru = new ByteLru<Buffer>(100);
    lru.set('a', buf(60));
    lru.set('a', buf(10));
    assert.equal(lru.bytes, 10);
    assert.equal(lru.size, 1);
    assert.equal(lru.delete('a'), true);
    assert.equal(lru.delete('a'), false);
    assert.equal(lru.bytes, 0);
  });
});

describe('SingleFlight', () => {
  test('concurrent callers share one call; the key is free again after it settles', async () => {
    const sf = new SingleFlight<number>();
    let calls = 0;
    const d = deferred<number>();
    const first = sf.run('k', () => {
      calls++;
      return d.promise;
    });
    const second = sf.run('k', () => {
      calls++;
      return Promise.resolve(-1);
    });
    assert.equal(first.joined, false);
    assert.equal(second.joined, true);
    d.resolve(7);
    assert.deepEqual(await Promise.all([first.promise, second.promise]), [7, 7]);
    assert.equal(calls, 1);
    assert.equal(sf.inFlight, 0);
    const third = sf.run('k', () => Promise.resolve(8));
    assert.equal(third.joined, false);
    assert.equal(await third.promise, 8);
  });

  test('an error reaches every caller of the flight, and the next call retries', async () => {
    const sf = new SingleFlight<number>();
    const d = deferred<number>();
    const a = sf.run('k', () => d.promise);
    const b = sf.run('k', () => Promise.resolve(1));
    d.reject(new Error('replica gone'));
    await assert.rejects(a.promise, /replica gone/);
    await assert.rejects(b.promise, /replica gone/);
    assert.equal(await sf.run('k', () => Promise.resolve(2)).promise, 2);
  });

  test('a synchronous throw becomes a rejection', async () => {
    const sf = new SingleFlight<number>();
    await assert.rejects(sf.run('k', () => {
      throw new Error('boom');
    }).promise, /boom/);
    assert.equal(sf.inFlight, 0);
  });
});

describe('RangeCache', () => {
  const opts = { maxBytes: 1000, maxEntryBytes: 300, inflightMaxBytes: 500 };

  test('miss, then hit; 20 concurrent cold requests cause one load', async () => {
    const cache = new RangeCache(opts);
    let loads = 0;
    const d = deferred<Buffer>();
    const load = (): Promise<Buffer> => {
      loads++;
      return d.promise;
    };
    const answers = Array.from({ length: 20 }, () => cache.get('b:0-99', 100, load));
    for (const a of answers) assert.notEqual(typeof a, 'string');
    d.resolve(buf(100, 7));
    const got = await Promise.all(answers as Array<Promise<{ buffer: Buffer; outcome: string }>>);
    assert.equal(loads, 1);
    assert.deepEqual(got.map((g) => g.outcome).sort(), ['miss', ...Array(19).fill('joined')].sort());
    assert.ok(got.every((g) => g.buffer === got[0]!.buffer), 'all share the same bytes');
    const again = await (cache.get('b:0-99', 100, load) as Promise<{ outcome: string }>);
    assert.equal(again.outcome, 'hit');
    assert.equal(loads, 1);
    assert.deepEqual([cache.counters.misses, cache.counters.joins, cache.counters.hits], [1, 19, 1]);
  });

  test('an oversize range is not cached: the caller streams it through', () => {
    const cache = new RangeCache(opts);
    assert.equal(cache.get('b:0-400', 401, () => Promise.resolve(buf(401))), 'too-large');
    assert.equal(cache.entries, 0);
  });

  test('cold loads past the in-flight budget stream through; joining costs nothing', async () => {
    const cache = new RangeCache(opts);
    const d1 = deferred<Buffer>();
    const d2 = deferred<Buffer>();
    const a = cache.get('x:0-299', 300, () => d1.promise);
    const b = cache.get('y:0-199', 200, () => d2.promise); // 500: at the budget
    assert.equal(cache.get('z:0-9', 10, () => Promise.resolve(buf(10))), 'inflight-budget');
    assert.notEqual(typeof cache.get('x:0-299', 300, () => Promise.resolve(buf(300))), 'string', 'joining x is fine');
    d1.resolve(buf(300));
    d2.resolve(buf(200));
    await Promise.all([a, b]);
    assert.deepEqual(cache.inflight, { flights: 0, bytes: 0 });
    assert.notEqual(typeof cache.get('z:0-9', 10, () => Promise.resolve(buf(10))), 'string');
  });

  test('a failed load rejects every waiter, caches nothing and frees its budget', async () => {
    const cache = new RangeCache(opts);
    const d = deferred<Buffer>();
    const a = cache.get('k', 100, () => d.promise) as Promise<unknown>;
    const b = cache.get('k', 100, () => Promise.resolve(buf(100))) as Promise<unknown>;
    d.reject(new Error('all replicas failed'));
    await assert.rejects(a, /all replicas failed/);
    await assert.rejects(b, /all replicas failed/);
    assert.equal(cache.entries, 0);
    assert.equal(cache.inflight.bytes, 0);
    const retry = await (cache.get('k', 100, () => Promise.resolve(buf(100))) as Promise<{ outcome: string }>);
    assert.equal(retry.outcome, 'miss');
  });

  test('eviction by bytes in LRU order across entries', async () => {
    const cache = new RangeCache({ maxBytes: 500, maxEntryBytes: 300, inflightMaxBytes: 1000 });
    for (const k of ['a', 'b', 'c']) await cache.get(k, 200, () => Promise.resolve(buf(200)));
    assert.deepEqual(cache.lru.keys(), ['b', 'c']);
    assert.equal(cache.bytes, 400);
  });

  test('a loader that returns the wrong length is a broken invariant, not a cached entry', async () => {
    const cache = new RangeCache(opts);
    await assert.rejects(cache.get('k', 100, () => Promise.resolve(buf(99))) as Promise<unknown>, /expected 100/);
    assert.equal(cache.entries, 0);
  });
});

describe('RefreshingCache', () => {
  test('fresh from memory; stale answered at once and refreshed in the background', async () => {
    let now = 0;
    let version = 1;
    let loads = 0;
    const cache = new RefreshingCache<number>(async () => {
      loads++;
      return version;
    }, { maxEntries: 10, ttlMs: () => 100, retryMs: 50, now: () => now });
    assert.deepEqual(await cache.getWithState('s'), { value: 1, state: 'loaded' });
    now = 50;
    assert.deepEqual(await cache.getWithState('s'), { value: 1, state: 'fresh' });
    version = 2;
    now = 150;
    assert.deepEqual(await cache.getWithState('s'), { value: 1, state: 'stale' });
    await new Promise((r) => setImmediate(r));
    assert.equal(await cache.get('s'), 2);
    assert.equal(loads, 2);
  });

  test('the tracker down: a stale value is kept indefinitely, refresh retried after retryMs', async () => {
    let now = 0;
    let up = true;
    let loads = 0;
    const errors: string[] = [];
    const cache = new RefreshingCache<string>(async (k) => {
      loads++;
      if (!up) throw new Error('tracker down');
      return `v-${k}`;
    }, { maxEntries: 10, ttlMs: () => 100, retryMs: 1000, now: () => now, onRefreshError: (_k, e) => errors.push((e as Error).message) });
    await cache.get('a');
    up = false;
    for (now = 200; now < 5000; now += 100) {
      assert.equal(await cache.get('a'), 'v-a');
      await new Promise((r) => setImmediate(r));
    }
    // One failed refresh per retryMs, not one per request.
    assert.ok(loads <= 1 + 6, `${loads} loads`);
    assert.ok(errors.length >= 4);
    await assert.rejects(cache.get('b'), /tracker down/, 'a miss with the tracker down fails');
  });

  test('concurrent misses share one load; bounded entries (LRU)', async () => {
    let loads = 0;
    const cache = new RefreshingCache<number>(async (k) => {
      loads++;
      await new Promise((r) => setTimeout(r, 5));
      return Number(k);
    }, { maxEntries: 2, ttlMs: () => 1000, retryMs: 100 });
    await Promise.all([cache.get('1'), cache.get('1'), cache.get('1')]);
    assert.equal(loads, 1);
    await cache.get('2');
    await cache.get('1'); // touch 1
    await cache.get('3'); // evicts 2
    assert.equal(cache.size, 2);
    assert.equal(cache.peek('2'), undefined);
    assert.equal(cache.peek('1'), 1);
  });

  test('invalidate keeps the value but makes the next use refresh', async () => {
    let n = 0;
    const cache = new RefreshingCache<number>(async () => ++n, { maxEntries: 10, ttlMs: () => 60_000, retryMs: 100 });
    assert.equal(await cache.get('k'), 1);
    cache.invalidate('k');
    assert.equal(await cache.get('k'), 1, 'answered with the old value');
    await new Promise((r) => setImmediate(r));
    assert.equal(await cache.get('k'), 2);
  });
});

describe('ReplicaScores', () => {
  const rep = (nodeId: string, over: Partial<ReplicaInfo> = {}): ReplicaInfo => ({
    nodeId, url: `http://127.0.0.1:1/`, diskId: `${nodeId}-d1`, nodeState: 'alive', diskState: 'healthy', ...over,
  });

  test('keeps the tracker order among equals; masked never; dead last; healthy before suspect', () => {
    const s = new ReplicaScores();
    const order = s.order([rep('a', { nodeState: 'dead' }), rep('b', { diskState: 'suspect' }), rep('c'), rep('d', { diskState: 'masked' }), rep('e')]);
    assert.deepEqual(order.map((r) => r.nodeId), ['c', 'e', 'b', 'a']);
  });

  test('a node that just failed goes after one that did not; the penalty decays', () => {
    let now = 0;
    const s = new ReplicaScores({ failureHalfLifeMs: 1000, latencyAlpha: 0.3, maxNodes: 10 }, () => now);
    s.failure('a');
    assert.deepEqual(s.order([rep('a'), rep('b')]).map((r) => r.nodeId), ['b', 'a']);
    now = 5000; // 5 half-lives later
    assert.deepEqual(s.order([rep('a'), rep('b')]).map((r) => r.nodeId), ['a', 'b']);
  });

  test('latency reorders only in coarse classes (loopback noise never does)', () => {
    const s = new ReplicaScores();
    s.success('a', 30);
    s.success('b', 2);
    assert.deepEqual(s.order([rep('a'), rep('b')]).map((r) => r.nodeId), ['a', 'b']);
    for (let i = 0; i < 20; i++) s.success('a', 900);
    assert.deepEqual(s.order([rep('a'), rep('b')]).map((r) => r.nodeId), ['b', 'a']);
    assert.deepEqual([latencyClass(5), latencyClass(100), latencyClass(150), latencyClass(400), latencyClass(1e9)], [0, 0, 1, 2, 9]);
  });

  test('with a segment key, equal replicas share the segments evenly, each segment always on the same node', () => {
    const s = new ReplicaScores();
    const firsts = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const key = `blob${i % 7}:${i * 22_500_000}`;
      const first = s.order([rep('node1'), rep('node2')], key)[0]!.nodeId;
      assert.equal(s.order([rep('node2'), rep('node1')], key)[0]!.nodeId, first, 'independent of the tracker order');
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    const share = (firsts.get('node1') ?? 0) / 2000;
    assert.ok(share > 0.45 && share < 0.55, `node1 takes ${share} of the segments`);
    // Health still comes first: a failed node goes last whatever the hash says.
    s.failure('node1');
    for (let i = 0; i < 50; i++) assert.equal(s.order([rep('node1'), rep('node2')], `b:${i}`)[0]!.nodeId, 'node2');
  });
});

describe('canonicalSearch', () => {
  test('keeps the tracker parameters in a fixed order and drops the rest', () => {
    assert.equal(canonicalSearch('limit=5&q=%E6%9C%8B&x=1'), new URLSearchParams({ q: '朋', limit: '5' }).toString());
    assert.equal(canonicalSearch(''), '');
    assert.throws(() => canonicalSearch('q=a&q=b'), /once/);
    assert.throws(() => canonicalSearch(`q=${'a'.repeat(301)}`), /longer/);
  });
});

describe('tracker StreamerRegistry', () => {
  test('alive until the deadline, then dead, then forgotten; bounded', () => {
    const reg = new StreamerRegistry({ deadAfterMs: 1000, forgetAfterMs: 5000, maxEntries: 2 });
    const hb = (id: string) => ({ id, url: `http://127.0.0.1:8080/`, startedAt: 'now', servedBytes: 5 });
    reg.heartbeat(hb('s1'), 0);
    assert.deepEqual(reg.list(500).map((s) => [s.id, s.state]), [['s1', 'alive']]);
    assert.deepEqual(reg.list(1500).map((s) => [s.id, s.state]), [['s1', 'dead']]);
    reg.heartbeat(hb('s2'), 1500);
    assert.deepEqual(reg.list(1600).map((s) => [s.id, s.state]), [['s2', 'alive'], ['s1', 'dead']]);
    assert.equal(reg.list(5200).length, 1, 's1 forgotten after 5 s of silence');
    reg.heartbeat(hb('s3'), 5300);
    reg.heartbeat(hb('s4'), 5300);
    assert.equal(reg.size, 2);
  });

  test('read failures count per known node and disk; unknown ids fold into one label', () => {
    const counts = new ReadFailureCounts();
    const known = (n: string, d: string) => ({ node: n === 'node1', disk: d === 'd1' });
    const r = { blobId: 'a'.repeat(64), diskId: 'd1', reason: 'timeout' as const, detail: '' };
    assert.deepEqual(counts.record({ ...r, nodeId: 'node1' }, known), { node: 'node1', disk: 'd1' });
    assert.deepEqual(counts.record({ ...r, nodeId: 'evil' }, known), { node: 'unknown', disk: 'unknown' });
    counts.record({ ...r, nodeId: 'node1' }, known);
    assert.equal(counts.total, 3);
    assert.deepEqual(counts.rows().find((x) => x.node === 'node1')?.count, 2);
  });
});
