// Tracker HA fencing on a real ZooKeeper (issue 6): SIGSTOP the leader until its ZooKeeper session
// expires (4 s session timeout), let the standby lead, kill a storage node so the new leader repairs,
// then SIGCONT the old leader. It must not copy or delete a single blob: the storage nodes' own
// counters (copies run, replicas deleted, stale-epoch refusals) and the old leader's log say so, and
// it reports itself as a standby. A command with its old epoch is refused by a node (and counted).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LocateResponse } from '../common/contracts.js';
import { rpc, RpcError } from '../common/http.js';
import { SECRET } from './helpers/cluster.js';
import { HA_FAST_CONFIG, HaCluster, type HaNodeInfo, type TrackerInfo } from './helpers/ha-cluster.js';
import { waitFor } from './helpers/procs.js';

const SESSION_TIMEOUT_MS = 4000;
const OBSERVE_AFTER_RESUME_MS = 4000;

describe('tracker HA fencing: a paused leader whose session expired never mutates (real ZooKeeper)', { timeout: 120_000 }, () => {
  // New blobs wait the grace before repair: no copy races the writer's second PUT, so every copy
  // counted below is a repair the test caused.
  const c = new HaCluster('ha-fencing', { ...HA_FAST_CONFIG, tracker: { ...HA_FAST_CONFIG.tracker, repairNewBlobGraceMs: 1500 }, ha: { sessionTimeoutMs: SESSION_TIMEOUT_MS } });
  const blobs: string[] = [];

  before(async () => {
    await c.startZooKeeper(1);
    await c.addTrackers(2);
    for (const t of c.trackers) await c.startTracker(t);
    for (const id of ['n1', 'n2', 'n3', 'n4']) await c.addNode(id);
  });

  after(async () => {
    await c.close();
  });

  const counters = async (nodes: HaNodeInfo[]): Promise<{ copies: number; deleted: number; stale: number }> => {
    const per = await Promise.all(nodes.map(async (n) => ({
      copies: await c.nodeCounter(n, 'ktv_storage_copies_total'),
      deleted: await c.nodeCounter(n, 'ktv_storage_deleted_replicas_total'),
      stale: await c.nodeCounter(n, 'ktv_storage_stale_epoch_refused_total'),
    })));
    return per.reduce((a, b) => ({ copies: a.copies + b.copies, deleted: a.deleted + b.deleted, stale: a.stale + b.stale }), { copies: 0, deleted: 0, stale: 0 });
  };

  it('SIGSTOP past the session timeout, a new leader repairs, SIGCONT: the old leader does nothing and stands by', async () => {
    const first = await waitFor('exactly one leader', () => c.soleLeader(), 20_000);
    const old = first.tracker;
    const standby = c.trackers.find((t) => t !== old)! as TrackerInfo;
    await waitFor('4 alive nodes on both trackers', async () => {
      const views = await Promise.all(c.trackers.map((t) => c.cluster(t)));
      return views.every((v) => v.nodes.filter((n) => n.state === 'alive').length === 4);
    });
    await c.waitWritable();
    for (let i = 0; i < 8; i++) blobs.push((await c.writeBlob(randomBytes(32 * 1024 + i))).id);

    const stoppedAt = Date.now();
    process.kill(old.proc!.pid, 'SIGSTOP');
    const next = await waitFor('the standby leads', () => c.soleLeader([standby]), 20_000, 50);
    console.log(`old leader ${old.id} (epoch ${first.epoch}) stopped; ${standby.id} leads with epoch ${next.epoch} after ${Date.now() - stoppedAt} ms`);
    assert.ok(next.epoch > first.epoch);

    // Work for the new leader: a node dies, its replicas are copied elsewhere.
    const victim = c.nodes[0]!;
    const survivors = c.nodes.slice(1);
    await c.procs.stop(victim.proc!, 'SIGKILL');
    const written = await c.writeBlob(randomBytes(20 * 1024));
    assert.equal(written.placement.epoch, next.epoch);
    blobs.push(written.id);
    await waitFor('every blob on 2 live nodes under the new leader', async () => {
      for (const id of blobs) {
        const l = await rpc<LocateResponse>(standby.url, `/internal/v1/blobs/${id}`, { timeoutMs: 3000, secret: SECRET });
        if (new Set(l.replicas.filter((r) => r.nodeId !== victim.id).map((r) => r.nodeId)).size < 2) return false;
      }
      return true;
    }, 60_000, 200);
    // Quiet: nothing left to copy; the figures the old leader must not move.
    const settled = await waitFor('repair queue empty', async () => ((await c.cluster(standby)).repair.queued === 0 && (await c.cluster(standby)).repair.inFlight === 0 ? true : undefined), 20_000);
    assert.ok(settled);
    const before = await counters(survivors);
    console.log(`before SIGCONT: copies ${before.copies}, deleted replicas ${before.deleted}, stale-epoch refusals ${before.stale}`);

    const oldLogBefore = old.proc!.log().length;
    process.kill(old.proc!.pid, 'SIGCONT');
    const resumedAt = Date.now();
    const oldHealth = await waitFor('the old leader answers as a standby', async () => {
      const h = await c.health(old);
      return h && !h.leader && h.ha?.session === 'connected' ? h : undefined;
    }, 20_000, 100);
    console.log(`old leader back as standby after ${Date.now() - resumedAt} ms (epoch it reports: ${oldHealth.epoch}, wins ${oldHealth.ha?.wins})`);
    // Let it run a few repair rounds and a GC pass with its stale view.
    await new Promise((r) => setTimeout(r, OBSERVE_AFTER_RESUME_MS));
    const afterResume = await counters(survivors);
    console.log(`after SIGCONT + ${OBSERVE_AFTER_RESUME_MS} ms: copies ${afterResume.copies}, deleted replicas ${afterResume.deleted}, stale-epoch refusals ${afterResume.stale}`);
    assert.equal(afterResume.copies, before.copies, 'no copy ran after the old leader resumed');
    assert.equal(afterResume.deleted, 0, 'no replica was ever deleted');
    const resumedLog = old.proc!.log().slice(oldLogBefore);
    assert.doesNotMatch(resumedLog, /"msg":"orphan blob deleted"/, 'the old leader logged no delete');
    assert.match(resumedLog, /not the leader any more/, 'the old leader logged that it stopped leading');
    const soleNow = await waitFor('exactly one leader', () => c.soleLeader(), 10_000);
    assert.equal(soleNow.tracker.id, standby.id, 'still exactly one leader: the new one');
    const oldNow = await waitFor('the old leader answers', () => c.health(old), 10_000);
    assert.equal(oldNow.leader, false, 'the old leader reports itself as a standby');

    // The node-side fence, on its own: the old epoch is refused and counted.
    const target = survivors[0]!;
    const staleBefore = await c.nodeCounter(target, 'ktv_storage_stale_epoch_refused_total');
    await assert.rejects(
      rpc(target.url, `/internal/v1/blobs/${blobs[0]!}`, { method: 'DELETE', body: { epoch: first.epoch }, secret: SECRET, timeoutMs: 3000 }),
      (e: unknown) => e instanceof RpcError && e.status === 409,
    );
    assert.equal(await c.nodeCounter(target, 'ktv_storage_stale_epoch_refused_total'), staleBefore + 1);
    assert.equal((await counters(survivors)).deleted, 0);
  });
});
