// `ktv ingest` end to end against a real tracker and 3 storage-node processes, with real ffmpeg on
// generated sources: each input kind a venue has, the roles checked by their tones in the stored
// renditions, loudness applied, playlists parsed, every blob replicated; every bad input refused
// with its one-line reason and nothing stored; a folder ingest with a CSV sidecar.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SongManifest, SongSummary } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { mediaConfig } from '../config/media.js';
import { makeDemoSong } from '../library/media/demo.js';
import { measureR128 } from '../library/media/loudness.js';
import { parseMediaPlaylist } from '../library/media/playlist.js';
import { dominantFrequencyHz } from '../library/media/tones.js';
import { ADMIN, readRange, SECRET, TestCluster } from './helpers/cluster.js';
import { KTV_BIN, tempDir, waitFor } from './helpers/procs.js';

const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  tracker: { nodeDeadAfterMs: 3000, repairGraceMs: 60_000, repairIntervalMs: 500, placementFreeFloorBytes: 0 },
  library: { catalogWaitMs: 15_000 },
};
const limits = mediaConfig();
const TONE_TOLERANCE_HZ = 15;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ingest(args: string[], cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [KTV_BIN, 'ingest', ...args], { cwd, env: { ...process.env, KTV_CLUSTER_SECRET: SECRET, KTV_ADMIN_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The last stderr line: the CLI's one-line reason (progress lines come before it). */
function reason(run: Run): string {
  return run.stderr.trim().split('\n').filter((l) => l.startsWith('ktv ingest:')).pop() ?? '';
}

describe('ktv ingest against a real cluster', () => {
  const c = new TestCluster('ingest', CONFIG);
  const work = tempDir('ingest-src');
  const fetched = tempDir('ingest-out');
  const meta = ['--title', 'Song', '--artist', 'Artist', '--language', 'zh'];

  before(async () => {
    await c.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await c.addNode(id, 2);
    await c.waitAlive(3);
  });
  after(() => c.close());

  async function manifestOf(id: string): Promise<SongManifest> {
    return rpc<SongManifest>(c.trackerUrl, `/api/v1/songs/${id}`, { timeoutMs: 3000 });
  }

  /** Downloads a blob from its first replica into a file (checking every replica has it). */
  async function fetchBlob(id: string, name: string): Promise<string> {
    const loc = await waitFor(`2 replicas of ${id}`, async () => {
      const l = await c.locate(id);
      return l.replicas.filter((r) => r.nodeState === 'alive').length >= 2 ? l : undefined;
    });
    const got = await readRange(loc.replicas[0]!.url, id);
    assert.equal(got.status, 200);
    const file = join(fetched, name);
    writeFileSync(file, got.body);
    return file;
  }

  /** Every check a stored song must pass; returns the manifest. */
  async function checkSong(id: string, vocalHz: number, backingHz: number): Promise<SongManifest> {
    const m = await manifestOf(id);
    assert.equal(m.renditions.length, 3);
    assert.deepEqual(m.renditions.map((r) => r.role).sort(), ['backing', 'video', 'vocal']);
    assert.ok(m.masterPlaylist?.includes('CODECS="avc1.'), 'master has CODECS');
    assert.match(m.masterPlaylist!, /BANDWIDTH=\d+/);
    assert.match(m.masterPlaylist!, /RESOLUTION=\d+x\d+/);
    assert.match(m.masterPlaylist!, /TYPE=AUDIO,GROUP-ID="[^"]+",NAME="原唱[^"]*"/);
    assert.match(m.masterPlaylist!, /NAME="伴唱[^"]*"/);
    assert.equal(m.loudness?.targetI, -16);
    assert.ok(Number.isFinite(m.loudness?.gainDb));
    const boundaries: number[][] = [];
    for (const r of m.renditions) {
      const media = await fetchBlob(r.blob, `${id}-${r.role}.mp4`);
      assert.equal(statSync(media).size, r.sizeBytes);
      const playlist = parseMediaPlaylist(readFileSync(await fetchBlob(r.playlistBlob!, `${id}-${r.role}.m3u8`), 'utf8'));
      const last = playlist.segments[playlist.segments.length - 1]!;
      assert.equal(last.offsetBytes + last.lengthBytes, r.sizeBytes, 'byte ranges cover the rendition file');
      let t = 0;
      boundaries.push(playlist.segments.map((s) => (t += s.durationS)));
      if (r.role !== 'video') {
        const hz = await dominantFrequencyHz(media, 'a:0', 1, 2, limits);
        const want = r.role === 'vocal' ? vocalHz : backingHz;
        assert.ok(Math.abs(hz - want) < TONE_TOLERANCE_HZ, `${r.role} rendition carries ${hz} Hz, expected ${want} Hz`);
      }
      if (r.role === 'vocal') {
        const r128 = await measureR128(media, { stream: 'a:0', channel: 'both', durationS: m.durationS, untrusted: false }, limits);
        assert.ok(Math.abs(r128.inputI - -16) < 1.5, `packaged vocal at ${r128.inputI} LUFS, target -16`);
      }
    }
    const [v, a, b] = boundaries;
    assert.equal(v!.length, a!.length);
    assert.equal(v!.length, b!.length);
    v!.forEach((t, i) => {
      assert.ok(Math.abs(t - a![i]!) < 0.1 && Math.abs(t - b![i]!) < 0.1, `segment ${i} boundaries agree`);
    });
    return m;
  }

  test('modern MP4, roles named by stream titles (伴唱 first): remuxed, tones in the right renditions, loudness applied', async () => {
    const src = join(work, 'titled.mp4');
    await makeDemoSong(src, { title: 'Titled', durationS: 10, vocalHz: 440, backingHz: 330, layout: 'two-streams', audioOrder: 'backing-first', vocalTitle: '原唱', backingTitle: '伴唱' });
    const run = await ingest([src, '--tracker', c.trackerUrl, '--title', '七里香', '--artist', '周杰伦', '--language', 'zh']);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim()) as { id: string; existing: boolean; videoMode: string };
    assert.equal(out.existing, false);
    assert.equal(out.videoMode, 'remux');
    const m = await checkSong(out.id, 440, 330);
    assert.equal(m.audio?.mapping, 'titles');
    assert.equal(m.initials, 'QLX');
    assert.equal(m.wordCount, 3);
    assert.match(m.sourceHash ?? '', /^[0-9a-f]{64}$/);
    const found = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?q=ZJL', { timeoutMs: 3000 });
    assert.ok(found.songs.some((s) => s.id === out.id), 'searchable by the artist initials');

    // The same source again: idempotent, says so, stores nothing new.
    const before = (await c.cluster()).blobs.total;
    const again = await ingest([src, '--tracker', c.trackerUrl, '--title', '七里香', '--artist', '周杰伦', '--language', 'zh']);
    assert.equal(again.code, 0, again.stderr);
    const second = JSON.parse(again.stdout.trim()) as { id: string; existing: boolean };
    assert.deepEqual([second.id, second.existing], [out.id, true]);
    assert.equal((await c.cluster()).blobs.total, before);
  });

  test('modern MP4 without titles: --vocal-track/--backing-track decide, in any order', async () => {
    const src = join(work, 'untitled.mp4');
    await makeDemoSong(src, { title: 'Untitled', durationS: 8, vocalHz: 523, backingHz: 349, layout: 'two-streams', audioOrder: 'backing-first', vocalTitle: '', backingTitle: '' });
    const refused = await ingest([src, '--tracker', c.trackerUrl, ...meta]);
    assert.notEqual(refused.code, 0);
    assert.match(reason(refused), /--vocal-track N --backing-track M/);
    const run = await ingest([src, '--tracker', c.trackerUrl, ...meta, '--vocal-track', '1', '--backing-track', '0']);
    assert.equal(run.code, 0, run.stderr);
    const m = await checkSong((JSON.parse(run.stdout) as { id: string }).id, 523, 349);
    assert.equal(m.audio?.mapping, 'explicit');
    assert.equal(m.audio?.vocal.audioOrdinal, 1);
  });

  test('legacy MPEG-2 .mpg with the vocal on the right channel: split into two roles and transcoded', async () => {
    const src = join(work, 'legacy.mpg');
    await makeDemoSong(src, { title: 'Legacy', durationS: 8, vocalHz: 587, backingHz: 392, layout: 'legacy-lr', vocalChannel: 'right' });
    const refused = await ingest([src, '--tracker', c.trackerUrl, ...meta]);
    assert.notEqual(refused.code, 0);
    assert.match(reason(refused), /--vocal-channel left\|right/);
    const run = await ingest([src, '--tracker', c.trackerUrl, '--title', 'Legacy Song', '--artist', 'Old Star', '--language', 'yue', '--vocal-channel', 'right']);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { id: string; videoMode: string };
    assert.equal(out.videoMode, 'transcode');
    const m = await checkSong(out.id, 587, 392);
    assert.deepEqual([m.audio?.layout, m.audio?.vocal.channel, m.audio?.backing.channel], ['channel-split', 'right', 'left']);
    assert.equal(m.initials, 'LS');
  });

  test('HEVC in MKV: transcoded to H.264', async () => {
    const h264 = join(work, 'for-hevc.mp4');
    await makeDemoSong(h264, { title: 'HEVC', durationS: 6, vocalHz: 659, backingHz: 415, layout: 'two-streams' });
    const src = join(work, 'hevc.mkv');
    await new Promise<void>((resolve, reject) => {
      const ff = spawn('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', h264, '-map', '0', '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-c:a', 'copy', src]);
      ff.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}`))));
    });
    const run = await ingest([src, '--tracker', c.trackerUrl, ...meta, '--title', 'HEVC song']);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { id: string; videoMode: string };
    assert.equal(out.videoMode, 'transcode');
    const m = await checkSong(out.id, 659, 415);
    assert.equal(m.video?.sourceCodec, 'hevc');
  });

  test('bad inputs are refused with a one-line reason and nothing is stored', async () => {
    const good = join(work, 'good-for-bad.mp4');
    await makeDemoSong(good, { title: 'Bad', durationS: 6, vocalHz: 698, backingHz: 466, layout: 'two-streams' });
    const whole = readFileSync(good);
    const cases: Array<{ name: string; make: (f: string) => Promise<void> | void; expect: RegExp }> = [
      { name: 'random.mp4', make: (f) => writeFileSync(f, randomBytes(200_000)), expect: /not (a )?media|not recogni[sz]ed|cannot be read|unknown|no streams/i },
      { name: 'text.mp4', make: (f) => writeFileSync(f, 'this is a text file, not a song\n'.repeat(100)), expect: /not (a )?media|text|not recogni[sz]ed|cannot be read|no streams/i },
      { name: 'truncated.mp4', make: (f) => writeFileSync(f, whole.subarray(0, Math.floor(whole.length / 2))), expect: /truncated|corrupt|incomplete|damaged|missing/i },
      {
        name: 'one-audio.mp4',
        make: (f) =>
          new Promise<void>((resolve, reject) => {
            const ff = spawn('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', good, '-map', '0:v', '-map', '0:a:0', '-c', 'copy', f]);
            ff.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}`))));
          }),
        expect: /--vocal-channel/,
      },
      { name: 'missing.mp4', make: () => undefined, expect: /not a readable file/ },
    ];
    const before = await c.cluster();
    const songsBefore = (await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?limit=200', { timeoutMs: 3000 })).songs.length;
    for (const k of cases) {
      const f = join(work, k.name);
      await k.make(f);
      const run = await ingest([f, '--tracker', c.trackerUrl, ...meta]);
      assert.notEqual(run.code, 0, `${k.name} must fail`);
      const line = reason(run);
      assert.match(line, k.expect, `${k.name}: ${line}`);
      assert.ok(!/\n/.test(line) && !/at .*\.js:\d+/.test(run.stderr), `${k.name}: one line, no stack trace`);
      assert.equal(run.stdout, '', `${k.name}: nothing on stdout`);
    }
    const missingMeta = await ingest([good, '--tracker', c.trackerUrl, '--artist', 'A', '--language', 'zh']);
    assert.notEqual(missingMeta.code, 0);
    assert.match(reason(missingMeta), /title is required/);
    const after = await c.cluster();
    assert.equal(after.blobs.total, before.blobs.total, 'no blob stored by a refused ingest');
    const songsAfter = (await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?limit=200', { timeoutMs: 3000 })).songs.length;
    assert.equal(songsAfter, songsBefore);
  });

  test('the demo library: generated songs with Chinese and English titles, each role its own tone, seeded once', async () => {
    const dataDir = tempDir('demo-data');
    const workDir = tempDir('demo-work');
    const { seedDemoLibrary, DEMO_SONGS } = await import('../library/demo-seed.js');
    const { TrackerClient } = await import('../common/tracker-client.js');
    const { createLogger } = await import('../common/log.js');
    const { loadConfig } = await import('../config/load.js');
    const config = loadConfig({ overrides: CONFIG });
    const ctx = { tracker: new TrackerClient([c.trackerUrl], SECRET, 3000), secret: SECRET, config, log: createLogger('test', 'error'), workDir };
    const seen: string[] = [];
    const ids = await seedDemoLibrary(ctx, { dataDir, count: 3, durationS: 6, width: 640, height: 360, onSong: (_i, _n, title, _r, error) => seen.push(error ? `${title}: ${error}` : title) });
    assert.equal(ids.length, 3, seen.join('; '));
    for (const [i, id] of ids.entries()) await checkSong(id, DEMO_SONGS[i]!.vocalHz, DEMO_SONGS[i]!.backingHz);
    const zh = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?q=yldb', { timeoutMs: 3000 });
    assert.ok(zh.songs.some((s) => s.title === '月亮代表我的心'), 'Chinese demo title found by pinyin initials');
    const en = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?q=let%20it', { timeoutMs: 3000 });
    assert.ok(en.songs.some((s) => s.title === 'Let It Be'));
    // Second start: the marker says it is done; nothing is generated or stored again.
    const before = (await c.cluster()).blobs.total;
    assert.deepEqual(await seedDemoLibrary(ctx, { dataDir, count: 3, durationS: 6, width: 640, height: 360 }), []);
    assert.equal((await c.cluster()).blobs.total, before);
  });

  test('--dir with a CSV sidecar: ingests, skips what is known, reports failures in a table', async () => {
    const dir = join(work, 'folder');
    mkdirSync(dir);
    await makeDemoSong(join(dir, 'a.mp4'), { title: 'A', durationS: 5, vocalHz: 440, backingHz: 330, layout: 'two-streams', vocalTitle: 'vocal', backingTitle: 'karaoke' });
    await makeDemoSong(join(dir, 'b.mpg'), { title: 'B', durationS: 5, vocalHz: 523, backingHz: 349, layout: 'legacy-lr', vocalChannel: 'left' });
    copyFileSync(join(work, 'titled.mp4'), join(dir, 'known.mp4'));
    writeFileSync(join(dir, 'broken.mp4'), 'not a video');
    writeFileSync(
      join(dir, 'metadata.csv'),
      ['file,title,artist,language,genre,vocalChannel', 'a.mp4,"Hello, World",Singer A,en,pop,', 'b.mpg,童话,光良,zh,,left', 'known.mp4,七里香,周杰伦,zh,,', 'broken.mp4,Broken,Nobody,en,,'].join('\n') + '\n',
    );
    const run = await ingest(['--dir', dir, '--tracker', c.trackerUrl, '--jobs', '2']);
    assert.equal(run.code, 1, 'a failed row makes the exit code non-zero');
    assert.match(run.stdout, /ingested 2, skipped 1, failed 1/);
    assert.match(run.stdout, /known\.mp4\s+skipped/);
    assert.match(run.stdout, /broken\.mp4\s+failed/);
    const found = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, '/api/v1/songs?q=tonghua', { timeoutMs: 3000 });
    assert.ok(found.songs.some((s) => s.title === '童话'));
    const hello = await rpc<{ songs: SongSummary[] }>(c.trackerUrl, `/api/v1/songs?q=${encodeURIComponent('Hello, World')}`, { timeoutMs: 3000 });
    assert.ok(hello.songs.some((s) => s.title === 'Hello, World'));
  });
});
