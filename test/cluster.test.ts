// The spine end to end, with real processes on loopback: a tracker and 3 storage nodes × 2
// disks. Write through placement, read back by range from each replica, refuse bad writes,
// corrupt a file on disk, SIGKILL a node and watch the replica count come back, delete the
// tracker's data dir and watch the index rebuild from the nodes' reports.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SongManifest, SongSummary } from '../common/contracts.js';
import { rpc, signedBlobHeaders } from '../common/http.js';
import { signRequest } from '../common/signing.js';
import { readRange, SECRET, TestCluster } from './helpers/cluster.js';
import { asBody, waitFor } from './helpers/procs.js';

const REPLICAS = 2;

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Every file under a dir (recursively). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function blobFilesNamed(c: TestCluster, id: string): string[] {
  return c.nodes.flatMap((n) => n.disks.flatMap((d) => filesUnder(d))).filter((p) => p.endsWith(`/${id}`));
}

async function liveReplicaCount(c: TestCluster, id: string): Promise<number> {
  const loc = await c.locate(id);
  return loc.replicas.filter((r) => r.nodeState === 'alive' && r.diskState === 'healthy').length;
}

describe('cluster spine (tracker + 3 storage nodes × 2 disks, real processes)', () => {
  const c = new TestCluster('spine');
  const blobs = new Map<string, Buffer>();

  before(async () => {
    await c.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await c.addNode(id, 2);
    await c.waitAlive(3);
  });

  after(async () => {
    await c.close();
  });

  test('the cluster view lists 3 alive nodes with 2 healthy disks each', async () => {
    const view = await c.cluster();
    assert.equal(view.leader, true);
    assert.equal(view.nodes.length, 3);
    for (const n of view.nodes) {
      assert.equal(n.state, 'alive');
      assert.equal(n.disks.length, 2);
      for (const d of n.disks) {
        assert.equal(d.state, 'healthy');
        assert.ok(d.freeBytes > 0);
      }
    }
  });

  test('blobs written through placement land on 2 distinct nodes and read back by range from each replica', async () => {
    for (let i = 0; i < 12; i++) {
      const data = randomBytes(1000 + Math.floor(Math.random() * 3_000_000));
      const { id, placement } = await c.writeBlob(data);
      assert.equal(placement.targets.length, REPLICAS);
      assert.equal(new Set(placement.targets.map((t) => t.nodeId)).size, REPLICAS, 'replicas on distinct nodes');
      blobs.set(id, data);
    }
    for (const [id, data] of blobs) {
      const loc = await waitFor(`2 replicas of ${id}`, async () => {
        const l = await c.locate(id);
        return l.replicas.length === REPLICAS ? l : undefined;
      });
      assert.equal(loc.size, data.length);
      for (const r of loc.replicas) {
        const full = await readRange(r.url, id);
        assert.equal(full.status, 200);
        assert.equal(full.headers.get('etag'), `"${id}"`);
        assert.ok(full.body.equals(data));
        const start = Math.floor(data.length / 3);
        const end = Math.min(data.length - 1, start + 65_536);
        const part = await readRange(r.url, id, `bytes=${start}-${end}`);
        assert.equal(part.status, 206);
        assert.equal(part.headers.get('content-range'), `bytes ${start}-${end}/${data.length}`);
        assert.ok(part.body.equals(data.subarray(start, end + 1)));
        const suffix = await readRange(r.url, id, 'bytes=-100');
        assert.equal(suffix.status, 206);
        assert.ok(suffix.body.equals(data.subarray(data.length - 100)));
        const bad = await readRange(r.url, id, `bytes=${data.length + 10}-`);
        assert.equal(bad.status, 416);
      }
    }
  });

  test('a write whose bytes do not match their id is refused and leaves nothing behind', async () => {
    const data = randomBytes(200_000);
    const wrongId = sha(Buffer.from('something else'));
    const node = c.nodes[0]!;
    const url = new URL(`/internal/v1/blobs/${wrongId}`, node.url);
    const res = await fetch(url, { method: 'PUT', headers: signedBlobHeaders(SECRET, 'PUT', url), body: asBody(data) });
    assert.equal(res.status, 422);
    const body = (await res.json()) as { error: string };
    assert.match(body.error, /hash/i);
    assert.deepEqual(blobFilesNamed(c, wrongId), []);
    for (const d of node.disks) assert.deepEqual(filesUnder(join(d, 'tmp')), [], 'no temp file left');
    const locate = await fetch(new URL(`/internal/v1/blobs/${wrongId}`, c.trackerUrl), {
      headers: signRequest(SECRET, 'GET', `/internal/v1/blobs/${wrongId}`, undefined),
    });
    assert.equal(locate.status, 404);
  });

  test('unsigned, stale and path-trick writes are refused and change nothing', async () => {
    const node = c.nodes[1]!;
    const data = randomBytes(5000);
    const id = sha(data);
    const before = filesUnder(node.disks[0]!).concat(filesUnder(node.disks[1]!)).sort();

    const url = new URL(`/internal/v1/blobs/${id}`, node.url);
    const unsigned = await fetch(url, { method: 'PUT', body: asBody(data) });
    assert.equal(unsigned.status, 401);
    assert.match(((await unsigned.json()) as { error: string }).error, /not signed/);

    const staleHeaders = signRequest(SECRET, 'PUT', url.pathname, 'UNSIGNED-BLOB', Date.now() - 120_000);
    const stale = await fetch(url, { method: 'PUT', headers: staleHeaders, body: asBody(data) });
    assert.equal(stale.status, 401);
    assert.match(((await stale.json()) as { error: string }).error, /expired/);

    const wrongSecret = signRequest('another-secret-of-enough-length', 'PUT', url.pathname, 'UNSIGNED-BLOB');
    const forged = await fetch(url, { method: 'PUT', headers: wrongSecret, body: asBody(data) });
    assert.equal(forged.status, 401);

    for (const trick of ['..%2F..%2F..%2Fetc%2Fpasswd', '%2e%2e', id.slice(0, 63), id.toUpperCase(), `${id}%00`, `${id.slice(0, 62)}..`]) {
      const u = new URL(`/internal/v1/blobs/${trick}`, node.url);
      const r = await fetch(u, { method: 'PUT', headers: signedBlobHeaders(SECRET, 'PUT', u), body: asBody(data) });
      assert.ok(r.status === 400 || r.status === 404, `${trick} → ${r.status}`);
      const text = await r.text();
      assert.ok(!/at .*\.js:\d+/.test(text), 'no stack trace in the answer');
    }
    const afterFiles = filesUnder(node.disks[0]!).concat(filesUnder(node.disks[1]!)).sort();
    assert.deepEqual(afterFiles, before, 'the disks are unchanged');

    // The tracker refuses unsigned reports too.
    const hb = await fetch(new URL('/internal/v1/heartbeat', c.trackerUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ nodeId: 'intruder', url: 'http://127.0.0.1:1/', changeSeq: 0, bootId: 'x', disks: [] }),
    });
    assert.equal(hb.status, 401);
    const view = await c.cluster();
    assert.ok(!view.nodes.some((n) => n.id === 'intruder'));
  });

  test('a blob file corrupted on disk is never served; the replica is quarantined and repaired', async () => {
    const [id, data] = [...blobs].find(([, d]) => d.length > 2_500_000) ?? [...blobs][0]!;
    const loc = await c.locate(id);
    const victim = loc.replicas[0]!;
    const node = c.nodes.find((n) => n.id === victim.nodeId)!;
    const file = node.disks.flatMap((d) => filesUnder(d)).find((p) => p.endsWith(`/${id}`) && p.includes('/blobs/'));
    assert.ok(file, 'found the blob file on disk');
    const bytes = readFileSync(file);
    const at = Math.floor(bytes.length / 2);
    bytes.fill(0x42, at, at + 4096);
    writeFileSync(file, bytes);

    const res = await readRange(victim.url, id, `bytes=${at - 10}-${at + 5000}`);
    assert.notEqual(res.status, 206, 'a corrupt range is not answered as good data');
    assert.ok(!res.body.includes(Buffer.alloc(64, 0x42)), 'no corrupt bytes reached the reader');

    // The other replica still serves the true bytes.
    const other = loc.replicas.find((r) => r.nodeId !== victim.nodeId)!;
    const good = await readRange(other.url, id, `bytes=${at - 10}-${at + 5000}`);
    assert.equal(good.status, 206);
    assert.ok(good.body.equals(data.subarray(at - 10, at + 5001)));

    // Quarantined, then re-replicated from the good copy.
    await waitFor('the corrupt replica to leave the index and the count to be restored', async () => {
      const l = await c.locate(id);
      const onVictimDisk = l.replicas.some((r) => r.nodeId === victim.nodeId && r.diskId === victim.diskId);
      return !onVictimDisk && (await liveReplicaCount(c, id)) === REPLICAS;
    }, 30_000);
    assert.ok(!existsSync(file), 'the corrupt file left the blob store (moved to quarantine)');
  });

  test('a manifest blob enters the catalog and is found by pinyin initials', async () => {
    const manifest: SongManifest = {
      type: 'ktv.song',
      id: 'song-qilixiang',
      version: 1,
      deleted: false,
      title: '七里香',
      artist: '周杰伦',
      language: 'zh',
      genre: 'pop',
      pinyin: '',
      initials: '',
      wordCount: 0,
      durationS: 299,
      renditions: [],
    };
    await c.writeBlob(Buffer.from(JSON.stringify(manifest)), 'manifest');
    const found = await waitFor('the song in search', async () => {
      const r = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?q=ZJL', { timeoutMs: 3000 });
      return r.songs.find((s) => s.id === 'song-qilixiang');
    });
    assert.equal(found.title, '七里香');
    assert.equal(found.initials.toUpperCase(), 'QLX');
  });

  test('SIGKILL a node: it is seen dead and every blob is back to 2 live replicas on the others', async () => {
    const victim = c.nodes[2]!;
    const before = await c.cluster();
    const held = before.nodes.find((n) => n.id === victim.id)!.disks.reduce((a, d) => a + d.blobs, 0);
    assert.ok(held > 0, 'the victim holds blobs');
    await c.procs.stop(victim.proc!, 'SIGKILL');
    await waitFor('the node to be dead', async () => (await c.cluster()).nodes.find((n) => n.id === victim.id)?.state === 'dead');
    await waitFor('every blob back to full strength', async () => {
      for (const id of blobs.keys()) if ((await liveReplicaCount(c, id)) < REPLICAS) return false;
      const v = await c.cluster();
      return v.blobs.underReplicated === 0 || undefined;
    }, 60_000, 250);
    for (const [id, data] of blobs) {
      const loc = await c.locate(id);
      const live = loc.replicas.filter((r) => r.nodeState === 'alive');
      assert.ok(live.length >= REPLICAS);
      for (const r of live) {
        assert.notEqual(r.nodeId, victim.id);
        const got = await readRange(r.url, id);
        assert.equal(got.status, 200);
        assert.ok(got.body.equals(data), 'repaired copy has the true bytes');
      }
    }
    // Bring it back for the next test; its stale copies are simply extra replicas.
    await c.startNode(victim);
    await c.waitAlive(3);
  });

  test('the tracker data dir deleted: after a restart the index and catalog rebuild from node reports', async () => {
    const beforeView = await c.cluster();
    const beforeLoc = new Map<string, string[]>();
    for (const id of blobs.keys()) beforeLoc.set(id, (await c.locate(id)).replicas.map((r) => `${r.nodeId}/${r.diskId}`).sort());

    await c.procs.stop(c.tracker!, 'SIGKILL');
    rmSync(c.trackerDir, { recursive: true, force: true });
    await c.startTracker();
    await waitFor('the index to be rebuilt', async () => {
      const v = await c.cluster();
      return v.nodes.length === 3 && v.blobs.total === beforeView.blobs.total ? v : undefined;
    }, 30_000);
    for (const [id, reps] of beforeLoc) {
      const loc = await c.locate(id);
      assert.deepEqual(loc.replicas.map((r) => `${r.nodeId}/${r.diskId}`).sort(), reps, `replicas of ${id}`);
      assert.equal(loc.size, blobs.get(id)!.length);
    }
    const found = await waitFor('the catalog to be rebuilt', async () => {
      const r = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?q=qilixiang', { timeoutMs: 3000 });
      return r.songs.find((s) => s.id === 'song-qilixiang');
    });
    assert.equal(found.artist, '周杰伦');
  });
});
