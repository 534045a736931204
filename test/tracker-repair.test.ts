// Repair, drain and lost blobs on real processes (issue 5): one tracker and three storage nodes on
// loopback. The operator endpoints (401/403/400/404, forwarding to the node), `ktv disk` and
// `ktv node` exit codes and messages, a disk drained through the CLI until "safe to remove", a
// dead node's blobs re-copied under a tiny cluster budget (the queue and the rate are printed, not
// timed), and a blob listed as lost when every holder is SIGKILLed, unlisted once they restart.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ClusterView } from '../common/contracts.js';
import { ADMIN, FAST_CONFIG, SECRET, TestCluster } from './helpers/cluster.js';
import { KTV_BIN, waitFor } from './helpers/procs.js';

const KIB = 1024;
/** Tiny on purpose: a few MB of repair takes seconds, long enough to watch the queue drain. */
const CLUSTER_BUDGET = 256 * KIB;
const BLOB_BYTES = 96 * KIB;

const CONFIG = {
  ...FAST_CONFIG,
  tracker: {
    ...FAST_CONFIG.tracker,
    // Long enough that no repair copy races the writer's second PUT (a third copy would make the
    // per-disk counts below drift), short enough not to slow the drain.
    repairNewBlobGraceMs: 2000,
    repairClusterBytesPerSec: CLUSTER_BUDGET,
    repairNodeBytesPerSec: 16 * 1024 * KIB,
    // No maintenance window: the business-hours budget holds whatever the time of day.
    maintenanceWindow: '',
  },
};

