// 硬盘自动屏蔽 with rooms playing: faults under a running cluster (a real tracker, 3 storage
// nodes × 2 disks, a real streamer with a 1 MiB hot-range cache so segments keep coming from
// storage), each while a paced room (loadtest/room.ts: hls.js-like fetching on a real-time
// playback clock) plays a song through the streamer. In each: the room never stalls, the node
// keeps serving its other disks, the replica count is restored and no blob is lost.
//
// Faults: a disk directory deleted under a running node; a node SIGKILLed and back inside the
// repair grace (no copy storm: nothing copied) and outside it (repaired); a blob file replaced by
// garbage (the scrubber or the per-chunk check catches it; never served); a node drained with
// `ktv node drain` while the song plays from it (reported safe to remove).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClusterView, SongManifest } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { blobPath, META_FILE } from '../storage-node/store/layout.js';
import { playSong, type RoomResult } from '../loadtest/room.js';
import { ADMIN, SECRET, TestCluster, type NodeInfo } from './helpers/cluster.js';
import { freePort, tempDir, waitFor, type Proc } from './helpers/procs.js';
import { RawHttpPool } from '../common/raw-http.js';

const GRACE_MS = 8000;
const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0, diskCheckIntervalMs: 500, probeIntervalMs: 500, probeTimeoutMs: 1000, scrubBytesPerSec: 64 * 1024 * 1024, scrubPeriodMs: 2000 },
  tracker: { nodeDeadAfterMs: 1500, repairGraceMs: GRACE_MS, repairIntervalMs: 200, placementFreeFloorBytes: 0, repairNewBlobGraceMs: 1000 },
  library: { catalogWaitMs: 15_000 },
  streamer: { cacheBytes: 1024 * 1024 },
};
const SONG_S = 24;
/** The room keeps only this much ahead, so it reads from storage all through the fault. */
const ROOM_BUFFER_S = 8;

