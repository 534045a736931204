// The `ktv` command itself: bad config stops a role with one clear line, `ktv status`, and
// `ktv up` (start, Ctrl-C stops every child by pid, restart keeps all data).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { ClusterView, LocateResponse } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { ADMIN, SECRET, TestCluster } from './helpers/cluster.js';
import { asBody, freePort, KTV_BIN, pidAlive, Procs, tempDir, waitFor } from './helpers/procs.js';

const env = { ...process.env, KTV_CLUSTER_SECRET: SECRET, KTV_ADMIN_TOKEN: ADMIN };

function ktv(args: string[], extraEnv: Record<string, string | undefined> = {}) {
  const r = spawnSync(process.execPath, [KTV_BIN, ...args], { env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ktv command: configuration and flags', () => {
  test('a bad config file stops the role with one line naming the key', () => {
    const dir = tempDir('cfg');
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ tracker: { replicas: 0 } }));
    const r = ktv(['tracker', '--port', '0', '--data', dir, '--config', file]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /tracker\.replicas/);
  });

  test('an unknown config key, invalid JSON and a missing file are each one clear line', () => {
    const dir = tempDir('cfg');
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ tracker: { replica: 3 } }));
    const a = ktv(['tracker', '--port', '0', '--data', dir, '--config', unknown]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /replica/);
    const notJson = join(dir, 'x.json');
    writeFileSync(notJson, '{ nope');
    const b = ktv(['tracker', '--port', '0', '--data', dir, '--config', notJson]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /not valid JSON/);
    const c = ktv(['tracker', '--port', '0', '--data', dir, '--config', join(dir, 'missing.json')]);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /cannot read/);
    for (const r of [a, b, c]) assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  test('--set overrides are validated too; missing secrets and flags are reported', () => {
    const dir = tempDir('cfg');
    const a = ktv(['tracker', '--port', '0', '--data', dir, '--set', 'tracker.nodeDeadAfterMs=-5']);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /tracker\.nodeDeadAfterMs/);
    const b = ktv(['tracker', '--port', '0', '--data', dir], { KTV_CLUSTER_SECRET: '' });
    assert.equal(b.code, 2);
    assert.match(b.stderr, /KTV_CLUSTER_SECRET/);
    const c = ktv(['storage-node', '--port', '0', '--tracker', 'http://127.0.0.1:1']);
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--disk/);
    const d = ktv(['bogus']);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /unknown command/);
  });
});

describe('ktv status', () => {
  const c = new TestCluster('status');
  after(() => c.close());

  test('prints nodes, disks, states, free space and blob counts', async () => {
    await c.startTracker();
    await c.addNode('alpha', 2);
    await c.addNode('beta', 1);
    await c.waitAlive(2);
    await c.writeBlob(randomBytes(10_000));
    await waitFor('the blob to be indexed', async () => (await c.cluster()).blobs.total === 1);
    const r = ktv(['status', '--tracker', c.trackerUrl]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /leader/);
    assert.match(r.stdout, /alpha/);
    assert.match(r.stdout, /beta/);
    assert.match(r.stdout, /healthy/);
    assert.match(r.stdout, /blobs 1 /);
    assert.match(r.stdout, /under-replicated 0/);
    const j = ktv(['status', '--tracker', c.trackerUrl, '--json']);
    const view = JSON.parse(j.stdout) as ClusterView;
    assert.equal(view.nodes.length, 2);
    const down = ktv(['status', '--tracker', 'http://127.0.0.1:1']);
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /no tracker answered/);
  });
});

