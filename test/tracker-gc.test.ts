// Orphan-blob collection. Pure rules (tracker/gc/orphans.ts) with plain data and a real in-memory
// catalog for the winner rule; the scheduler in-process with a fake clock and a recording DELETE
// transport (the test stands in for storage nodes there); then real processes: a tracker and 3
// storage nodes, where an unreferenced blob disappears from every disk and the rest stays.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClusterView, DeleteCommand, SongManifest } from '../common/contracts.js';
import { rpc, RpcError } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { loadConfig } from '../config/load.js';
import { Catalog } from '../tracker/catalog/store.js';
import { TrackerCore } from '../tracker/core.js';
import { findOrphans, gcBlockedReason, ReferenceSet, referencesOf, type GcBlob, type GcPreconditions, type OrphanInput } from '../tracker/gc/orphans.js';
import { FAST_CONFIG, SECRET, TestCluster } from './helpers/cluster.js';
import { tempDir, waitFor } from './helpers/procs.js';

const quiet = createLogger('test', 'error');
const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');
const GRACE_MS = 10_000;

const READY: GcPreconditions = {
  leader: true,
  upForMs: 60_000,
  nodeDeadAfterMs: 5000,
  nodes: [{ id: 'n1', alive: true, inventoryComplete: true, maskedDisks: 0 }, { id: 'n2', alive: true, inventoryComplete: true, maskedDisks: 0 }],
  manifestsPending: 0,
};

const data = (name: string, firstSeenMs = 0): GcBlob => ({ id: sha(name), kind: 'data', sizeBytes: 100, firstSeenMs });

function manifest(id: string, version: number, blobs: string[], extra: Partial<SongManifest> = {}): SongManifest {
  return {
    type: 'ktv.song', id, version, deleted: false, title: id, artist: '', language: '', genre: '', pinyin: '', initials: '', wordCount: 0, durationS: 1,
    renditions: blobs.map((b, i) => ({ role: i === 0 ? 'video' : 'vocal', blob: sha(b), sizeBytes: 100, ...(i === 0 ? { playlistBlob: sha(`${b}.m3u8`) } : {}) })),
    ...extra,
  };
}

/** What the scheduler builds from the catalog (without its paging): the winners' references. */
function referencesIn(catalog: Catalog): ReferenceSet {
  const set = new ReferenceSet();
  for (const { json } of catalog.liveManifestsAfter(0, 1_000_000)) for (const id of referencesOf(JSON.parse(json) as SongManifest)) set.add(id);
  return set;
}

/** Two passes one grace apart (the second clock, "unreferenced since", starts at the first). */
function twoPasses(input: Partial<OrphanInput> & { blobs: GcBlob[] }): { first: ReturnType<typeof findOrphans>; second: ReturnType<typeof findOrphans> } {
  const base: OrphanInput = {
    preconditions: READY, isReferenced: () => false, isKnownManifest: () => true, unreferencedSinceMs: new Map(),
    nowMs: GRACE_MS, graceMs: GRACE_MS, maxOrphans: 100, maxTracked: 1000, ...input,
  };
  const first = findOrphans(base);
  const second = findOrphans({ ...base, unreferencedSinceMs: first.unreferencedSinceMs, nowMs: base.nowMs + GRACE_MS });
  return { first, second };
}

const ids = (blobs: GcBlob[]): string[] => blobs.map((b) => b.id).sort();

