// Disk health on real processes: a real tracker and storage nodes (`ktv storage-node`) on
// loopback, real temp-dir disks. A disk directory deleted and put back, a blob rotting in place
// (the scrubber), a disk filled to its floor, the operator's drain/mask/unmask over the signed
// endpoint (kept across a restart), and a new empty disk joining. Figures are printed, not
// asserted.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsConstants, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, statfsSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DiskStatus, LocateResponse } from '../common/contracts.js';
import { rpc, signedBlobHeaders } from '../common/http.js';
import { signRequest } from '../common/signing.js';
import { FAST_CONFIG, readRange, SECRET, TestCluster, type NodeInfo } from './helpers/cluster.js';
import { asBody, freePort, waitFor } from './helpers/procs.js';

const CONFIG = {
  storageNode: {
    ...FAST_CONFIG.storageNode,
    diskCheckIntervalMs: 200,
    probeIntervalMs: 200,
    probeTimeoutMs: 1500,
    faultWindowMs: 10_000,
    faultsToMask: 3,
    recoveryProbes: 3,
    verifyChunkBytes: 64 * 1024,
    readBufferBytes: 64 * 1024,
    // Every blob re-hashed each second at 4 MB/s: the garbage below is found within ~1-2 s.
    scrubPeriodMs: 1000,
    scrubBytesPerSec: 4 * 1024 * 1024,
  },
  // One copy per blob: nothing gets repaired onto other disks behind the test's back.
  tracker: { ...FAST_CONFIG.tracker, replicas: 1 },
  rpcTimeoutMs: 3000,
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const blobFile = (disk: string, id: string): string => join(disk, 'blobs', id.slice(0, 2), id.slice(2, 4), id);

interface Health {
  nodeId: string;
  blobs: number;
  disks: DiskStatus[];
}

async function health(node: NodeInfo): Promise<Health> {
  return (await fetch(new URL('/health', node.url))).json() as Promise<Health>;
}

async function put(node: NodeInfo, data: Buffer, diskId?: string): Promise<{ status: number; body: { disk?: string; error?: string } }> {
  const url = new URL(`/internal/v1/blobs/${sha(data)}${diskId ? `?disk=${diskId}` : ''}`, node.url);
  const res = await fetch(url, { method: 'PUT', headers: { ...signedBlobHeaders(SECRET, 'PUT', url), 'content-length': String(data.length) }, body: asBody(data) });
  return { status: res.status, body: (await res.json()) as { disk?: string; error?: string } };
}

async function operator(node: NodeInfo, disk: string, body: unknown, signed = true): Promise<{ status: number; body: DiskStatus & { error?: string } }> {
  const path = `/internal/v1/disks/${disk}/operator`;
  const text = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(signed ? signRequest(SECRET, 'POST', path, text) : {}) };
  const res = await fetch(new URL(path, node.url), { method: 'POST', headers, body: text });
  return { status: res.status, body: (await res.json()) as DiskStatus & { error?: string } };
}

/** The replicas the tracker knows for a blob (none when it answers 404). */
async function trackerReplicas(cluster: TestCluster, id: string): Promise<LocateResponse['replicas']> {
  try {
    return (await cluster.locate(id)).replicas;
  } catch {
    return [];
  }
}

async function waitDisk(node: NodeInfo, index: number, what: string, ok: (d: DiskStatus) => boolean, timeoutMs = 20_000): Promise<DiskStatus> {
  return waitFor(what, async () => {
    const d = (await health(node)).disks[index]!;
    return ok(d) ? d : undefined;
  }, timeoutMs, 25);
}

/** A node with its own config overrides (TestCluster has one config file for all). */
async function startCustomNode(cluster: TestCluster, id: string, disks: string[], storageNode: Record<string, unknown>): Promise<NodeInfo> {
  const port = await freePort();
  const node: NodeInfo = { id, port, url: `http://127.0.0.1:${port}/`, disks };
  const configFile = join(cluster.root, `config-${id}.json`);
  writeFileSync(configFile, JSON.stringify({ ...CONFIG, storageNode: { ...CONFIG.storageNode, ...storageNode } }));
  const args = ['storage-node', '--id', id, '--port', String(port), '--tracker', cluster.trackerUrl, '--config', configFile, ...disks.flatMap((d) => ['--disk', d])];
  node.proc = cluster.procs.start(id, args);
  await waitFor(`${id} health`, async () => (await fetch(new URL('/health', node.url))).ok);
  return node;
}

