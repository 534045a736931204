// `ktv loadtest` end to end: real tracker, storage nodes and streamer processes on loopback, songs
// made by ffmpeg and ingested through the library path; the load test runs as its own process
// (with its worker processes) and its report is checked against the streamer's own counters.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { loadConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import type { LoadReport } from '../loadtest/run.js';
import { SECRET, TestCluster } from './helpers/cluster.js';
import { metricSum } from './helpers/metrics.js';
import { freePort, KTV_BIN, pidAlive, tempDir, waitFor, type Proc } from './helpers/procs.js';

const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  tracker: { nodeDeadAfterMs: 1500, repairGraceMs: 120_000, repairIntervalMs: 500, placementFreeFloorBytes: 0 },
  library: { catalogWaitMs: 15_000 },
  rpcTimeoutMs: 3000,
};

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number;
}

/** Runs `ktv loadtest …` as its own process; killed (by pid) if it outlives the test's patience. */
function loadtest(args: string[], whileRunning?: (pid: number) => Promise<void>): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KTV_BIN, 'loadtest', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, pid: child.pid! });
    });
    whileRunning?.(child.pid!).catch((error: unknown) => {
      child.kill('SIGKILL');
      reject(error as Error);
    });
  });
}

function report(file: string): LoadReport {
  return JSON.parse(readFileSync(file, 'utf8')) as LoadReport;
}

