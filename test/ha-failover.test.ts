// Tracker HA on a real ZooKeeper (issue 6): two trackers started with --zk, three storage nodes
// reporting to both. Exactly one leads; SIGKILL it and the standby leads (the kill → serving-writes
// time is printed, the 10 s requirement is a generous deadline); a blob write through the tracker
// list works afterwards, and repair resumes under the new leader with its higher epoch.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LocateResponse } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { SECRET } from './helpers/cluster.js';
import { HA_FAST_CONFIG, HaCluster, type TrackerInfo } from './helpers/ha-cluster.js';
import { waitFor } from './helpers/procs.js';

const SESSION_TIMEOUT_MS = 4000;

describe('tracker HA: failover after SIGKILL of the leader (real ZooKeeper)', { timeout: 120_000 }, () => {
  const c = new HaCluster('ha-failover', { ...HA_FAST_CONFIG, ha: { sessionTimeoutMs: SESSION_TIMEOUT_MS } });
  const blobs: string[] = [];
  let first: { tracker: TrackerInfo; epoch: number };

  before(async () => {
    await c.startZooKeeper(1);
    await c.addTrackers(2);
    for (const t of c.trackers) await c.startTracker(t);
    for (const id of ['n1', 'n2', 'n3']) await c.addNode(id);
  });

  after(async () => {
    await c.close();
  });

  it('elects exactly one leader; the standby has the same index and answers reads', async () => {
    first = await waitFor('exactly one leader', () => c.soleLeader(), 20_000);
    const standby = c.trackers.find((t) => t !== first.tracker)!;
    const sh = (await c.health(standby))!;
    assert.equal(sh.leader, false);
    assert.equal(sh.ha?.lastLeader?.id, first.tracker.id, 'the standby knows the leader from the breadcrumb');
    assert.deepEqual(sh.ha?.trackersOnline, ['t1', 't2']);
    console.log(`leader ${first.tracker.id} epoch ${first.epoch}; standby ${standby.id}`);
    await waitFor('3 alive nodes on both trackers', async () => {
      const views = await Promise.all(c.trackers.map((t) => c.cluster(t)));
      return views.every((v) => v.nodes.filter((n) => n.state === 'alive').length === 3);
    });
    // Writes through the list, whichever tracker comes first in it (a standby forwards placement).
    await c.waitWritable();
    for (let i = 0; i < 6; i++) blobs.push((await c.writeBlob(randomBytes(48 * 1024 + i))).id);
    const viaStandby = await rpc<{ epoch: number }>(standby.url, '/internal/v1/placement', { body: { size: 1000, excludeNodes: [] }, secret: SECRET, timeoutMs: 3000 });
    assert.equal(viaStandby.epoch, first.epoch, 'a placement asked of the standby is answered by the leader');
    // The standby's index is hot: it locates every blob.
    await waitFor('the standby locates every blob', async () => {
      for (const id of blobs) {
        const l = await rpc<LocateResponse>(standby.url, `/internal/v1/blobs/${id}`, { timeoutMs: 3000, secret: SECRET });
        if (l.replicas.length < 2) return false;
      }
      return true;
    });
  });

  it('SIGKILL of the leader: the standby leads with a higher epoch, writes work through the tracker list', async () => {
    const standby = c.trackers.find((t) => t !== first.tracker)!;
    const killedAt = Date.now();
    await c.procs.stop(first.tracker.proc!, 'SIGKILL');
    // A write started right away: the tracker client waits out the election by itself.
    const early = c.writeBlob(randomBytes(24 * 1024)).then((w) => ({ ...w, doneMs: Date.now() - killedAt }));
    const next = await waitFor('the standby leads', () => c.soleLeader([standby]), 10_000, 50);
    const leadingMs = Date.now() - killedAt;
    // Serving writes: a placement through the tracker list (the dead one first in it) succeeds.
    await waitFor('a placement through the tracker list', async () => (await c.client().call<{ epoch: number }>('/internal/v1/placement', { body: { size: 1000, excludeNodes: [] } })).epoch === next.epoch, 10_000, 50);
    const writesMs = Date.now() - killedAt;
    console.log(`failover: kill → standby leads ${leadingMs} ms, kill → placement served ${writesMs} ms (session timeout ${SESSION_TIMEOUT_MS} ms)`);
    assert.ok(next.epoch > first.epoch, `epoch grows: ${first.epoch} → ${next.epoch}`);
    const earlyWrite = await early;
    console.log(`a blob write started at the kill completed after ${earlyWrite.doneMs} ms (epoch ${earlyWrite.placement.epoch})`);
    assert.equal(earlyWrite.placement.epoch, next.epoch);
    blobs.push(earlyWrite.id);
    const written = await c.writeBlob(randomBytes(40 * 1024));
    assert.equal(written.placement.epoch, next.epoch);
    blobs.push(written.id);
    const h = (await c.health(standby))!;
    assert.deepEqual(h.ha?.trackersOnline, [standby.id], 'the killed tracker\'s ephemeral znode is gone');
    assert.equal(h.ha?.lastLeader?.id, standby.id);
  });

  it('repair resumes under the new leader: a SIGKILLed node\'s replicas are restored', async () => {
    const leader = c.trackers.find((t) => t !== first.tracker)!;
    const victim = c.nodes[0]!;
    const copiesBefore = (await Promise.all(c.nodes.slice(1).map((n) => c.nodeCounter(n, 'ktv_storage_copies_total', 'result="copied"')))).reduce((a, b) => a + b, 0);
    await c.procs.stop(victim.proc!, 'SIGKILL');
    const startedAt = Date.now();
    await waitFor('every blob on 2 live nodes again', async () => {
      for (const id of blobs) {
        const l = await rpc<LocateResponse>(leader.url, `/internal/v1/blobs/${id}`, { timeoutMs: 3000, secret: SECRET });
        const live = new Set(l.replicas.filter((r) => r.nodeId !== victim.id).map((r) => r.nodeId));
        if (live.size < 2) return false;
      }
      return true;
    }, 60_000, 200);
    const copiesAfter = (await Promise.all(c.nodes.slice(1).map((n) => c.nodeCounter(n, 'ktv_storage_copies_total', 'result="copied"')))).reduce((a, b) => a + b, 0);
    console.log(`repair under the new leader: ${copiesAfter - copiesBefore} copies, all blobs back to 2 live copies ${Date.now() - startedAt} ms after the node kill (grace ${HA_FAST_CONFIG.tracker.repairGraceMs} ms)`);
    assert.ok(copiesAfter > copiesBefore, 'the surviving nodes ran copies for the new leader');
  });
});