describe('gc rules (pure)', () => {
  it('keeps referenced blobs; an unreferenced one is an orphan only after a grace in the index and a grace unreferenced', () => {
    const kept = data('referenced');
    const old = data('unreferenced old', 0);
    const young = data('unreferenced young', GRACE_MS + 1); // entered the index after the first pass
    const { first, second } = twoPasses({ blobs: [kept, old, young], isReferenced: (id) => id === kept.id });
    // First pass: old enough in the index, but its "unreferenced" clock only starts now.
    assert.deepEqual(first.orphans, []);
    assert.deepEqual([...first.unreferencedSinceMs.keys()].sort(), ids([old, young]));
    assert.deepEqual(ids(second.orphans), [old.id]);
    assert.equal(second.orphanCount, 1);
    assert.ok(!second.unreferencedSinceMs.has(kept.id));
  });

  it('never calls a manifest blob an orphan, and an unread manifest blocks everything', () => {
    const m: GcBlob = { ...data('some manifest'), kind: 'manifest' };
    const orphan = data('orphan');
    assert.deepEqual(ids(twoPasses({ blobs: [m, orphan] }).second.orphans), [orphan.id]);
    const unread = twoPasses({ blobs: [m, orphan], isKnownManifest: () => false }).second;
    assert.deepEqual(unread.orphans, []);
    assert.match(unread.blocked ?? '', /not in the catalog/);
  });

  it("a tombstoned song's blobs become orphans", () => {
    const catalog = new Catalog(':memory:');
    catalog.upsertManifest(manifest('song-a', 1, ['a-video', 'a-vocal']), sha('a1'));
    catalog.upsertManifest(manifest('song-b', 1, ['b-video']), sha('b1'));
    const blobs = ['a-video', 'a-video.m3u8', 'a-vocal', 'b-video', 'b-video.m3u8'].map((n) => data(n));
    assert.deepEqual(twoPasses({ blobs, isReferenced: (id) => referencesIn(catalog).has(id) }).second.orphans, []);
    catalog.upsertManifest(manifest('song-a', 2, [], { deleted: true }), sha('a2'));
    const refs = referencesIn(catalog);
    assert.deepEqual(ids(twoPasses({ blobs, isReferenced: (id) => refs.has(id) }).second.orphans), ids(blobs.slice(0, 3)));
    catalog.close();
  });

  it('a newer version that drops a rendition orphans the old one (and an older version arriving late changes nothing)', () => {
    const catalog = new Catalog(':memory:');
    catalog.upsertManifest(manifest('song-c', 2, ['c-video-v2']), sha('c2'));
    catalog.upsertManifest(manifest('song-c', 1, ['c-video-v1', 'c-vocal']), sha('c1')); // superseded on arrival
    const refs = referencesIn(catalog);
    const blobs = ['c-video-v1', 'c-vocal', 'c-video-v2', 'c-video-v2.m3u8'].map((n) => data(n));
    assert.deepEqual(ids(twoPasses({ blobs, isReferenced: (id) => refs.has(id) }).second.orphans), ids(blobs.slice(0, 2)));
    catalog.close();
  });

  it('reports nothing unless every precondition holds', () => {
    const orphan = data('orphan');
    const cases: Array<[string, Partial<GcPreconditions>, RegExp]> = [
      ['not leader', { leader: false }, /not the leader/],
      ['just started', { upForMs: 1000 }, /after start/],
      ['dead node', { nodes: [READY.nodes[0]!, { ...READY.nodes[1]!, alive: false }] }, /not alive: n2/],
      ['incomplete inventory', { nodes: [{ ...READY.nodes[0]!, inventoryComplete: false }, READY.nodes[1]!] }, /inventory incomplete: n1/],
      ['masked disk', { nodes: [{ ...READY.nodes[0]!, maskedDisks: 1 }, READY.nodes[1]!] }, /masked disk on n1/],
      ['pending manifests', { manifestsPending: 3 }, /3 manifest/],
    ];
    assert.equal(gcBlockedReason(READY), undefined);
    for (const [what, change, reason] of cases) {
      const preconditions = { ...READY, ...change };
      assert.match(gcBlockedReason(preconditions) ?? '', reason, what);
      const d = findOrphans({
        preconditions, blobs: [orphan], isReferenced: () => false, isKnownManifest: () => true,
        unreferencedSinceMs: new Map([[orphan.id, 0]]), nowMs: 10 * GRACE_MS, graceMs: GRACE_MS, maxOrphans: 100, maxTracked: 1000,
      });
      assert.deepEqual([d.orphans, d.orphanCount, d.unreferencedSinceMs.size], [[], 0, 0], what);
    }
  });

  it('bounds the list and the clocks it keeps', () => {
    const blobs = Array.from({ length: 10 }, (_, i) => data(`o${i}`));
    const { second } = twoPasses({ blobs, maxOrphans: 3, maxTracked: 6 });
    assert.equal(second.orphans.length, 3);
    assert.equal(second.orphanCount, 6);
    assert.equal(second.unreferencedSinceMs.size, 6);
  });
});