function ktv(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KTV_BIN, ...args], { env: { ...process.env, KTV_CLUSTER_SECRET: SECRET, KTV_ADMIN_TOKEN: ADMIN, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function admin(c: TestCluster, path: string, body: unknown, token: string | null = ADMIN): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(new URL(path, c.trackerUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const diskOf = (v: ClusterView, node: string, disk: string) => v.nodes.find((n) => n.id === node)!.disks.find((d) => d.id === disk)!;

function repairLine(v: ClusterView): string {
  const r = v.repair;
  return `queued ${r.queued} (${Math.round((r.queuedBytes ?? 0) / KIB)} KiB) inFlight ${r.inFlight} rate ${Math.round((r.rateBytesPerSec ?? 0) / KIB)} KiB/s eta ${r.etaS}s copied ${Math.round((r.copiedBytes ?? 0) / KIB)} KiB underReplicated ${v.blobs.underReplicated}`;
}

describe('repair queue, budgets, drain, operator commands and lost blobs (real processes)', { timeout: 120_000 }, () => {
  const c = new TestCluster('tracker-repair', CONFIG);
  let diskIds: string[] = [];

  before(async () => {
    await c.startTracker();
    for (const id of ['n1', 'n2', 'n3']) await c.addNode(id);
    const v = await c.waitAlive(3);
    diskIds = v.nodes[0]!.disks.map((d) => d.id);
    for (let i = 0; i < 30; i++) await c.writeBlob(randomBytes(BLOB_BYTES));
    await waitFor('30 blobs indexed', async () => (await c.cluster()).blobs.total === 30);
    // Per-disk counts come with the nodes' heartbeats, a beat behind the index: wait for both copies.
    let last = -1;
    await waitFor('every copy counted on its disk', async () => {
      const sum = (await c.cluster()).nodes.reduce((s, n) => s + n.disks.reduce((t, d) => t + d.blobs, 0), 0);
      const settled = sum >= 60 && sum === last;
      last = sum;
      return settled;
    }, 20_000, 300);
  });

  after(() => c.close());

  it('admin endpoints: 401 without a token, 403 with a wrong one, 400 bad body, 404 unknown node or disk', async () => {
    const path = `/api/v1/admin/disks/n1/${diskIds[0]}`;
    assert.equal((await admin(c, path, { action: 'drain' }, null)).status, 401);
    assert.equal((await admin(c, path, { action: 'drain' }, 'wrong-token-wrong-token')).status, 403);
    const bad = await admin(c, path, { action: 'explode' });
    assert.equal(bad.status, 400);
    assert.match(String(bad.json.error), /action/);
    assert.equal((await admin(c, path, '{not json')).status, 400);
    const unknown = await admin(c, `/api/v1/admin/disks/nX/${diskIds[0]}`, { action: 'drain' });
    assert.equal(unknown.status, 404);
    assert.match(String(unknown.json.error), /unknown node "nX"/);
    assert.equal((await admin(c, '/api/v1/admin/disks/n1/nodisk', { action: 'mask' })).status, 404);
    assert.equal((await admin(c, '/api/v1/admin/nodes/nX/drain', {})).status, 404);
    assert.equal((await admin(c, '/api/v1/admin/nodes/n1/explode', {})).status, 404);
  });

  it('ktv disk drain reaches the node; repair copies the disk away until it is safe to remove; unmask undoes it', async () => {
    const disk = diskIds[0]!;
    const before = diskOf(await c.cluster(), 'n1', disk);
    assert.ok(before.blobs > 0, 'the disk holds blobs');
    const drained = await ktv(['disk', 'drain', 'n1', disk, '--tracker', c.trackerUrl, '--note', 'replacing, ticket 42']);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, new RegExp(`^n1/${disk}: draining`));
    const samples: string[] = [];
    const done = await waitFor('the drained disk safe to remove', async () => {
      const v = await c.cluster();
      const d = diskOf(v, 'n1', disk);
      samples.push(`${d.state} drain ${JSON.stringify(d.drain)} | ${repairLine(v)}`);
      return d.drain?.safeToRemove ? v : undefined;
    }, 60_000, 250);
    console.log(`drain of n1/${disk} (${before.blobs} blobs):\n  ${samples.filter((_, i) => i % 4 === 0).join('\n  ')}`);
    const d = diskOf(done, 'n1', disk);
    assert.equal(d.state, 'draining');
    assert.equal(d.operator, 'drain');
    assert.equal(d.blobs, before.blobs, 'the drained copies stay until the operator pulls the disk');
    const status = await ktv(['status', '--tracker', c.trackerUrl]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /SAFE TO REMOVE/);
    assert.match(status.stdout, /operator drain/);
    assert.match(status.stdout, /repair rate .* budget business hours: 256\.0 KiB\/s cluster/);
    const back = await ktv(['disk', 'unmask', 'n1', disk, '--tracker', c.trackerUrl]);
    assert.equal(back.code, 0, back.stderr);
    await waitFor('disk healthy again', async () => diskOf(await c.cluster(), 'n1', disk).state === 'healthy');
  });

  it('ktv disk / ktv node: exit 2 on bad usage, 1 with one line for an unknown node or a missing token', async () => {
    const usage = await ktv(['disk', 'explode', 'n1', 'd1', '--tracker', c.trackerUrl]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^ktv: unknown disk action "explode"/);
    assert.equal((await ktv(['disk', 'drain', 'n1', '--tracker', c.trackerUrl])).code, 2, 'DISK missing');
    const unknown = await ktv(['node', 'drain', 'nX', '--tracker', c.trackerUrl]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.trim().split('\n').length, 1);
    assert.match(unknown.stderr, /^ktv: .*unknown node "nX"/);
    const noToken = await ktv(['node', 'drain', 'n1', '--tracker', c.trackerUrl], { KTV_ADMIN_TOKEN: '' });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /KTV_ADMIN_TOKEN is not set/);
    const noTracker = await ktv(['node', 'drain', 'n1', '--tracker', 'http://127.0.0.1:1']);
    assert.equal(noTracker.code, 1);
    assert.match(noTracker.stderr, /no tracker answered/);
  });

  it('a dead node is re-replicated under the cluster budget; the queue, rate and ETA are reported', async () => {
    const n3 = c.nodes.find((n) => n.id === 'n3')!;
    const held = (await c.cluster()).nodes.find((n) => n.id === 'n3')!.disks.reduce((s, d) => s + d.blobs, 0);
    await c.procs.stop(n3.proc!, 'SIGKILL');
    const t0 = Date.now();
    const samples: string[] = [];
    let sawQueue = false;
    let maxRate = 0;
    const done = await waitFor('re-replication done', async () => {
      const v = await c.cluster();
      const r = v.repair;
      if ((r.queuedBytes ?? 0) > 0 && r.etaS !== null) sawQueue = true;
      maxRate = Math.max(maxRate, r.rateBytesPerSec ?? 0);
      samples.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${repairLine(v)}`);
      return v.nodes.find((n) => n.id === 'n3')!.state === 'dead' && v.blobs.underReplicated === 0 && r.inFlight === 0 ? v : undefined;
    }, 60_000, 250);
    const elapsedS = (Date.now() - t0) / 1000;
    console.log(`n3 held ${held} blobs (${Math.round((held * BLOB_BYTES) / KIB)} KiB); budget ${CLUSTER_BUDGET / KIB} KiB/s; done in ${elapsedS.toFixed(1)} s (grace 1.5 s included); highest reported rate ${Math.round(maxRate / KIB)} KiB/s`);
    console.log(`  ${samples.filter((_, i) => i % 4 === 0).join('\n  ')}`);
    assert.ok(sawQueue, 'the queue (bytes and ETA) was visible while copying');
    assert.deepEqual(done.repair.budget, { window: 'business', clusterBytesPerSec: CLUSTER_BUDGET, nodeBytesPerSec: 16 * 1024 * KIB });
    assert.ok((done.repair.copiedBytes ?? 0) >= held * BLOB_BYTES, 'every blob of n3 copied');
    const metrics = await (await fetch(new URL('/metrics', c.trackerUrl))).text();
    assert.match(metrics, /tracker_repair_copied_bytes \d+/);
    assert.match(metrics, /tracker_repair_budget_bytes_per_second\{scope="cluster",window="business"\} 262144/);
    // The operator commands say clearly that a dead node cannot take them.
    const unreachable = await admin(c, '/api/v1/admin/nodes/n3/drain', {});
    assert.equal(unreachable.status, 502);
    assert.match(String(unreachable.json.error), /unreachable/);
    const cli = await ktv(['node', 'drain', 'n3', '--tracker', c.trackerUrl]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /^ktv: .*n3 unreachable/);
  });

  it('lists a blob as lost when every holder is killed past the grace, and unlists it when they restart', async () => {
    const { id } = await c.writeBlob(randomBytes(BLOB_BYTES));
    const holders = await waitFor('the new blob indexed on two nodes', async () => {
      const r = (await c.locate(id)).replicas.map((x) => x.nodeId);
      return r.length === 2 ? r : undefined;
    });
    assert.deepEqual([...holders].sort(), ['n1', 'n2'], 'n3 is dead: the new blob is on n1 and n2');
    for (const n of c.nodes.filter((x) => holders.includes(x.id))) await c.procs.stop(n.proc!, 'SIGKILL');
    const lost = await waitFor('the blob listed as lost', async () => {
      const v = await c.cluster();
      return v.lostBlobs?.some((l) => l.id === id) ? v : undefined;
    }, 30_000, 250);
    const entry = lost.lostBlobs!.find((l) => l.id === id)!;
    assert.equal(entry.sizeBytes, BLOB_BYTES);
    assert.equal(entry.kind, 'data');
    assert.ok(lost.blobs.lost >= 1);
    const status = await ktv(['status', '--tracker', c.trackerUrl]);
    assert.equal(status.code, 1, 'ktv status fails while a blob is lost');
    assert.match(status.stdout, /^!!! LOST: \d+ blob\(s\) have no readable copy on any node !!!/);
    // Every copy on n1 and n2 is gone now (n3 is dead too): status lists 20 and counts the rest.
    const listed = lost.lostBlobs!.slice(0, 20).some((l) => l.id === id);
    if (listed) assert.ok(status.stdout.includes(id.slice(0, 16)), 'the lost blob is named');
    else assert.match(status.stdout, /… and \d+ more \(ktv status --json lists up to 100\)/);
    const trackerLog = c.tracker!.log();
    assert.match(trackerLog, /BLOB LOST/);
    for (const n of c.nodes.filter((x) => holders.includes(x.id))) await c.startNode(n);
    const back = await waitFor('no blob lost after the restart', async () => {
      const v = await c.cluster();
      return v.blobs.lost === 0 && (v.lostBlobs ?? []).length === 0 ? v : undefined;
    }, 30_000, 250);
    assert.equal(back.blobs.lost, 0);
    assert.match(c.tracker!.log(), /lost blob readable again/);
  });
});