describe('disk and node faults while a room plays', () => {
  const cluster = new TestCluster('disk-faults', CONFIG);
  const work = tempDir('disk-faults-src');
  const client = new RawHttpPool({ maxSocketsPerHost: 64, idleTimeoutMs: 4000 });
  let streamer: Proc | undefined;
  let base = '';
  let songId = '';
  let blobs: string[] = [];

  before(async () => {
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    const config = defaultConfig();
    const file = join(work, 'song.mp4');
    await makeDemoSong(file, { title: '月亮代表我的心', durationS: SONG_S, vocalHz: 440, backingHz: 330, layout: 'two-streams', width: 640, height: 360, videoBitsPerS: 1_500_000 }, config.library.media);
    const ingested = await ingestSong({ file, title: '月亮代表我的心', artist: '邓丽君', language: 'zh' }, { tracker: new TrackerClient([cluster.trackerUrl], SECRET, 5000), secret: SECRET, config, log: createLogger('disk-faults', 'warn'), workDir: work });
    songId = ingested.id;
    const manifest = await rpc<SongManifest>(cluster.trackerUrl, `/api/v1/songs/${songId}`, { timeoutMs: 3000 });
    blobs = manifest.renditions.flatMap((r) => [r.blob, ...(r.playlistBlob ? [r.playlistBlob] : [])]);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    streamer = cluster.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', cluster.trackerUrl, '--config', cluster.configFile]);
    await waitFor('streamer health', async () => (await fetch(`${base}/health`)).ok);
    await healthy('after ingest');
  });

  after(async () => {
    client.destroy();
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** Every blob of the song on `replicas` live nodes, nothing lost or under-replicated. */
  async function healthy(what: string, timeoutMs = 30_000): Promise<ClusterView> {
    return waitFor(`replicas restored ${what}`, async () => {
      const v = await cluster.cluster();
      if (v.blobs.lost !== 0 || v.blobs.underReplicated !== 0) return undefined;
      for (const id of blobs) {
        const where = await cluster.locate(id);
        const live = new Set(where.replicas.filter((r) => r.nodeState === 'alive' && (r.diskState === 'healthy' || r.diskState === 'suspect' || r.diskState === 'readonly')).map((r) => r.nodeId));
        if (live.size < 2) return undefined;
      }
      return v;
    }, timeoutMs, 250);
  }

  /** The node and disk the song's video blob is read from first (the streamer's first choice). */
  async function videoHolder(): Promise<{ node: NodeInfo; diskId: string; blob: string }> {
    const manifest = await rpc<SongManifest>(cluster.trackerUrl, `/api/v1/songs/${songId}`, { timeoutMs: 3000 });
    const video = manifest.renditions.find((r) => r.role === 'video')!;
    const where = await cluster.locate(video.blob);
    const first = where.replicas.find((r) => r.nodeState === 'alive' && r.diskState !== 'masked')!;
    return { node: cluster.nodes.find((n) => n.id === first.nodeId)!, diskId: first.diskId, blob: video.blob };
  }

  /** Plays the song in a paced room; `fault` runs once the room has played `afterS` seconds. */
  async function playThrough(fault: () => Promise<void>, afterS = 3): Promise<RoomResult> {
    const room = playSong({ base, songId, client, maxBufferS: ROOM_BUFFER_S, requestTimeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, afterS * 1000));
    await fault();
    const r = await room;
    assert.deepEqual(r.errors.filter((e) => e.startsWith('gave up')), [], 'the room never gave up');
    assert.equal(r.stalls.length, 0, `no stall: ${JSON.stringify(r.stalls)}`);
    assert.equal(r.stalledAtEnd, false);
    assert.ok(r.playedS >= SONG_S - 4.5, `played to the end (${r.playedS} s)`);
    return r;
  }

  function diskDir(node: NodeInfo, diskId: string): string {
    // Disk ids are the node's choice; the disk directory holding the blob file names it.
    const found = node.disks.find((d) => existsSync(d) && readDiskId(d) === diskId);
    assert.ok(found, `disk ${diskId} of ${node.id} on the file system`);
    return found;
  }

  test('a disk directory deleted under a running node: masked within seconds, other disk serves, no stall, repaired', async () => {
    const { node, diskId } = await videoHolder();
    const dir = diskDir(node, diskId);
    let maskedAfterMs = NaN;
    const other = node.disks.find((d) => d !== dir)!;
    const result = await playThrough(async () => {
      const t0 = Date.now();
      rmSync(dir, { recursive: true, force: true });
      await waitFor('the disk masked', async () => {
        const v = await cluster.cluster();
        const d = v.nodes.find((n) => n.id === node.id)?.disks.find((x) => x.id === diskId);
        return d?.state === 'masked' ? d : undefined;
      }, 20_000, 100);
      maskedAfterMs = Date.now() - t0;
    });
    const v = await healthy('after the disk vanished');
    const n = v.nodes.find((x) => x.id === node.id)!;
    assert.equal(n.state, 'alive', 'the node is still up');
    assert.ok(n.disks.some((d) => d.id !== diskId && d.state !== 'masked'), 'its other disk is still in service');
    assert.ok(existsSync(other));
    // The node still serves what its other disk holds.
    const health = await fetch(new URL('/health', node.url));
    assert.equal(health.status, 200);
    process.stdout.write(`disk-faults: disk directory deleted → masked (seen by the tracker) in ${maskedAfterMs} ms; room stalls ${result.stalls.length}\n`);
  });

  test('a node SIGKILLed and back inside the grace: nothing copied, no stall', async () => {
    const { node } = await videoHolder();
    const before = (await cluster.cluster()).repair;
    await playThrough(async () => {
      assert.ok(node.proc);
      await cluster.procs.stop(node.proc, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 2500)); // dead to the tracker (1.5 s), well inside the 8 s grace
      await cluster.startNode(node);
    });
    await cluster.waitAlive(3);
    await healthy('after the quick restart');
    const afterwards = (await cluster.cluster()).repair;
    assert.equal(afterwards.done, before.done, 'no replica copied: the node came back inside the grace');
    assert.equal(afterwards.inFlight, 0);
  });

  test('a node SIGKILLed past the grace: its blobs re-copied while the room plays, no stall', async () => {
    const { node } = await videoHolder();
    const before = (await cluster.cluster()).repair;
    await playThrough(async () => {
      assert.ok(node.proc);
      await cluster.procs.stop(node.proc, 'SIGKILL');
    });
    await healthy('after the node died', GRACE_MS + 30_000);
    const afterwards = (await cluster.cluster()).repair;
    assert.ok(afterwards.done > before.done, 'replicas were copied');
    await cluster.startNode(node);
    await cluster.waitAlive(3);
  });

  test('a blob file replaced by garbage: never served, quarantined and repaired, no stall', async () => {
    const { node, diskId, blob } = await videoHolder();
    const dir = diskDir(node, diskId);
    const file = blobPath(dir, 'data', blob);
    assert.ok(existsSync(file), 'the blob file on disk');
    const size = statSync(file).size;
    await playThrough(async () => {
      writeFileSync(file, Buffer.alloc(size, 0x5a));
    }, 1);
    // The replica leaves the index (scrubbed or caught by a read), then is copied back.
    await waitFor('the garbage replica dropped', async () => {
      const where = await cluster.locate(blob);
      return where.replicas.some((r) => r.nodeId === node.id && r.diskId === diskId) ? undefined : where;
    }, 30_000, 250);
    await healthy('after the garbage');
    // Whatever sits at that path now is never the garbage: quarantined away, or a verified new copy.
    if (existsSync(file)) assert.notEqual(readFileSync(file)[0], 0x5a, 'the garbage is not kept as the blob');
  });

  test('ktv node drain while the song plays from it: safe to remove, every blob on the others, no stall', async () => {
    const { node } = await videoHolder();
    await playThrough(async () => {
      const code = await ktv(['node', 'drain', node.id, '--tracker', cluster.trackerUrl]);
      assert.equal(code, 0, 'ktv node drain exit code');
    });
    const v = await waitFor('the node reported safe to remove', async () => {
      const view = await cluster.cluster();
      const n = view.nodes.find((x) => x.id === node.id);
      return n?.drain?.safeToRemove ? view : undefined;
    }, 60_000, 250);
    const n = v.nodes.find((x) => x.id === node.id)!;
    // The disk deleted by the first test stays masked (a drain cannot read from it); the rest drain.
    assert.ok(n.disks.some((d) => d.state === 'draining') && n.disks.every((d) => d.state === 'draining' || d.state === 'masked'), `every disk of the node draining: ${JSON.stringify(n.disks.map((d) => d.state))}`);
    for (const id of blobs) {
      const where = await cluster.locate(id);
      const elsewhere = new Set(where.replicas.filter((r) => r.nodeId !== node.id && r.nodeState === 'alive' && r.diskState !== 'masked' && r.diskState !== 'draining').map((r) => r.nodeId));
      assert.ok(elsewhere.size >= 2, `${id} has 2 copies off the drained node`);
    }
    assert.equal(v.blobs.lost, 0);
  });

  /** Runs the ktv CLI as a separate process; resolves with its exit code. */
  function ktv(args: string[]): Promise<number> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [join(process.cwd(), 'bin', 'ktv.cjs'), ...args], { env: { ...process.env, KTV_ADMIN_TOKEN: ADMIN, KTV_CLUSTER_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.on('exit', (code) => {
        if (code !== 0) process.stdout.write(`ktv ${args.join(' ')} → ${code}: ${out}\n`);
        resolve(code ?? -1);
      });
    });
  }
});

function readDiskId(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, META_FILE), 'utf8')) as { diskId?: string }).diskId;
  } catch {
    return undefined;
  }
}