/** The load test's worker processes are its children: none may be left once it exits. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('ktv loadtest against a real streamer', () => {
  const c = new TestCluster('loadtest-cli', CONFIG);
  const out = tempDir('loadtest-cli-out');
  let streamerUrl = '';
  let streamer: Proc | undefined;
  const songIds: string[] = [];

  const startStreamer = async (): Promise<{ url: string; proc: Proc }> => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = c.procs.start(`streamer-${port}`, ['streamer', '--port', String(port), '--tracker', c.trackerUrl, '--config', c.configFile]);
    await waitFor('streamer health', async () => (await fetch(`${url}/health`)).ok);
    return { url, proc };
  };

  before(async () => {
    await c.startTracker();
    for (const id of ['node1', 'node2']) await c.addNode(id, 1);
    await c.waitAlive(2);
    const config = loadConfig({ file: c.configFile });
    const ctx = { tracker: new TrackerClient([c.trackerUrl], SECRET, config.rpcTimeoutMs), secret: SECRET, config, log: createLogger('test-ingest', 'warn'), workDir: tempDir('loadtest-cli-work') };
    const work = tempDir('loadtest-cli-src');
    for (const [i, title] of ['Load A', 'Load B'].entries()) {
      const file = join(work, `song${i}.mp4`);
      await makeDemoSong(file, { title, durationS: 20, vocalHz: 440 + 50 * i, backingHz: 330, layout: 'two-streams', width: 640, height: 360, vocalTitle: '原唱', backingTitle: '伴唱', videoBitsPerS: 4e6 });
      songIds.push((await ingestSong({ file, title, artist: 'Bench', language: 'en' }, ctx)).id);
    }
    ({ url: streamerUrl, proc: streamer } = await startStreamer());
    await waitFor('both songs searchable', async () => {
      const r = (await (await fetch(`${streamerUrl}/api/v1/songs?q=Load&limit=10`)).json()) as { songs: unknown[] };
      return r.songs.length === 2;
    });
  });

  after(() => c.close());

  test('a fixed run: zero stalls, throughput matching the streamer\'s own byte counter, vocal toggles, no worker left behind', async () => {
    const json = join(out, 'fixed.json');
    const served0 = metricSum(await (await fetch(`${streamerUrl}/metrics`)).text(), 'ktv_streamer_served_bytes_total');
    const run = await loadtest(['--target', streamerUrl, '--streams', '6', '--duration', '8', '--ramp', '2', '--workers', '2', '--bitrate', '4M', '--buffer', '4', '--toggle', '1', '--json', json]);
    const served1 = metricSum(await (await fetch(`${streamerUrl}/metrics`)).text(), 'ktv_streamer_served_bytes_total');
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const r = report(json);
    assert.equal(r.mode, 'fixed');
    assert.equal(r.songs, 2);
    assert.equal(r.workers, 2);
    assert.equal(r.levels.length, 1);
    const l = r.levels[0]!;
    assert.equal(l.streams, 6);
    assert.equal(l.clean, true);
    assert.equal(l.stalls, 0);
    assert.equal(l.errors, 0);
    assert.ok(l.windowS >= 10, `window covers ramp + duration (${l.windowS} s)`);
    // What the rooms counted is what the streamer says it sent (less what was in flight at the stop).
    const clientBytes = l.bytesPerS * l.windowS;
    const serverBytes = served1 - served0;
    assert.ok(clientBytes <= serverBytes * 1.01 && clientBytes >= serverBytes * 0.8, `rooms counted ${clientBytes} bytes, the streamer served ${serverBytes}`);
    // 4 s segments fetched with a 4 s buffer: every room keeps asking, and toggles happen.
    assert.ok(l.segmentDownloadMs.count >= 6, `segments timed: ${l.segmentDownloadMs.count}`);
    assert.ok(l.startupMs.count >= 6, `startups timed: ${l.startupMs.count}`);
    assert.ok(r.toggles >= 1, `vocal toggles: ${r.toggles}`);
    assert.ok(l.generatorCpuPercent > 0);
    assert.equal(r.libraryBitsPerS !== null && r.libraryBitsPerS > 1e6, true);
    assert.match(run.stdout, /6 streams held with zero stalls/);
    assert.match(run.stdout, /streams\s+result\s+Gbit\/s/);
    assert.match(run.stderr, /\[\s+\d+ s\] 6 streams: /, 'live progress lines');
    assert.deepEqual(childrenOf(run.pid), []);
  });

  test('--find-max steps up and reports the largest level held', async () => {
    const json = join(out, 'max.json');
    const run = await loadtest(['--target', streamerUrl, '--find-max', '--start', '2', '--step', '2', '--max', '4', '--duration', '3', '--settle', '1', '--workers', '1', '--bitrate', '4M', '--json', json, '--pids', String(streamer!.pid)]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const r = report(json);
    assert.equal(r.mode, 'find-max');
    assert.deepEqual(r.levels.map((l) => l.streams), [2, 4]);
    assert.ok(r.levels.every((l) => l.clean && l.stalls === 0));
    assert.equal(r.maxStallFreeStreams, 4);
    assert.ok(r.levels.every((l) => typeof l.serverCpuPercent === 'number'), 'server CPU measured from --pids');
    assert.match(run.stdout, /max stall-free streams: 4/);
  });

  test('a streamer killed mid-run: the rooms stall, the run says so and exits 1', async () => {
    const second = await startStreamer();
    const json = join(out, 'killed.json');
    const run = await loadtest(['--target', second.url, '--streams', '4', '--duration', '14', '--ramp', '1', '--workers', '1', '--bitrate', '4M', '--buffer', '4', '--json', json], async () => {
      await new Promise((r) => setTimeout(r, 4000));
      await c.procs.stop(second.proc, 'SIGKILL');
    });
    assert.equal(pidAlive(second.proc.pid), false);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const l = report(json).levels[0]!;
    assert.equal(l.clean, false);
    assert.ok(l.stalls >= 1, `stalls: ${l.stalls}`);
    assert.ok(l.errors >= 1, `failed requests: ${l.errors}`);
    assert.ok(l.stallS > 0);
    assert.match(run.stdout, /4 streams: \d+ stalls/);
    assert.match(run.stdout, /first errors:/);
  });

  test('bad flags exit 2 with one line; an unreachable target exits 3', async () => {
    const noTarget = await loadtest(['--streams', '2']);
    assert.equal(noTarget.code, 2);
    assert.match(noTarget.stderr, /--target URL is required/);
    const both = await loadtest(['--target', streamerUrl, '--streams', '2', '--find-max']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --streams N or --find-max/);
    const badRate = await loadtest(['--target', streamerUrl, '--streams', '2', '--bitrate', 'fast']);
    assert.equal(badRate.code, 2);
    assert.match(badRate.stderr, /--bitrate fast/);
    const badStreams = await loadtest(['--target', streamerUrl, '--streams', '-3']);
    assert.equal(badStreams.code, 2);
    const port = await freePort();
    const gone = await loadtest(['--target', `http://127.0.0.1:${port}`, '--streams', '2', '--duration', '1']);
    assert.equal(gone.code, 3, gone.stderr);
    assert.match(gone.stderr, /cannot use http:\/\/127\.0\.0\.1:\d+/);
    const none = await loadtest(['--target', streamerUrl, '--streams', '2', '--duration', '1', '--q', 'no such song anywhere']);
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /lists no songs/);
  });
});