describe('storage node disk health (real processes)', () => {
  const cluster = new TestCluster('sn-health', CONFIG);
  const shmDirs: string[] = [];

  before(async () => {
    await cluster.startTracker();
  });

  after(async () => {
    await cluster.close();
    for (const d of shmDirs) rmSync(d, { recursive: true, force: true });
  });

  test('a deleted disk directory is masked within a probe or two, the other disk keeps serving; put back, it is verified and trusted again', async () => {
    const node = await cluster.addNode('n-vanish', 2);
    const [d1, d2] = (await health(node)).disks;
    const onD1 = [randomBytes(200_000), randomBytes(70_000), randomBytes(5000)];
    const onD2 = [randomBytes(100_000), randomBytes(3000)];
    for (const b of onD1) assert.equal((await put(node, b, d1!.id)).body.disk, d1!.id);
    for (const b of onD2) assert.equal((await put(node, b, d2!.id)).body.disk, d2!.id);
    await waitFor('the tracker to list every blob', async () => {
      for (const b of [...onD1, ...onD2]) if ((await trackerReplicas(cluster, sha(b))).length === 0) return false;
      return true;
    });

    const backup = `${node.disks[0]}.backup`;
    cpSync(node.disks[0]!, backup, { recursive: true });
    const goneAtMs = Date.now();
    rmSync(node.disks[0]!, { recursive: true, force: true });
    const masked = await waitDisk(node, 0, 'disk 1 masked', (d) => d.state === 'masked');
    const maskMs = Date.now() - goneAtMs;
    assert.match(masked.reason, /gone/);
    assert.equal(masked.blobs, 0, 'its blobs left the inventory');
    for (const b of onD2) assert.equal((await readRange(node.url, sha(b))).status, 200, 'the other disk keeps serving');
    for (const b of onD1) assert.equal((await readRange(node.url, sha(b))).status, 404);
    const other = await put(node, randomBytes(1000), d1!.id);
    assert.equal(other.status, 201);
    assert.equal(other.body.disk, d2!.id, 'a write aimed at the masked disk lands on the other one');
    await waitFor('the tracker to drop the masked disk\'s blobs', async () => (await trackerReplicas(cluster, sha(onD1[0]!))).every((r) => r.diskId !== d1!.id || r.diskState === 'masked'));
    const trackerMs = Date.now() - goneAtMs;

    // Put it back, with one blob damaged meanwhile: verification must catch that one.
    const bad = sha(onD1[1]!);
    const badFile = blobFile(backup, bad);
    const fd = openSync(badFile, 'r+');
    writeSync(fd, Buffer.from('rot'), 0, 3, 1000);
    closeSync(fd);
    const backAtMs = Date.now();
    renameSync(backup, node.disks[0]!);
    const trusted = await waitDisk(node, 0, 'disk 1 healthy again', (d) => d.state === 'healthy');
    const recoverMs = Date.now() - backAtMs;
    assert.equal(trusted.blobs, 2, 'the two good blobs are back, the damaged one is not');
    assert.equal(trusted.verifying, undefined);
    for (const b of [onD1[0]!, onD1[2]!]) {
      const r = await readRange(node.url, sha(b));
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(b));
    }
    assert.equal((await readRange(node.url, bad)).status, 404, 'the damaged replica is never served');
    assert.ok(readdirSync(join(node.disks[0]!, 'quarantine')).some((f) => f.startsWith(bad)), 'it is in quarantine/');
    await waitFor('the tracker to see the returned blobs on disk 1', async () => {
      for (const b of [onD1[0]!, onD1[2]!]) if (!(await trackerReplicas(cluster, sha(b))).some((r) => r.diskId === d1!.id && r.diskState === 'healthy')) return false;
      return true;
    });
    assert.equal(node.proc!.child.exitCode, null, 'nothing crashed');
    const metrics = await (await fetch(new URL('/metrics', node.url))).text();
    assert.match(metrics, /ktv_storage_disk_probes_total\{disk="[^"]+",result="ok"\} [1-9]/);
    assert.match(metrics, /ktv_storage_disk_recoveries_total\{disk="[^"]+",result="trusted"\} 1/);
    console.log(`# disk gone → masked: ${maskMs} ms (probe/check interval 200 ms); → tracker view updated: ${trackerMs} ms; put back → verified and healthy: ${recoverMs} ms (3 good probes + ${onD1.length} blobs re-hashed)`);
  });

  test('operations that hang (a blob file that never answers) are counted: masked after faultsToMask timeouts, then trusted again', async () => {
    // A FIFO where a blob file should be: open() blocks in the kernel like a hung disk would,
    // and only for this file, so the disk's probes keep passing (it comes back by itself).
    const disk = join(cluster.root, 'n-hang', 'disk1');
    const node = await startCustomNode(cluster, 'n-hang', [disk], { diskOpTimeoutMs: 400 });
    const hung = randomBytes(5000);
    const fine = randomBytes(6000);
    for (const b of [hung, fine]) assert.equal((await put(node, b)).status, 201);
    const fifo = blobFile(disk, sha(hung));
    rmSync(fifo);
    execFileSync('mkfifo', [fifo]);
    try {
      const firstAtMs = Date.now();
      const statuses: number[] = [];
      let suspectSeen = false;
      const masked = await waitFor('the disk masked by timeouts', async () => {
        const h = (await health(node)).disks[0]!;
        if (h.state === 'suspect') suspectSeen = true;
        if (h.state === 'masked') return h;
        statuses.push((await readRange(node.url, sha(hung))).status);
        return undefined;
      }, 20_000, 10);
      const maskMs = Date.now() - firstAtMs;
      assert.ok(statuses.every((s) => s === 500 || s === 404), `a hung read is an error, never a hang: ${statuses.join(',')}`);
      assert.ok(suspectSeen || statuses.length <= 3, 'suspect on the way');
      assert.match(masked.reason, /faults in 10 s .*(no answer from the disk within 400 ms|earlier operations are stuck)/);
      assert.ok(statuses.length >= 3, 'one timeout did not mask it');
      // The hang ends (the stuck opens return); the disk answers probes, is verified (the FIFO
      // is not a blob file, so it is skipped) and trusted again.
      closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
      const back = await waitDisk(node, 0, 'the disk trusted again', (d) => d.state === 'healthy');
      assert.equal(back.blobs, 1);
      assert.equal((await readRange(node.url, sha(fine))).status, 200);
      console.log(`# hung operations (deadline 400 ms, one counted fault per second) → masked: ${maskMs} ms after the first hung read (${statuses.length} reads)`);
    } finally {
      // Release the opens still blocked in the node's thread pool.
      try {
        closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
      } catch {
        /* no reader left */
      }
    }
  });

  test('a blob rotting in place (same size, same mtime) is found by the scrubber, quarantined and never served', async () => {
    const node = await cluster.addNode('n-scrub', 1);
    const good = randomBytes(300_000);
    const victim = randomBytes(300_000);
    for (const b of [good, victim]) assert.equal((await put(node, b)).status, 201);
    // Read once, so the chunk-check cache holds it as verified.
    assert.equal((await readRange(node.url, sha(victim))).status, 200);
    const file = blobFile(node.disks[0]!, sha(victim));
    const before = statSync(file);
    const fd = openSync(file, 'r+');
    writeSync(fd, randomBytes(victim.length), 0, victim.length, 0);
    closeSync(fd);
    utimesSync(file, before.atime, before.mtime);
    const rotAtMs = Date.now();
    const d = await waitDisk(node, 0, 'the scrubber to find it', (s) => (s.scrub?.corruptFound ?? 0) >= 1);
    const foundMs = Date.now() - rotAtMs;
    assert.equal(d.blobs, 1);
    const r = await readRange(node.url, sha(victim));
    assert.equal(r.status, 404, 'never the garbage');
    assert.equal((await readRange(node.url, sha(good))).status, 200);
    assert.ok(!existsSync(file));
    assert.ok(readdirSync(join(node.disks[0]!, 'quarantine')).some((f) => f.startsWith(sha(victim))));
    await waitFor('the tracker to drop the replica', async () => (await trackerReplicas(cluster, sha(victim))).length === 0);
    const h = await waitDisk(node, 0, 'a finished scrub pass', (s) => s.scrub!.lastPassAt !== '' && s.scrub!.bytesVerified > 0);
    assert.equal(h.scrub!.rateBytesPerSec, 4 * 1024 * 1024);
    const metrics = await (await fetch(new URL('/metrics', node.url))).text();
    assert.match(metrics, /ktv_storage_scrub_corrupt_total\{disk="[^"]+"\} 1/);
    assert.match(metrics, /ktv_storage_scrub_bytes_total\{disk="[^"]+"\} [1-9]/);
    console.log(`# in-place rot → found by the scrubber and quarantined: ${foundMs} ms (scrub period 1 s, 4 MB/s)`);
  });

  test('a disk filled to its free-space floor turns readonly: still readable, writes go to the other disk or are refused cleanly', async (t) => {
    // Two file systems: /dev/shm and the temp dir. Disk 1 goes on the one with less free space and
    // the floor sits 64 MiB under it, so a 200 MiB file fills disk 1 past the floor while disk 2,
    // on the roomier one, stays writable (whichever of the two that is on this machine).
    if (!existsSync('/dev/shm')) return t.skip('no /dev/shm here');
    const shm = mkdtempSync('/dev/shm/ktv-health-');
    shmDirs.push(shm);
    const freeOf = (dir: string): number => {
      const info = statfsSync(dir);
      return info.bavail * info.bsize;
    };
    const tmpDisk = join(cluster.root, 'n-full');
    mkdirSync(tmpDisk, { recursive: true });
    const shmFree = freeOf(shm);
    const tmpFree = freeOf(tmpDisk);
    const [fullDir, roomyDir] = shmFree <= tmpFree ? [join(shm, 'disk1'), join(tmpDisk, 'disk2')] : [join(tmpDisk, 'disk1'), join(shm, 'disk2')];
    const floorBytes = Math.min(shmFree, tmpFree) - 64 * 1024 * 1024;
    assert.ok(Math.abs(shmFree - tmpFree) > 512 * 1024 * 1024, `the two file systems need different free space (${shmFree} vs ${tmpFree} bytes)`);
    const node = await startCustomNode(cluster, 'n-full', [fullDir, roomyDir], { diskFreeFloorBytes: floorBytes });
    const [d1, d2] = (await health(node)).disks;
    assert.equal(d2!.state, 'healthy', d2!.reason);
    assert.equal(d1!.state, 'healthy', d1!.reason);
    const kept = randomBytes(50_000);
    assert.equal((await put(node, kept, d1!.id)).body.disk, d1!.id);

    const filler = join(node.disks[0]!, 'filler.bin');
    writeFileSync(filler, Buffer.alloc(200 * 1024 * 1024));
    const ro = await waitDisk(node, 0, 'disk 1 readonly', (d) => d.state === 'readonly');
    assert.match(ro.reason, /under the floor/);
    assert.equal((await readRange(node.url, sha(kept))).status, 200, 'still readable');
    const next = await put(node, randomBytes(10_000), d1!.id);
    assert.equal(next.status, 201);
    assert.equal(next.body.disk, d2!.id, 'the write went to the other disk');

    // Only the full disk left: a clean 507.
    assert.equal((await operator(node, d2!.id, { action: 'drain', note: 'test' })).status, 200);
    const refused = await put(node, randomBytes(10_000));
    assert.equal(refused.status, 507);
    assert.match(refused.body.error ?? '', /no writable disk/);
    assert.equal((await operator(node, d2!.id, { action: 'unmask' })).status, 200);

    rmSync(filler);
    await waitDisk(node, 0, 'disk 1 healthy with room again', (d) => d.state === 'healthy');
    assert.equal((await put(node, randomBytes(1000), d1!.id)).body.disk, d1!.id);
  });

  test('operator drain, mask and unmask over the signed endpoint, kept across a restart', async () => {
    const node = await cluster.addNode('n-op', 2);
    const [d1, d2] = (await health(node)).disks;
    const blob = randomBytes(80_000);
    assert.equal((await put(node, blob, d1!.id)).body.disk, d1!.id);

    assert.equal((await operator(node, d1!.id, { action: 'drain', note: 'x' }, false)).status, 401, 'unsigned');
    assert.equal((await operator(node, 'no-such-disk', { action: 'drain' })).status, 404);
    assert.equal((await operator(node, d1!.id, { action: 'format' })).status, 400);
    assert.equal((await operator(node, d1!.id, { action: 'drain', extra: 1 })).status, 400);

    const drained = await operator(node, d1!.id, { action: 'drain', note: 'replacing, ticket 42' });
    assert.equal(drained.status, 200);
    assert.equal(drained.body.state, 'draining');
    assert.equal(drained.body.operator, 'drain');
    assert.equal(drained.body.reason, 'operator: replacing, ticket 42');
    assert.equal((await readRange(node.url, sha(blob))).status, 200, 'a draining disk still reads');
    assert.equal((await put(node, randomBytes(500), d1!.id)).body.disk, d2!.id, 'and takes no writes');

    // Kept across a restart.
    await cluster.procs.stop(node.proc!);
    await cluster.startNode(node);
    assert.equal((await health(node)).disks[0]!.state, 'draining');
    assert.equal((await readRange(node.url, sha(blob))).status, 200);

    const masked = await operator(node, d1!.id, { action: 'mask', note: 'clicking noise' });
    assert.equal(masked.body.state, 'masked');
    assert.equal(masked.body.reason, 'operator: clicking noise');
    assert.equal(masked.body.blobs, 0, 'its blobs left the inventory at once');
    assert.equal((await readRange(node.url, sha(blob))).status, 404, 'and are not read');
    await waitFor('the tracker to drop the replica', async () => (await trackerReplicas(cluster, sha(blob))).every((r) => r.diskState === 'masked'));

    await cluster.procs.stop(node.proc!);
    await cluster.startNode(node);
    const after = (await health(node)).disks[0]!;
    assert.equal(after.state, 'masked', 'still masked after a restart');
    assert.equal(after.operator, 'mask');
    assert.equal((await readRange(node.url, sha(blob))).status, 404);
    // Good probes do not lift an operator mask.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await health(node)).disks[0]!.state, 'masked');

    const unmaskAtMs = Date.now();
    const unmasked = await operator(node, d1!.id, { action: 'unmask', note: 'new cable' });
    assert.equal(unmasked.status, 200);
    assert.equal(unmasked.body.state, 'masked', 'not trusted before probes and verification');
    assert.match(unmasked.body.reason, /unmasked by the operator/);
    const back = await waitDisk(node, 0, 'disk 1 healthy after unmask', (d) => d.state === 'healthy');
    assert.equal(back.operator, 'none');
    assert.equal(back.blobs, 1);
    assert.equal((await readRange(node.url, sha(blob))).status, 200);
    await waitFor('the tracker to list it again', async () => (await trackerReplicas(cluster, sha(blob))).some((r) => r.diskId === d1!.id && r.diskState === 'healthy'));
    console.log(`# unmask → probes, verification, healthy: ${Date.now() - unmaskAtMs} ms`);

    await cluster.procs.stop(node.proc!);
    await cluster.startNode(node);
    assert.equal((await health(node)).disks[0]!.state, 'healthy', 'the unmask was kept too');
  });

  test('read failures reported by streamers: the tracker names the disk in the heartbeat answer, the node probes it and counts one fault (suspect, still serving)', async () => {
    const node = await cluster.addNode('n-suspect', 1);
    const data = randomBytes(3000);
    assert.equal((await put(node, data)).status, 201);
    const disk = (await health(node)).disks[0]!;
    await waitFor('the tracker to list the blob', async () => (await trackerReplicas(cluster, sha(data))).length > 0);
    // The streamer side, as a streamer sends it (signed); three failures cross the tracker's threshold.
    for (let i = 0; i < 3; i++) {
      await rpc(cluster.trackerUrl, '/internal/v1/read-failures', {
        body: { blobId: sha(data), nodeId: node.id, diskId: disk.id, reason: 'timeout', detail: `test ${i}` },
        secret: SECRET,
        timeoutMs: 3000,
      });
    }
    const suspect = await waitDisk(node, 0, 'the disk suspect', (d) => d.state === 'suspect');
    assert.match(suspect.reason, /streamers: 3 read failure/);
    assert.equal(suspect.probe!.recentFaults, 1, 'one fault per report, not one per failure');
    assert.equal((await readRange(node.url, sha(data))).status, 200, 'a suspect disk still serves');
    assert.equal((await put(node, randomBytes(100))).status, 201, 'and still takes writes');
    const metrics = await (await fetch(new URL('/metrics', node.url))).text();
    assert.match(metrics, /ktv_storage_disk_faults_total\{disk="[^"]+",kind="suspect-report"\} 1/);
  });

  test('a new empty disk given to a node at restart joins healthy and takes writes', async () => {
    const node = await cluster.addNode('n-grow', 1);
    const old = randomBytes(2000);
    assert.equal((await put(node, old)).status, 201);
    await cluster.procs.stop(node.proc!);
    node.disks.push(join(cluster.root, node.id, 'disk-new'));
    await cluster.startNode(node);
    const h = await health(node);
    assert.equal(h.disks.length, 2);
    const fresh = h.disks[1]!;
    assert.equal(fresh.state, 'healthy', fresh.reason);
    assert.equal(fresh.blobs, 0);
    const data = randomBytes(4000);
    const r = await put(node, data, fresh.id);
    assert.equal(r.status, 201);
    assert.equal(r.body.disk, fresh.id);
    assert.equal((await readRange(node.url, sha(old))).status, 200);
    await waitFor('the tracker to list the new disk and its blob', async () => {
      const view = await cluster.cluster();
      const n = view.nodes.find((x) => x.id === node.id);
      return n?.disks.some((d) => d.id === fresh.id && d.state === 'healthy') && (await trackerReplicas(cluster, sha(data))).some((x) => x.diskId === fresh.id);
    });
  });
});


