// HA presence (issue 6, 上下线感知): storage nodes and streamers started with --zk hold an ephemeral
// znode; the trackers list them, and a storage node whose znode vanishes is dead at once — on a
// clean stop (its session is closed) and within the session timeout after a SIGKILL — although
// nodeDeadAfterMs (heartbeats) is set far longer here, so only ZooKeeper can explain the figures.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HA_FAST_CONFIG, HaCluster } from './helpers/ha-cluster.js';
import { freePort, waitFor } from './helpers/procs.js';

const SESSION_TIMEOUT_MS = 2000;
const NODE_DEAD_AFTER_MS = 60_000;

describe('HA presence: ephemeral znodes of storage nodes and streamers (real ZooKeeper)', { timeout: 120_000 }, () => {
  const c = new HaCluster('ha-presence', {
    ...HA_FAST_CONFIG,
    tracker: { ...HA_FAST_CONFIG.tracker, nodeDeadAfterMs: NODE_DEAD_AFTER_MS },
    ha: { sessionTimeoutMs: SESSION_TIMEOUT_MS },
  });

  before(async () => {
    await c.startZooKeeper(1);
    await c.addTrackers(1);
    await c.startTracker(c.trackers[0]!);
    await c.addNode('n1', 1, true);
    await c.addNode('n2', 1, true);
  });

  after(async () => {
    await c.close();
  });

  const stateOf = async (id: string): Promise<string | undefined> => (await c.cluster(c.trackers[0]!)).nodes.find((n) => n.id === id)?.state;

  it('lists registered nodes and streamers', async () => {
    const port = await freePort();
    c.procs.start('s1', ['streamer', '--id', 's1', '--port', String(port), '--tracker', c.trackerList, '--config', c.configFile, '--zk', c.zk!.connectString]);
    const h = await waitFor('n1, n2 and s1 registered', async () => {
      const v = await c.health(c.trackers[0]!);
      return v?.ha?.nodesOnline.join() === 'n1,n2' && v.ha.streamersOnline.join() === 's1' ? v : undefined;
    });
    assert.equal(h.ha?.leader, true);
    await waitFor('both nodes alive', async () => (await stateOf('n1')) === 'alive' && (await stateOf('n2')) === 'alive');
  });

  it('a cleanly stopped node is dead at once; a SIGKILLed one within the session timeout', async () => {
    let at = Date.now();
    await c.procs.stop(c.nodes[0]!.proc!, 'SIGTERM');
    await waitFor('n1 dead', async () => (await stateOf('n1')) === 'dead', 10_000, 50);
    console.log(`SIGTERM → tracker says dead: ${Date.now() - at} ms (heartbeat timeout ${NODE_DEAD_AFTER_MS} ms)`);
    at = Date.now();
    await c.procs.stop(c.nodes[1]!.proc!, 'SIGKILL');
    await waitFor('n2 dead', async () => (await stateOf('n2')) === 'dead', 15_000, 50);
    console.log(`SIGKILL → tracker says dead: ${Date.now() - at} ms (session timeout ${SESSION_TIMEOUT_MS} ms)`);
    const h = await c.health(c.trackers[0]!);
    assert.deepEqual(h?.ha?.nodesOnline, []);
  });
});
