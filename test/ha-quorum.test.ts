// Tracker HA on a real 3-server ZooKeeper quorum (issue 6). Killing one ZooKeeper server (a
// follower) changes neither the leader nor the epoch; killing the quorum stops every mutation
// (leader=false on every tracker, placement refused) while reads (cluster view, locate, catalog)
// are still answered; with the quorum back there is one leader again, with a higher epoch.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LocateResponse } from '../common/contracts.js';
import { rpc, RpcError } from '../common/http.js';
import { SECRET } from './helpers/cluster.js';
import { HA_FAST_CONFIG, HaCluster } from './helpers/ha-cluster.js';
import { waitFor } from './helpers/procs.js';

const SESSION_TIMEOUT_MS = 4000;
/** How long leadership is watched after one ZooKeeper server is killed. */
const WATCH_AFTER_KILL_MS = 2 * SESSION_TIMEOUT_MS;

describe('tracker HA on a 3-server ZooKeeper quorum', { timeout: 120_000 }, () => {
  const c = new HaCluster('ha-quorum', { ...HA_FAST_CONFIG, ha: { sessionTimeoutMs: SESSION_TIMEOUT_MS } });
  let blobId = '';
  let leaderId = '';
  let epoch = 0;

  before(async () => {
    await c.startZooKeeper(3);
    await c.addTrackers(2);
    for (const t of c.trackers) await c.startTracker(t);
    for (const id of ['n1', 'n2']) await c.addNode(id);
  });

  after(async () => {
    await c.close();
  });

  it('one ZooKeeper server killed: leadership and epoch unchanged', async () => {
    const first = await waitFor('exactly one leader', () => c.soleLeader(), 20_000);
    leaderId = first.tracker.id;
    epoch = first.epoch;
    await waitFor('2 alive nodes on both trackers', async () => {
      const views = await Promise.all(c.trackers.map((t) => c.cluster(t)));
      return views.every((v) => v.nodes.filter((n) => n.state === 'alive').length === 2);
    });
    await c.waitWritable();
    blobId = (await c.writeBlob(randomBytes(16 * 1024))).id;
    const zk = c.zk!;
    const modes = await Promise.all([1, 2, 3].map((n) => zk.mode(n)));
    const victim = modes.indexOf('follower') + 1;
    assert.ok(victim > 0, `a follower among ${modes.join(',')}`);
    await zk.kill(victim);
    const deadline = Date.now() + WATCH_AFTER_KILL_MS;
    let samples = 0;
    let pausedSamples = 0;
    while (Date.now() < deadline) {
      const hs = await Promise.all(c.trackers.map((t) => c.health(t)));
      samples++;
      for (const h of hs) assert.equal(h?.epoch, epoch, 'the epoch never changes');
      const leaders = c.trackers.filter((_, i) => hs[i]?.leader).map((t) => t.id);
      assert.ok(leaders.length <= 1, 'never two leaders');
      if (leaders[0] !== leaderId) pausedSamples++;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`ZooKeeper server ${victim} (follower) killed: ${samples} samples over ${WATCH_AFTER_KILL_MS} ms, ${pausedSamples} without ${leaderId} leading, epoch ${epoch} throughout`);
    const now = await c.soleLeader();
    assert.equal(now?.tracker.id, leaderId);
    assert.equal(now?.epoch, epoch);
    assert.equal((await c.health(now!.tracker))!.ha?.wins, 1, 'the leader never re-ran the election');
  });

  it('quorum gone: no tracker mutates, reads answered; quorum back: one leader with a higher epoch', async () => {
    const zk = c.zk!;
    const lostAt = Date.now();
    await zk.stopAll();
    await waitFor('leader=false everywhere', async () => (await Promise.all(c.trackers.map((t) => c.health(t)))).every((h) => h && !h.leader), 10_000, 50);
    console.log(`quorum killed: every tracker stopped leading after ${Date.now() - lostAt} ms`);
    for (const t of c.trackers) {
      const view = await c.cluster(t);
      assert.equal(view.leader, false);
      assert.equal(view.nodes.length, 2);
      const located = await rpc<LocateResponse>(t.url, `/internal/v1/blobs/${blobId}`, { timeoutMs: 3000, secret: SECRET });
      assert.ok(located.replicas.length >= 1);
      const songs = await rpc<{ songs: unknown[] }>(t.url, '/api/v1/songs?q=x', { timeoutMs: 3000 });
      assert.ok(Array.isArray(songs.songs));
      await assert.rejects(
        rpc(t.url, '/internal/v1/placement', { body: { size: 1000, excludeNodes: [] }, secret: SECRET, timeoutMs: 3000 }),
        (e: unknown) => e instanceof RpcError && e.status === 503,
      );
    }
    // Still no leader a session timeout later (nobody can win without a quorum).
    await new Promise((r) => setTimeout(r, SESSION_TIMEOUT_MS));
    for (const t of c.trackers) assert.equal((await c.health(t))?.leader, false);

    const backAt = Date.now();
    for (let n = 1; n <= zk.size; n++) zk.restart(n);
    await zk.waitServing();
    const next = await waitFor('one leader again', () => c.soleLeader(), 60_000, 100);
    console.log(`quorum restarted: ${next.tracker.id} leads with epoch ${next.epoch} (was ${leaderId}, ${epoch}) ${Date.now() - backAt} ms after the restart`);
    assert.ok(next.epoch > epoch, `epoch grows: ${epoch} → ${next.epoch}`);
    const written = await c.writeBlob(randomBytes(8 * 1024));
    assert.equal(written.placement.epoch, next.epoch);
  });
});