describe('gc scheduler (in process, fake clock, the test stands in for storage nodes)', () => {
  let nowMs = 1_000_000;
  const blobs = new Map<string, Buffer>();
  const deletes: Array<{ url: string; blob: string; command: DeleteCommand }> = [];
  const config = loadConfig({ overrides: { tracker: { gcGraceMs: GRACE_MS, gcMaxDeletesPerTick: 2, nodeDeadAfterMs: 5000 } } });
  const core = new TrackerCore({
    config, dataDir: '/nonexistent', catalogPath: ':memory:', secret: SECRET, log: quiet, now: () => nowMs,
    getBlob: async (_url, id) => blobs.get(id) ?? Promise.reject(new Error('no such blob')),
    sendDelete: async (url, blob, command) => {
      deletes.push({ url, blob, command });
      return { deleted: 1 };
    },
  });
  const seq = { n1: 0, n2: 0 };
  const heartbeat = (): void => {
    for (const id of ['n1', 'n2'] as const) {
      core.heartbeat({ nodeId: id, url: `http://127.0.0.1:${id === 'n1' ? 7101 : 7102}/`, changeSeq: seq[id], bootId: 'b1', disks: [{ id: 'd1', state: 'healthy', reason: '', freeBytes: 1e12, totalBytes: 2e12, blobs: 0, usedBytes: 0 }] });
    }
  };
  const advance = (ms: number): void => {
    nowMs += ms;
    heartbeat(); // keep the nodes alive on the fake clock
  };
  /** Stores a blob on both nodes (a change report each). */
  const put = (bytes: Buffer, kind: 'data' | 'manifest'): string => {
    const id = sha(bytes);
    blobs.set(id, bytes);
    for (const nodeId of ['n1', 'n2'] as const) {
      core.changes({ nodeId, bootId: 'b1', fromSeq: ++seq[nodeId], changes: [{ op: 'add', disk: 'd1', blob: id, size: bytes.length, kind }] });
    }
    return id;
  };
  const putManifest = async (m: SongManifest): Promise<string> => {
    const id = put(Buffer.from(JSON.stringify(m)), 'manifest');
    await waitFor('manifest in the catalog', () => core.catalog.knows(id));
    return id;
  };
  const deletedBlobs = (): string[] => [...new Set(deletes.map((d) => d.blob))].sort();

  before(() => {
    heartbeat();
    for (const nodeId of ['n1', 'n2']) core.inventory({ nodeId, bootId: 'b1', reportId: 'r1', changeSeq: 0, part: 0, final: true, disks: [{ id: 'd1', blobs: [] }] });
  });
  after(() => core.close());

  it('waits for a grace, deletes orphans from every holder with the epoch, a bounded number per pass, and counts them', async () => {
    const video = put(Buffer.from('video of song 1'), 'data');
    const orphans = ['failed upload 1', 'failed upload 2', 'failed upload 3'].map((t) => put(Buffer.from(t), 'data'));
    await putManifest({ ...manifest('song-1', 1, []), renditions: [{ role: 'video', blob: video, sizeBytes: 15 }] });
    await core.gc.tick();
    assert.match(core.gc.view().blocked, /after start/); // up for less than nodeDeadAfterMs
    advance(5000);
    await core.gc.tick(); // clocks start
    assert.deepEqual(core.gc.view().unreferenced, 3);
    assert.equal(deletes.length, 0);
    advance(GRACE_MS);
    await core.gc.tick();
    assert.equal(core.gc.view().orphans, 3);
    assert.equal(deletedBlobs().length, 2, 'gcMaxDeletesPerTick bounds a pass');
    for (const d of deletes) assert.deepEqual(d.command, { epoch: 1 });
    assert.deepEqual(deletes.filter((d) => d.blob === deletes[0]!.blob).map((d) => d.url).sort(), ['http://127.0.0.1:7101/', 'http://127.0.0.1:7102/']);
    advance(1000);
    await core.gc.tick();
    assert.deepEqual(deletedBlobs(), [...orphans].sort(), 'the third goes in the next pass; the sent ones are not resent');
    assert.ok(!deletes.some((d) => d.blob === video));
    assert.equal(core.gc.view().deleted, 3);
    assert.match(core.metrics.registry.render(), /^ktv_gc_deleted_blobs_total 3$/m);
  });

  it("deletes a tombstoned song's blobs after the grace, and nothing while a node is dead", async () => {
    deletes.length = 0;
    const video = put(Buffer.from('video of song 2'), 'data');
    await putManifest({ ...manifest('song-2', 1, []), renditions: [{ role: 'video', blob: video, sizeBytes: 15 }] });
    advance(1000);
    await core.gc.tick();
    await putManifest(manifest('song-2', 2, [], { deleted: true }));
    advance(1000);
    await core.gc.tick(); // the video's unreferenced clock starts
    nowMs += GRACE_MS; // n1 and n2 go silent past nodeDeadAfterMs
    await core.gc.tick();
    assert.match(core.gc.view().blocked, /not alive/);
    assert.equal(deletes.length, 0);
    advance(0);
    await core.gc.tick(); // a blocked pass restarted the clock
    assert.equal(deletes.length, 0);
    advance(GRACE_MS);
    await core.gc.tick();
    assert.deepEqual(deletedBlobs(), [video]);
  });

  it('with gcEnabled false it counts orphans and deletes nothing', async () => {
    const counting = new TrackerCore({
      config: loadConfig({ overrides: { tracker: { gcEnabled: false, gcGraceMs: GRACE_MS, nodeDeadAfterMs: 1 } } }),
      dataDir: '/nonexistent', catalogPath: ':memory:', secret: SECRET, log: quiet, now: () => nowMs,
      sendDelete: () => Promise.reject(new Error('must not be called')),
    });
    const hb = { nodeId: 'n1', url: 'http://127.0.0.1:7101/', changeSeq: 0, bootId: 'b1', disks: [{ id: 'd1', state: 'healthy' as const, reason: '', freeBytes: 1e12, totalBytes: 2e12, blobs: 1, usedBytes: 5 }] };
    counting.heartbeat(hb);
    counting.inventory({ nodeId: 'n1', bootId: 'b1', reportId: 'r1', changeSeq: 0, part: 0, final: true, disks: [{ id: 'd1', blobs: [[sha('x'), 5, 'data']] }] });
    nowMs += 10;
    counting.heartbeat(hb);
    await counting.gc.tick();
    nowMs += GRACE_MS;
    counting.heartbeat(hb);
    await counting.gc.tick();
    assert.equal(counting.clusterView().gc?.orphans, 1);
    assert.equal(counting.gc.view().deleted, 0);
    await counting.close();
  });
});

