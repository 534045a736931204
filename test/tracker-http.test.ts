// The tracker over HTTP, in-process on port 0. The test itself stands in for storage nodes
// (signed heartbeats, inventories, changes, and a tiny server answering the tracker's blob GET
// and fetch commands): the real storage node is exercised against the tracker in cluster*.test.ts.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClusterView, HeartbeatRequest, LocateResponse, PlacementResponse } from '../common/contracts.js';
import { rpc, RpcError } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { NonceCache, signRequest, verifyRequest } from '../common/signing.js';
import { loadConfig } from '../config/load.js';
import { startTracker, type TrackerHandle } from '../tracker/index.js';

const SECRET = 'tracker-http-test-' + randomBytes(8).toString('hex');
const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

interface FakeNode {
  url: string;
  server: Server;
  /** Blob ids of fetch commands received. */
  fetches: string[];
  commands: Array<{ blob: string; command: unknown }>;
  /** Status answered to fetch commands. */
  fetchStatus: number;
  /** Requests that failed the signature check. */
  unsigned: number;
}

/** A stand-in storage node: serves blob GETs and takes fetch commands, checking the tracker's signature. */
async function fakeNode(blobs: Map<string, Buffer>): Promise<FakeNode> {
  const nonces = new NonceCache(1000, 30_000);
  const state: FakeNode = { url: '', server: createServer(), fetches: [], commands: [], fetchStatus: 503, unsigned: 0 };
  state.server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const ok = verifyRequest(SECRET, { method: req.method!, pathAndQuery: req.url!, headers: req.headers, body }, nonces, 30_000);
      if (!ok.ok) {
        state.unsigned++;
        res.writeHead(401).end();
        return;
      }
      const m = /^\/internal\/v1\/blobs\/([0-9a-f]{64})(\/fetch)?$/.exec(req.url ?? '');
      if (m && !m[2] && req.method === 'GET' && blobs.has(m[1]!)) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(blobs.get(m[1]!));
      } else if (m && m[2] && req.method === 'POST') {
        state.fetches.push(m[1]!);
        state.commands.push({ blob: m[1]!, command: JSON.parse(body.toString()) });
        // Like the real node: 201 with the disk it stored the copy on.
        const answer = state.fetchStatus < 300 ? { id: m[1]!, size: 77, disk: 'd1', source: 'x' } : { error: 'busy' };
        res.writeHead(state.fetchStatus, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      } else {
        res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/`;
  return state;
}

function heartbeat(nodeId: string, url: string, changeSeq = 0): HeartbeatRequest {
  return {
    nodeId, url, changeSeq, bootId: 'boot-1',
    disks: [
      { id: 'd1', state: 'healthy', reason: '', freeBytes: 50e9, totalBytes: 100e9, blobs: 2, usedBytes: 1 },
      { id: 'd2', state: 'masked', reason: 'probe timed out', freeBytes: 50e9, totalBytes: 100e9, blobs: 0, usedBytes: 0 },
    ],
  };
}

describe('tracker HTTP', () => {
  let tracker: TrackerHandle;
  let dataDir: string;
  let node: FakeNode;
  const manifestBytes = Buffer.from(JSON.stringify({ type: 'ktv.song', id: 'song-1', version: 1, title: '七里香', artist: '周杰伦', language: 'Mandarin', durationS: 299 }));
  const manifestId = sha(manifestBytes);
  const dataId = sha('some video bytes');
  const call = <T>(path: string, body?: unknown) => rpc<T>(tracker.url, path, { secret: SECRET, body, timeoutMs: 5000 });
  const status = async (p: Promise<unknown>) => p.then(() => 200, (e: unknown) => (e instanceof RpcError ? e.status : -1));

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tracker-http-'));
    node = await fakeNode(new Map([[manifestId, manifestBytes]]));
    const config = loadConfig({ overrides: { tracker: { nodeDeadAfterMs: 60_000, repairIntervalMs: 100, placementFreeFloorBytes: 0 } } });
    tracker = await startTracker({ config, host: '127.0.0.1', port: 0, dataDir, secret: SECRET, adminToken: 'admin-token-for-tests', log: createLogger('tracker', 'error') });
  });

  after(async () => {
    await tracker?.close();
    await new Promise((r) => node?.server.close(r));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses unsigned and stale requests and registers nothing', async () => {
    const body = JSON.stringify(heartbeat('n1', node.url));
    const unsigned = await fetch(new URL('/internal/v1/heartbeat', tracker.url), { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(unsigned.status, 401);
    assert.match(((await unsigned.json()) as { error: string }).error, /not signed/);
    const staleHeaders = signRequest(SECRET, 'POST', '/internal/v1/heartbeat', body, Date.now() - 10 * 60_000);
    const stale = await fetch(new URL('/internal/v1/heartbeat', tracker.url), { method: 'POST', body, headers: { 'content-type': 'application/json', ...staleHeaders } });
    assert.equal(stale.status, 401);
    const wrongSecret = await status(rpc(tracker.url, '/internal/v1/heartbeat', { secret: 'x'.repeat(32), body: JSON.parse(body), timeoutMs: 5000 }));
    assert.equal(wrongSecret, 401);
    const view = await rpc<ClusterView>(tracker.url, '/api/v1/cluster', { timeoutMs: 5000 });
    assert.deepEqual(view.nodes, []);
  });

  it('validates blob ids and bodies', async () => {
    assert.equal(await status(call('/internal/v1/blobs/not-a-hash')), 400);
    assert.equal(await status(rpc(tracker.url, `/internal/v1/blobs/${'A'.repeat(64)}`, { timeoutMs: 5000 })), 400);
    assert.equal(await status(call(`/internal/v1/blobs/${sha('unknown')}`)), 404);
    assert.equal(await status(call('/internal/v1/heartbeat', { nodeId: '../etc', url: 'x' })), 400);
  });

  it('a heartbeat and an inventory make locate answer; changes apply in order', async () => {
    const hb = await call<{ needFullReport: boolean; epoch: number; leader: boolean }>('/internal/v1/heartbeat', heartbeat('n1', node.url));
    assert.deepEqual(hb, { needFullReport: true, epoch: 1, leader: true });
    const answer = await call('/internal/v1/inventory', {
      nodeId: 'n1', bootId: 'boot-1', reportId: 'rep-1', changeSeq: 0, part: 0, final: true,
      disks: [{ id: 'd1', blobs: [[manifestId, manifestBytes.length, 'manifest'], [dataId, 1234, 'data']] }],
    });
    assert.deepEqual(answer, { ok: true, needFullReport: false });
    const again = await call<{ needFullReport: boolean }>('/internal/v1/heartbeat', heartbeat('n1', node.url));
    assert.equal(again.needFullReport, false);
    const located = await call<LocateResponse>(`/internal/v1/blobs/${dataId}`);
    assert.deepEqual(located, {
      id: dataId, size: 1234, kind: 'data',
      replicas: [{ nodeId: 'n1', url: node.url, diskId: 'd1', nodeState: 'alive', diskState: 'healthy' }],
    });
    const added = sha('added later');
    const change = (fromSeq: number) => call<{ ok: boolean; needFullReport: boolean }>('/internal/v1/changes', {
      nodeId: 'n1', bootId: 'boot-1', fromSeq, changes: [{ op: 'add', disk: 'd1', blob: added, size: 9, kind: 'data' }],
    });
    assert.deepEqual(await change(1), { ok: true, needFullReport: false });
    assert.equal((await call<LocateResponse>(`/internal/v1/blobs/${added}`)).size, 9);
    assert.deepEqual(await change(3), { ok: true, needFullReport: true });
  });

  it('fetches the manifest blob from the node (signed) and serves it in search', async () => {
    for (let i = 0; i < 200; i++) {
      const found = await rpc<{ songs: Array<{ id: string }> }>(tracker.url, '/api/v1/songs?q=qlx', { timeoutMs: 5000 });
      if (found.songs.length > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(node.unsigned, 0);
    const found = await rpc<{ songs: unknown[] }>(tracker.url, `/api/v1/songs?q=${encodeURIComponent('周杰伦')}&limit=5`, { timeoutMs: 5000 });
    assert.deepEqual(found.songs, [{ id: 'song-1', title: '七里香', artist: '周杰伦', language: 'Mandarin', initials: 'QLX', durationS: 299, genre: '', version: 1 }]);
    const song = await fetch(new URL('/api/v1/songs/song-1', tracker.url));
    assert.equal(song.status, 200);
    assert.deepEqual(Buffer.from(await song.arrayBuffer()), manifestBytes);
  });

  it('validates search and song parameters', async () => {
    const get = async (path: string) => (await fetch(new URL(path, tracker.url))).status;
    assert.equal(await get('/api/v1/songs?limit=0'), 400);
    assert.equal(await get('/api/v1/songs?limit=abc'), 400);
    assert.equal(await get('/api/v1/songs?limit=100000'), 400);
    assert.equal(await get('/api/v1/songs?q=a&q=b'), 400);
    assert.equal(await get(`/api/v1/songs?q=${'x'.repeat(1000)}`), 400);
    assert.equal(await get('/api/v1/songs?sort=random'), 400);
    assert.equal(await get('/api/v1/songs?q=&limit=10&sort=new'), 200);
    assert.equal(await get('/api/v1/songs/bad%20id'), 400);
    assert.equal(await get('/api/v1/songs/no-such-song'), 404);
    const notFound = await fetch(new URL('/no/such/route', tracker.url));
    assert.equal(notFound.status, 404);
    assert.deepEqual(await notFound.json(), { error: 'not found' });
  });

  it('places on distinct healthy nodes or answers 503', async () => {
    const refused = await call<PlacementResponse>('/internal/v1/placement', { size: 1000 }).catch((e: RpcError) => e);
    assert.ok(refused instanceof RpcError);
    assert.equal(refused.status, 503);
    assert.match(refused.message, /only 1 healthy nodes for 2 replicas/);
    await call('/internal/v1/heartbeat', heartbeat('n2', node.url));
    const placed = await call<PlacementResponse>('/internal/v1/placement', { size: 1000, excludeNodes: [] });
    assert.equal(placed.epoch, 1);
    assert.deepEqual(placed.targets.map((t) => `${t.nodeId}/${t.diskId}`).sort(), ['n1/d1', 'n2/d1']);
    const excluded = await status(call('/internal/v1/placement', { size: 1000, excludeNodes: ['n2'] }));
    assert.equal(excluded, 503);
  });

  it('describes the cluster and exposes metrics and health', async () => {
    const view = await rpc<ClusterView>(tracker.url, '/api/v1/cluster', { timeoutMs: 5000 });
    assert.equal(view.leader, true);
    assert.equal(view.epoch, 1);
    assert.deepEqual(view.nodes.map((n) => [n.id, n.url, n.state]), [['n1', node.url, 'alive'], ['n2', node.url, 'alive']]);
    assert.deepEqual(view.nodes[0]!.disks.map((d) => [d.id, d.state, d.freeBytes, d.blobs]), [['d1', 'healthy', 50e9, 2], ['d2', 'masked', 50e9, 0]]);
    assert.equal(view.blobs.total, 3);
    assert.equal(view.blobs.lost, 0);
    assert.equal(view.blobs.underReplicated, 3, 'one copy each, two wanted');
    assert.equal(view.songs, 1);
    for (const key of ['queued', 'inFlight', 'done', 'failed']) assert.equal(typeof (view.repair as unknown as Record<string, number>)[key], 'number');
    const metrics = await (await fetch(new URL('/metrics', tracker.url))).text();
    for (const name of ['ktv_tracker_nodes{state="alive"} 2', 'ktv_tracker_blobs 3', 'ktv_tracker_blobs_under_replicated 3', 'ktv_tracker_blobs_lost 0', 'ktv_tracker_locate_seconds_count', 'ktv_tracker_search_seconds_count', 'ktv_tracker_http_requests_total{']) {
      assert.ok(metrics.includes(name), `metrics lack ${name}`);
    }
    assert.deepEqual(await (await fetch(new URL('/health', tracker.url))).json(), { ok: true, role: 'tracker', leader: true, epoch: 1 });
  });

});

describe('tracker HTTP repair', () => {
  it('sends a signed fetch command to a node without the blob; retries after a refusal', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tracker-repair-'));
    const holder = await fakeNode(new Map());
    const target = await fakeNode(new Map());
    target.fetchStatus = 503;
    const config = loadConfig({ overrides: { tracker: { nodeDeadAfterMs: 300, repairIntervalMs: 50, repairRetryBaseMs: 100, repairNewBlobGraceMs: 0, placementFreeFloorBytes: 0 } } });
    const tracker = await startTracker({ config, host: '127.0.0.1', port: 0, dataDir, secret: SECRET, adminToken: 'admin-token-for-tests', log: createLogger('tracker', 'error') });
    const call = <T>(path: string, body?: unknown) => rpc<T>(tracker.url, path, { secret: SECRET, body, timeoutMs: 5000 });
    const id = sha('a blob that lost a copy');
    const beat = () => Promise.all([call('/internal/v1/heartbeat', heartbeat('n1', holder.url)), call('/internal/v1/heartbeat', heartbeat('n2', target.url))]);
    const keepAlive = setInterval(() => void beat().catch(() => undefined), 100);
    try {
      await beat();
      await call('/internal/v1/inventory', { nodeId: 'n1', bootId: 'boot-1', reportId: 'r', changeSeq: 0, part: 0, final: true, disks: [{ id: 'd1', blobs: [[id, 77, 'data']] }] });
      await call('/internal/v1/inventory', { nodeId: 'n2', bootId: 'boot-1', reportId: 'r', changeSeq: 0, part: 0, final: true, disks: [] });
      await waitUntil(() => target.fetches.length >= 2);
      assert.equal(holder.fetches.length, 0, 'never asked of the node that has it');
      assert.deepEqual(target.commands[0], { blob: id, command: { sources: [holder.url], size: 77, kind: 'data', disk: 'd1', epoch: 1 } });
      assert.ok(tracker.core.repair.counters.failed >= 1);
      assert.equal((await call<LocateResponse>(`/internal/v1/blobs/${id}`)).replicas.length, 1, 'a refused copy is not in the index');
      target.fetchStatus = 201;
      await waitUntil(() => tracker.core.repair.counters.done === 1);
      const located = await call<LocateResponse>(`/internal/v1/blobs/${id}`);
      assert.deepEqual(located.replicas.map((r) => r.nodeId).sort(), ['n1', 'n2']);
      const view = await rpc<ClusterView>(tracker.url, '/api/v1/cluster', { timeoutMs: 5000 });
      assert.equal(view.blobs.underReplicated, 0);
      assert.equal(view.repair.done, 1);
    } finally {
      clearInterval(keepAlive);
      await tracker.close();
      await Promise.all([holder, target].map((n) => new Promise((r) => n.server.close(r))));
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
