// `ktv up --ha` (issue 6): a local ZooKeeper (Debian's, as a child) and two trackers; every other
// role is given both trackers. Exactly one tracker leads; SIGKILL it and the other leads while
// `ktv up` restarts the killed one as a standby; Ctrl-C stops every child, ZooKeeper included.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { PlacementResponse } from '../common/contracts.js';
import { TrackerClient } from '../common/tracker-client.js';
import { freePort, KTV_BIN, pidAlive, Procs, tempDir, waitFor } from './helpers/procs.js';

interface Health {
  leader: boolean;
  epoch: number;
}

async function health(url: string): Promise<Health | undefined> {
  try {
    const res = await fetch(new URL('/health', url), { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as Health) : undefined;
  } catch {
    return undefined;
  }
}

async function consecutiveFreePorts(count: number): Promise<number> {
  const { createServer } = await import('node:net');
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let tries = 0; tries < 50; tries++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    if ((await Promise.all(Array.from({ length: count }, (_, i) => free(base + i)))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports`);
}

describe('ktv tracker --zk', () => {
  test('a malformed connect string is a usage error (exit 2, one line)', async () => {
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [KTV_BIN, 'tracker', '--data', tempDir('zk-usage'), '--zk', 'not a host'], { env: { ...process.env, KTV_CLUSTER_SECRET: 'x'.repeat(16), KTV_ADMIN_TOKEN: 'y'.repeat(16) }, timeout: 30_000 }, (error, _stdout, err) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr: err }),
      );
    });
    assert.equal(code, 2);
    assert.match(stderr.trim(), /--zk not a host: expected host:port/);
    assert.equal(stderr.trim().split('\n').length, 1);
  });
});

describe('ktv up --ha', () => {
  const procs = new Procs(tempDir('up-ha-logs'), {});
  const grandchildren: number[] = [];
  after(async () => {
    procs.killPids(grandchildren);
    await procs.killAll();
  });

  test('a local ZooKeeper and two trackers; one leads, a SIGKILLed leader fails over; Ctrl-C stops everything', { timeout: 120_000 }, async () => {
    const data = tempDir('up-ha-data');
    const trackerPort = await consecutiveFreePorts(2);
    const nodeBase = await consecutiveFreePorts(3);
    const sets = [
      `ports.tracker=${trackerPort}`, `ports.storageNodeBase=${nodeBase}`, `ports.library=${await freePort()}`, `ports.streamer=${await freePort()}`,
      `ha.localZkPort=${await freePort()}`, 'ha.sessionTimeoutMs=4000', 'storageNode.heartbeatIntervalMs=200', 'library.demoSongs=0',
    ];
    const args = ['up', '--ha', '--data', data, ...sets.flatMap((s) => ['--set', s])];
    const out: string[] = [];
    const child = spawn(process.execPath, [KTV_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KTV_CLUSTER_SECRET: '', KTV_ADMIN_TOKEN: '' } });
    grandchildren.push(child.pid!);
    child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const readState = () => JSON.parse(readFileSync(join(data, 'ktv-up.json'), 'utf8')) as { trackerUrls: string[]; children: Array<{ name: string; pid: number }> };
    try {
      await waitFor('ktv up --ha to say it is up', () => out.join('').includes('KTV cluster up'), 90_000);
    } finally {
      try {
        grandchildren.push(...readState().children.map((c) => c.pid));
      } catch {
        /* not written yet */
      }
    }
    const state = readState();
    assert.deepEqual(state.children.map((c) => c.name).slice(0, 3), ['zookeeper', 'tracker', 'tracker2']);
    assert.equal(state.children.length, 8, 'zookeeper, 2 trackers, library, streamer, 3 storage nodes');
    const urls = state.trackerUrls;
    assert.equal(urls.length, 2);
    assert.match(out.join(''), /trackers\s+http/);

    const leaderIndex = await waitFor('exactly one leader', async () => {
      const hs = await Promise.all(urls.map(health));
      const leaders = hs.map((h, i) => (h?.leader ? i : -1)).filter((i) => i >= 0);
      return leaders.length === 1 ? leaders[0]! : undefined;
    });
    const secrets = JSON.parse(readFileSync(join(data, 'secrets.json'), 'utf8')) as { clusterSecret: string };
    const client = new TrackerClient(urls, secrets.clusterSecret, 3000);
    const before = await client.call<PlacementResponse>('/internal/v1/placement', { body: { size: 1000, excludeNodes: [] } });

    const killed = state.children.find((c) => c.name === (leaderIndex === 0 ? 'tracker' : 'tracker2'))!;
    const killedAt = Date.now();
    process.kill(killed.pid, 'SIGKILL');
    const other = urls[1 - leaderIndex]!;
    await waitFor('the other tracker leads', async () => (await health(other))?.leader === true, 20_000, 50);
    const after = await waitFor('a placement through the list', async () => client.call<PlacementResponse>('/internal/v1/placement', { body: { size: 1000, excludeNodes: [] } }), 10_000, 50);
    console.log(`ktv up --ha: leader SIGKILLed → the other serves placement after ${Date.now() - killedAt} ms; epoch ${before.epoch} → ${after.epoch}`);
    assert.ok(after.epoch > before.epoch);
    // ktv up restarts the killed tracker; it comes back as a standby.
    const restarted = await waitFor('the killed tracker back as a standby', async () => {
      const h = await health(urls[leaderIndex]!);
      return h && !h.leader ? h : undefined;
    }, 30_000);
    assert.equal(restarted.leader, false);
    const newState = readState();
    grandchildren.push(...newState.children.map((c) => c.pid));

    child.kill('SIGINT');
    assert.equal(await exited, 0);
    for (const c of newState.children) assert.equal(pidAlive(c.pid), false, `${c.name} (${c.pid}) stopped`);
  });
});
