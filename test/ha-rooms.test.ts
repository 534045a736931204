// Tracker failover as rooms and uploaders see it (issue 6): two trackers on a real ZooKeeper,
// three storage nodes and a streamer given both trackers. A paced room (loadtest/room.ts) plays a
// song through the streamer (1 MiB hot-range cache, so it keeps reading from storage and asking
// the tracker); the leading tracker is SIGKILLed mid-song. The room must not stall, and a
// `ktv ingest` started right after the kill, given both trackers, must store its song. Then
// ZooKeeper is stopped entirely while the room plays again: nobody leads, the room never stalls.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { playSong } from '../loadtest/room.js';
import { ADMIN, SECRET } from './helpers/cluster.js';
import { HA_FAST_CONFIG, HaCluster } from './helpers/ha-cluster.js';
import { freePort, KTV_BIN, tempDir, waitFor, type Proc } from './helpers/procs.js';
import { RawHttpPool } from '../common/raw-http.js';

const SESSION_TIMEOUT_MS = 4000;
const SONG_S = 24;

describe('tracker failover while a room plays and an upload runs (real ZooKeeper)', { timeout: 240_000 }, () => {
  const c = new HaCluster('ha-rooms', { ...HA_FAST_CONFIG, ha: { sessionTimeoutMs: SESSION_TIMEOUT_MS }, streamer: { cacheBytes: 1024 * 1024 }, library: { catalogWaitMs: 20_000 } });
  const work = tempDir('ha-rooms-src');
  const client = new RawHttpPool({ maxSocketsPerHost: 64, idleTimeoutMs: 4000 });
  let streamer: Proc | undefined;
  let base = '';
  let songId = '';
  const second = join(work, 'second.mp4');
  const children: number[] = [];

  before(async () => {
    await c.startWithLeader(2, 3);
    const config = defaultConfig();
    const file = join(work, 'song.mp4');
    await makeDemoSong(file, { title: '千千阙歌', durationS: SONG_S, vocalHz: 440, backingHz: 330, layout: 'two-streams', width: 640, height: 360, videoBitsPerS: 1_500_000 }, config.library.media);
    await makeDemoSong(second, { title: '红日', durationS: 8, vocalHz: 523, backingHz: 392, layout: 'two-streams', width: 320, height: 180 }, config.library.media);
    const tracker = new TrackerClient(c.trackers.map((t) => t.url), SECRET, 5000);
    songId = (await ingestSong({ file, title: '千千阙歌', artist: '陈慧娴', language: 'yue' }, { tracker, secret: SECRET, config, log: createLogger('ha-rooms', 'warn'), workDir: work })).id;
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    streamer = c.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', c.trackerList, '--config', c.configFile, '--zk', c.zk!.connectString]);
    await waitFor('streamer health', async () => (await fetch(`${base}/health`)).ok);
  });

  after(async () => {
    client.destroy();
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already exited */
      }
    }
    await c.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('SIGKILL of the leader mid-song: the room never stalls; ktv ingest given both trackers stores its song', async () => {
    assert.ok(streamer);
    const leader = (await c.soleLeader())!;
    assert.ok(leader, 'one leader');
    const room = playSong({ base, songId, client, maxBufferS: 6, requestTimeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 4000));
    const killedAt = Date.now();
    await c.procs.stop(leader.tracker.proc!, 'SIGKILL');
    // The upload tool, started right after the kill, with both trackers (the dead one first if it led).
    const ingest = runKtv(['ingest', second, '--tracker', c.trackerList, '--title', '红日', '--artist', '李克勤', '--language', 'yue']);
    const next = await waitFor('the standby leads', () => c.soleLeader(c.trackers.filter((t) => t !== leader.tracker)), 15_000, 50);
    const leadMs = Date.now() - killedAt;
    const result = await room;
    const upload = await ingest;
    console.log(`failover with a room playing: new leader ${next.tracker.id} (epoch ${leader.epoch} → ${next.epoch}) ${leadMs} ms after the kill; room stalls ${result.stalls.length}, errors ${result.errors.length}; ktv ingest exit ${upload.code} after ${upload.ms} ms`);
    assert.deepEqual(result.errors.filter((e) => e.startsWith('gave up')), [], 'the room never gave up');
    assert.equal(result.stalls.length, 0, `no stall: ${JSON.stringify(result.stalls)}`);
    assert.equal(result.stalledAtEnd, false);
    assert.ok(result.playedS >= SONG_S - 4.5, `played to the end (${result.playedS} s)`);
    assert.equal(upload.code, 0, `ktv ingest succeeded: ${upload.stderr}`);
    const stored = JSON.parse(upload.stdout.trim().split('\n').pop()!) as { id: string; existing: boolean };
    assert.equal(stored.existing, false);
    // The new song is playable through the same streamer, from the new leader's catalog.
    const master = await waitFor('the uploaded song served', async () => {
      const res = await fetch(`${base}/hls/${stored.id}/master.m3u8`);
      return res.status === 200 ? res.text() : undefined;
    }, 30_000, 250);
    assert.match(master, /#EXTM3U/);
  });

  it('ZooKeeper gone entirely while a room plays: no tracker leads, the room never stalls; back: one leader', async () => {
    const zk = c.zk!;
    const room = playSong({ base, songId, client, maxBufferS: 6, requestTimeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 3000));
    await zk.stopAll();
    await waitFor('no tracker leads', async () => (await Promise.all(c.trackers.map((t) => c.health(t)))).every((h) => !h || !h.leader), 10_000, 50);
    const result = await room;
    console.log(`no ZooKeeper while a room played: stalls ${result.stalls.length}, played ${result.playedS.toFixed(1)} s`);
    assert.deepEqual(result.errors.filter((e) => e.startsWith('gave up')), []);
    assert.equal(result.stalls.length, 0, `no stall: ${JSON.stringify(result.stalls)}`);
    assert.ok(result.playedS >= SONG_S - 4.5);
    for (const t of c.trackers) assert.notEqual((await c.health(t))?.leader, true, 'nobody mutates without a quorum');
    for (let n = 1; n <= zk.size; n++) zk.restart(n);
    await zk.waitServing();
    await waitFor('one leader again', () => c.soleLeader(), 60_000, 100);
  });

  function runKtv(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [KTV_BIN, ...args], { env: { ...process.env, KTV_CLUSTER_SECRET: SECRET, KTV_ADMIN_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
      if (child.pid) children.push(child.pid);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - t0 }));
    });
  }
});