describe('ktv up', () => {
  const procs = new Procs(tempDir('up-logs'), {});
  const grandchildren: number[] = [];
  after(async () => {
    procs.killPids(grandchildren);
    await procs.killAll();
  });

  test('starts tracker + 3 nodes × 2 disks + library + streamer, stops every child on Ctrl-C, and keeps data across a restart', async () => {
    const data = tempDir('up-data');
    const trackerPort = await freePort();
    let base = 0;
    for (let tries = 0; tries < 20 && !base; tries++) {
      const candidate = 20000 + Math.floor(Math.random() * 30000);
      const ok = await Promise.all([0, 1, 2].map((i) => portFree(candidate + i)));
      if (ok.every(Boolean)) base = candidate;
    }
    assert.ok(base, 'found 3 free consecutive ports');
    const streamerPort = await freePort();
    const args = ['up', '--data', data, '--set', `ports.tracker=${trackerPort}`, '--set', `ports.storageNodeBase=${base}`, '--set', 'storageNode.heartbeatIntervalMs=200', '--set', `ports.library=${await freePort()}`, '--set', `ports.streamer=${streamerPort}`, '--set', 'library.demoSongs=0'];
    const trackerUrl = `http://127.0.0.1:${trackerPort}/`;

    const startUp = async () => {
      const out: string[] = [];
      const child = spawn(process.execPath, [KTV_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KTV_CLUSTER_SECRET: '', KTV_ADMIN_TOKEN: '' } });
      child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await waitFor('ktv up to say it is up', () => out.join('').includes('KTV cluster up'), 60_000);
      const state = JSON.parse(readFileSync(join(data, 'ktv-up.json'), 'utf8')) as { children: Array<{ name: string; pid: number }> };
      const pids = state.children.map((c) => c.pid);
      grandchildren.push(child.pid!, ...pids);
      return { child, out, exited, pids };
    };

    const first = await startUp();
    assert.match(first.out.join(''), new RegExp(`tracker\\s+${trackerUrl.replace(/[/.]/g, '\\$&')}`));
    const view = await rpc<ClusterView>(trackerUrl, '/api/v1/cluster', { timeoutMs: 3000 });
    assert.equal(view.nodes.length, 3);
    assert.deepEqual(view.nodes.map((n) => n.disks.length), [2, 2, 2]);
    assert.equal(first.pids.length, 6, 'tracker, library, streamer and 3 storage nodes');
    const playerUrl = `http://127.0.0.1:${streamerPort}/`;
    const firstLine = first.out.join('').split('\n').find((l) => l.startsWith('KTV cluster up')) ?? '';
    assert.ok(firstLine.includes(playerUrl), `the first summary line names the player URL: ${firstLine}`);
    assert.match(first.out.join(''), new RegExp(`player\\s+${playerUrl.replace(/[/.]/g, '\\$&')}`));
    assert.equal((await fetch(new URL('/health', playerUrl))).status, 200);

    // Write one blob with the secret ktv up generated.
    const secrets = JSON.parse(readFileSync(join(data, 'secrets.json'), 'utf8')) as { clusterSecret: string };
    const blob = randomBytes(50_000);
    const id = await writeWithSecret(trackerUrl, secrets.clusterSecret, blob);

    first.child.kill('SIGINT');
    assert.equal(await first.exited, 0);
    for (const pid of first.pids) assert.equal(pidAlive(pid), false, `child ${pid} stopped`);

    const second = await startUp();
    const loc = await waitFor('the blob to be located after restart', async () => {
      const l = await rpc<LocateResponse>(trackerUrl, `/internal/v1/blobs/${id}`, { timeoutMs: 3000, secret: secrets.clusterSecret });
      return l.replicas.length === 2 ? l : undefined;
    });
    assert.equal(loc.size, blob.length);
    second.child.kill('SIGINT');
    assert.equal(await second.exited, 0);
    for (const pid of second.pids) assert.equal(pidAlive(pid), false);
  });
});

function portFree(port: number): Promise<boolean> {
  return import('node:net').then(
    ({ createServer }) =>
      new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
      }),
  );
}

async function writeWithSecret(trackerUrl: string, secret: string, data: Buffer): Promise<string> {
  const { createHash } = await import('node:crypto');
  const { signedBlobHeaders } = await import('../common/http.js');
  const id = createHash('sha256').update(data).digest('hex');
  const placement = await rpc<{ targets: Array<{ url: string; diskId: string }> }>(trackerUrl, '/internal/v1/placement', {
    body: { size: data.length, excludeNodes: [] },
    secret,
    timeoutMs: 3000,
  });
  for (const t of placement.targets) {
    const url = new URL(`/internal/v1/blobs/${id}?disk=${t.diskId}`, t.url);
    const res = await fetch(url, { method: 'PUT', headers: signedBlobHeaders(secret, 'PUT', url), body: asBody(data) });
    assert.equal(res.status, 201, await res.text());
  }
  return id;
}