/** Every file under a dir (recursively). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('gc with real processes (tracker + 3 storage nodes × 2 disks)', () => {
  const c = new TestCluster('gc', { ...FAST_CONFIG, tracker: { ...FAST_CONFIG.tracker, gcGraceMs: 1500, gcIntervalMs: 300 } });
  const onDisk = (id: string): number => c.nodes.flatMap((n) => n.disks.flatMap(filesUnder)).filter((p) => p.endsWith(`/${id}`)).length;

  before(async () => {
    await c.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await c.addNode(id, 2);
    await c.waitAlive(3);
  });

  after(async () => {
    await c.close();
    rmSync(c.root, { recursive: true, force: true });
  });

  it('an unreferenced data blob disappears from every disk and from locate; the referenced one and the manifest stay', async () => {
    const videoBytes = randomBytes(200_000);
    const { id: video } = await c.writeBlob(videoBytes);
    const { id: orphan } = await c.writeBlob(randomBytes(50_000)); // an upload that never got its manifest
    const song = { type: 'ktv.song', id: 'gc-song', version: 1, title: 'GC', renditions: [{ role: 'video', blob: video, sizeBytes: videoBytes.length }] };
    const { id: manifestId } = await c.writeBlob(Buffer.from(JSON.stringify(song)), 'manifest');
    await waitFor('the song in the catalog', () => rpc(c.trackerUrl, '/api/v1/songs/gc-song', { timeoutMs: 3000 }).then(() => true));
    assert.equal(onDisk(orphan), 2);

    await waitFor('the orphan gone from locate', () => c.locate(orphan).then(() => false, (e: unknown) => e instanceof RpcError && e.status === 404), 20_000);
    assert.equal(onDisk(orphan), 0, 'no copy left on any disk');
    const view = await c.cluster();
    assert.equal(view.gc?.deleted, 1);
    assert.ok(view.gc?.lastRunAt);
    const metrics = await (await fetch(new URL('/metrics', c.trackerUrl))).text();
    assert.match(metrics, /^ktv_gc_deleted_blobs_total 1$/m);
    assert.match(metrics, /^ktv_gc_deleted_bytes_total 100000$/m);
    // An operator can see what was removed: the blob id and its size, in the tracker's log.
    const deletedLine = c.tracker!.log().split('\n').find((l) => l.includes('orphan blob deleted'));
    assert.ok(deletedLine?.includes(orphan) && deletedLine.includes('50000'), deletedLine ?? 'no "orphan blob deleted" line');

    // A few more passes change nothing for the song.
    await new Promise((r) => setTimeout(r, 1000));
    for (const id of [video, manifestId]) {
      assert.equal((await c.locate(id)).replicas.length, 2, `${id} still located`);
      assert.equal(onDisk(id), 2, `${id} still on disk`);
    }
    assert.equal(((await c.cluster()) as ClusterView).gc?.deleted, 1);
  });
});
