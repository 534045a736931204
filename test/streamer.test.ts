// `ktv streamer` end to end: a real tracker and 3 storage nodes × 2 disks (processes), songs made
// with ffmpeg and ingested in-process through the real ingest path, and the streamer as its own
// process. Every segment range through the streamer equals the blob's bytes on a node; headers
// and errors; single-flight; a storage node SIGKILLed while a paced room plays; the tracker
// SIGKILLed after a song was played once: the room keeps playing from the streamer's caches.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { SongManifest, SongSummary, StreamerInfo } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { loadConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { parseMediaPlaylist, type MediaPlaylist } from '../library/media/playlist.js';
import { readRange, SECRET, TestCluster } from './helpers/cluster.js';
import { freePort, tempDir, waitFor, type Proc } from './helpers/procs.js';

const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  // Repair is slowed down so the killed node's blobs are not re-replicated mid-test (it would not
  // hurt, but the test is about the streamer riding it out, not repair).
  tracker: { nodeDeadAfterMs: 1500, repairGraceMs: 120_000, repairIntervalMs: 500, placementFreeFloorBytes: 0, streamerDeadAfterMs: 2000 },
  library: { catalogWaitMs: 15_000 },
  streamer: {
    heartbeatIntervalMs: 300,
    // Short TTLs so the tracker-outage test runs on stale entries, as a long outage would.
    manifestTtlMs: 1500,
    locateTtlMs: 1500,
    searchTtlMs: 500,
    streamersTtlMs: 300,
    refreshRetryMs: 500,
    // Small enough that a replay reads from the storage nodes again (the locations cache is what
    // is tested when the tracker is gone), large enough to hold the playlists.
    cacheBytes: 256 * 1024,
    // Song 3's 4 s segments (~4 MB at 8 Mbit/s) and whole file stream through, unbuffered.
    cacheMaxEntryBytes: 2 * 1024 * 1024,
    trackerTimeoutMs: 1000,
  },
  rpcTimeoutMs: 3000,
};

interface Song {
  id: string;
  manifest: SongManifest;
  /** Per rendition name (video.mp4 …): its playlist and the blob's bytes read straight from a node. */
  renditions: Map<string, { playlistName: string; playlist: MediaPlaylist; blob: string; bytes: Buffer; playlistText: string }>;
}

/** Every byte range a player asks for: the init section, then each segment. */
function ranges(p: MediaPlaylist): Array<[number, number]> {
  return [[p.map.offsetBytes, p.map.lengthBytes], ...p.segments.map((s): [number, number] => [s.offsetBytes, s.lengthBytes])];
}

async function metricValue(base: string, name: string, match: (labels: string) => boolean = () => true): Promise<number> {
  const text = await (await fetch(new URL('/metrics', base))).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m && m[1] === name && match(m[2] ?? '')) sum += Number(m[3]);
  }
  return sum;
}

/** A request with a raw path (fetch would normalise `..` away). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bytes on the wire, for what no HTTP client will send (a NUL in the path). */
function rawSocket(base: string, request: string): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname, () => socket.write(request));
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (out += d));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer')));
  });
}

function assertJsonError(body: string, what: string): void {
  let parsed: { error?: unknown };
  try {
    parsed = JSON.parse(body) as { error?: unknown };
  } catch {
    assert.fail(`${what}: not JSON: ${body.slice(0, 200)}`);
  }
  assert.equal(typeof parsed.error, 'string', `${what}: {"error"}`);
  assert.doesNotMatch(body, /\n\s+at |node:internal|\.js:\d+/, `${what}: no stack trace`);
}

describe('ktv streamer against a real cluster', () => {
  const c = new TestCluster('streamer', CONFIG);
  const work = tempDir('streamer-src');
  let streamerUrl = '';
  let streamer: Proc | undefined;
  const songs: Song[] = [];

  before(async () => {
    await c.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await c.addNode(id, 2);
    await c.waitAlive(3);
    const port = await freePort();
    streamerUrl = `http://127.0.0.1:${port}/`;
    streamer = c.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', c.trackerUrl, '--config', c.configFile, '--id', 'edge-1']);
    await waitFor('streamer health', async () => (await fetch(new URL('/health', streamerUrl))).ok);

    const config = loadConfig({ file: c.configFile });
    const ctx = {
      tracker: new TrackerClient([c.trackerUrl], SECRET, config.rpcTimeoutMs),
      secret: SECRET,
      config,
      log: createLogger('test-ingest', 'warn'),
      workDir: tempDir('streamer-work'),
    };
    const specs: Array<{ title: string; artist: string; vocalHz: number; backingHz: number; videoBitsPerS?: number }> = [
      { title: '月亮代表我的心', artist: '邓丽君', vocalHz: 440, backingHz: 330 },
      { title: 'Paced Room', artist: 'Killer Node', vocalHz: 523, backingHz: 349 },
      { title: 'Big Song', artist: 'Rot', vocalHz: 587, backingHz: 392, videoBitsPerS: 8e6 },
    ];
    for (const [i, s] of specs.entries()) {
      const file = join(work, `song${i}.mp4`);
      await makeDemoSong(file, { title: s.title, durationS: 12, vocalHz: s.vocalHz, backingHz: s.backingHz, layout: 'two-streams', width: 640, height: 360, vocalTitle: '原唱', backingTitle: '伴唱', videoBitsPerS: s.videoBitsPerS });
      const result = await ingestSong({ file, title: s.title, artist: s.artist, language: 'zh' }, ctx);
      const manifest = await rpc<SongManifest>(c.trackerUrl, `/api/v1/songs/${result.id}`, { timeoutMs: 3000 });
      const renditions: Song['renditions'] = new Map();
      for (const r of manifest.renditions) {
        const loc = await waitFor(`2 replicas of ${r.blob}`, async () => {
          const l = await c.locate(r.blob);
          return l.replicas.length >= 2 ? l : undefined;
        });
        const media = await readRange(loc.replicas[0]!.url, r.blob);
        assert.equal(media.status, 200);
        const pl = await c.locate(r.playlistBlob!);
        const playlistText = (await readRange(pl.replicas[0]!.url, r.playlistBlob!)).body.toString('utf8');
        renditions.set(r.name!, { playlistName: r.playlistName!, playlist: parseMediaPlaylist(playlistText), blob: r.blob, bytes: media.body, playlistText });
      }
      songs.push({ id: result.id, manifest, renditions });
    }
  });

  after(() => c.close());

  const at = (path: string): URL => new URL(path, streamerUrl);

  test('master and media playlists are served and parse; every segment range equals the blob on a node', async () => {
    const song = songs[0]!;
    const master = await fetch(at(`/hls/${song.id}/master.m3u8`));
    assert.equal(master.status, 200);
    assert.equal(master.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    const masterText = await master.text();
    assert.equal(masterText, song.manifest.masterPlaylist);
    for (const [name, r] of song.renditions) {
      assert.ok(masterText.includes(r.playlistName), `master names ${r.playlistName}`);
      const pl = await fetch(at(`/hls/${song.id}/${r.playlistName}`));
      assert.equal(pl.status, 200);
      assert.equal(pl.headers.get('content-type'), 'application/vnd.apple.mpegurl');
      const text = await pl.text();
      assert.equal(text, r.playlistText);
      const parsed = parseMediaPlaylist(text);
      assert.equal(parsed.map.uri, name, 'the playlist names its media file');
      assert.ok(parsed.segments.length >= 3, '12 s at 4 s per segment');
      for (const [offset, length] of ranges(parsed)) {
        const res = await fetch(at(`/hls/${song.id}/${name}`), { headers: { range: `bytes=${offset}-${offset + length - 1}` } });
        assert.equal(res.status, 206, `${name} ${offset}+${length}`);
        const body = Buffer.from(await res.arrayBuffer());
        assert.ok(body.equals(r.bytes.subarray(offset, offset + length)), `${name} bytes ${offset}+${length} equal the blob`);
      }
      // Whole file, no Range.
      const whole = await fetch(at(`/hls/${song.id}/${name}`));
      assert.equal(whole.status, 200);
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(r.bytes), `${name} whole file`);
    }
  });

  test('headers: ETag, Cache-Control, Content-Type, 206/200/304/416, HEAD, CORS', async () => {
    const song = songs[0]!;
    const video = song.renditions.get('video.mp4')!;
    const size = video.bytes.length;
    const r = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range: 'bytes=0-99' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers.get('content-range'), `bytes 0-99/${size}`);
    assert.equal(r.headers.get('content-length'), '100');
    assert.equal(r.headers.get('etag'), `"${video.blob}"`);
    assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(r.headers.get('accept-ranges'), 'bytes');
    assert.equal(r.headers.get('content-type'), 'video/mp4');
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    assert.match(r.headers.get('access-control-expose-headers') ?? '', /Content-Range/);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(video.bytes.subarray(0, 100)));

    const audio = await fetch(at(`/hls/${song.id}/vocal.mp4`), { headers: { range: 'bytes=0-9' } });
    assert.equal(audio.headers.get('content-type'), 'audio/mp4');
    await audio.arrayBuffer();

    const suffix = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range: 'bytes=-100' } });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.headers.get('content-range'), `bytes ${size - 100}-${size - 1}/${size}`);
    assert.ok(Buffer.from(await suffix.arrayBuffer()).equals(video.bytes.subarray(size - 100)));

    const headRes = await fetch(at(`/hls/${song.id}/video.mp4`), { method: 'HEAD' });
    assert.equal(headRes.status, 200);
    assert.equal(headRes.headers.get('content-length'), String(size));
    assert.equal(headRes.headers.get('etag'), `"${video.blob}"`);

    const notModified = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range: 'bytes=0-99', 'if-none-match': `"${video.blob}"` } });
    assert.equal(notModified.status, 304);

    for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=0-1,5-9']) {
      const bad = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range } });
      assert.equal(bad.status, 416, range);
      assert.equal(bad.headers.get('content-range'), `bytes */${size}`);
      assertJsonError(await bad.text(), range);
    }

    const master = await fetch(at(`/hls/${song.id}/master.m3u8`));
    assert.match(master.headers.get('cache-control') ?? '', /max-age=60\b/);
    assert.ok(master.headers.get('etag'));
    await master.text();
    const playlist = await fetch(at(`/hls/${song.id}/video.m3u8`));
    assert.equal(playlist.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(playlist.headers.get('access-control-allow-origin'), '*');
    await playlist.text();

    const preflight = await fetch(at(`/hls/${song.id}/video.mp4`), { method: 'OPTIONS', headers: { origin: 'http://room-box', 'access-control-request-headers': 'range' } });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /Range/);
  });

  test('bad ids, unknown songs, bad names and path tricks are refused with JSON, never a stack', async () => {
    const id = songs[0]!.id;
    const cases: Array<[string, number[]]> = [
      [`/hls/bad!id/master.m3u8`, [400]],
      [`/hls/${'a'.repeat(65)}/master.m3u8`, [400]],
      [`/hls/noSuchSong123/master.m3u8`, [404]],
      [`/hls/noSuchSong123/video.mp4`, [404]],
      [`/hls/${id}/nothere.mp4`, [404]],
      [`/hls/${id}/nothere.m3u8`, [404]],
      [`/hls/${id}/VIDEO.mp4`, [400]],
      [`/hls/${id}/video.txt`, [400]],
      [`/hls/${id}/video.mp4/x`, [404]],
      [`/hls/${id}/../../package.json`, [400]],
      [`/hls/${id}/..%2f..%2fpackage.json`, [400]],
      [`/hls/%2e%2e/master.m3u8`, [400]],
      [`/hls/${id}%2fvideo.mp4/master.m3u8`, [400]],
      [`/hls/${id}/video.mp4%00`, [400]],
      [`/player/../package.json`, [400]],
      [`/%2e%2e/%2e%2e/etc/passwd`, [400]],
      [`/.env`, [400]],
      [`/vendor/../../package.json`, [400]],
      [`/package.json`, [404]],
      [`/api/v1/songs/bad!id`, [400]],
      [`/api/v1/songs/noSuchSong123`, [404]],
      [`/api/v1/nothing`, [404]],
    ];
    for (const [path, statuses] of cases) {
      const res = await rawGet(streamerUrl, path);
      assert.ok(statuses.includes(res.status), `${path}: ${res.status} ${res.body}`);
      assertJsonError(res.body, path);
      assert.equal(res.headers['access-control-allow-origin'], '*', `${path}: CORS on errors too`);
    }
    const nul = await rawSocket(streamerUrl, `GET /hls/${id}/video\u0000.mp4 HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(nul, /^HTTP\/1\.1 400/);
    assertJsonError(nul.slice(nul.indexOf('\r\n\r\n') + 4), 'NUL in the path');
    const post = await fetch(at(`/hls/${id}/master.m3u8`), { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assertJsonError(await post.text(), 'POST');
  });

  test('single-flight: 20 concurrent identical cold range requests cause one upstream read', async (t) => {
    const song = songs[0]!;
    const video = song.renditions.get('video.mp4')!;
    const [start, end] = [1000, 40_999]; // a range no player asks for: surely cold
    const requestsBefore = await metricValue(streamerUrl, 'ktv_streamer_upstream_requests_total');
    const bytesBefore = await metricValue(streamerUrl, 'ktv_streamer_upstream_bytes_total');
    const joinsBefore = await metricValue(streamerUrl, 'ktv_streamer_singleflight_joins_total');
    const hitsBefore = await metricValue(streamerUrl, 'ktv_streamer_cache_hits_total');
    // Warm 20 keep-alive connections first, so the 20 requests reach the streamer together.
    await Promise.all(Array.from({ length: 20 }, async () => (await fetch(at('/health'))).text()));
    const bodies = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range: `bytes=${start}-${end}` } });
        assert.equal(res.status, 206);
        return Buffer.from(await res.arrayBuffer());
      }),
    );
    for (const b of bodies) assert.ok(b.equals(video.bytes.subarray(start, end + 1)));
    assert.equal((await metricValue(streamerUrl, 'ktv_streamer_upstream_requests_total')) - requestsBefore, 1, 'one storage read');
    assert.equal((await metricValue(streamerUrl, 'ktv_streamer_upstream_bytes_total')) - bytesBefore, end - start + 1, "one read's worth of bytes");
    // The others shared the read in flight or, if they came after it finished, found it cached.
    const joins = (await metricValue(streamerUrl, 'ktv_streamer_singleflight_joins_total')) - joinsBefore;
    const hits = (await metricValue(streamerUrl, 'ktv_streamer_cache_hits_total')) - hitsBefore;
    assert.equal(joins + hits, 19);
    t.diagnostic(`${joins} joined the read in flight, ${hits} found it cached`);
  });

  test('catalog for rooms: search and manifest through the streamer; player and hls.js served', async () => {
    const song = songs[0]!;
    const found = (await (await fetch(at(`/api/v1/songs?q=${encodeURIComponent('邓丽君')}&limit=5`))).json()) as { songs: SongSummary[] };
    assert.ok(found.songs.some((s) => s.id === song.id));
    const badLimit = await fetch(at('/api/v1/songs?limit=0'));
    assert.equal(badLimit.status, 400);
    assertJsonError(await badLimit.text(), 'limit=0');
    const m = (await (await fetch(at(`/api/v1/songs/${song.id}`))).json()) as SongManifest;
    assert.equal(m.id, song.id);
    assert.equal(m.masterPlaylist, song.manifest.masterPlaylist);

    const hls = await fetch(at('/vendor/hls.min.js'));
    assert.equal(hls.status, 200);
    assert.match(hls.headers.get('content-type') ?? '', /javascript/);
    assert.ok((await hls.text()).length > 100_000);
    const index = await fetch(at('/'));
    const playerIndex = join(fileURLToPath(new URL('../../player/', import.meta.url)), 'index.html');
    if (existsSync(playerIndex)) {
      assert.equal(index.status, 200);
      assert.match(index.headers.get('content-type') ?? '', /text\/html/);
      await index.text();
    } else {
      assert.equal(index.status, 404);
      assertJsonError(await index.text(), 'no player yet');
    }
  });

  test('the streamer registers: the tracker lists it (and so does the streamer itself)', async () => {
    const listed = await waitFor('the streamer in the tracker registry', async () => {
      const r = await rpc<{ streamers: StreamerInfo[] }>(c.trackerUrl, '/api/v1/streamers', { timeoutMs: 3000 });
      return r.streamers.find((s) => s.id === 'edge-1' && s.state === 'alive');
    });
    assert.equal(listed.url, streamerUrl);
    const view = await c.cluster();
    assert.ok(view.streamers?.some((s) => s.id === 'edge-1'), 'cluster view lists streamers');
    const viaEdge = (await (await fetch(at('/api/v1/streamers'))).json()) as { streamers: StreamerInfo[] };
    assert.ok(viaEdge.streamers.some((s) => s.id === 'edge-1'));
  });

  test('a replica that breaks mid-body: the streamed-through read resumes on the other replica, the client sees one whole body', async () => {
    const song = songs[2]!;
    const video = song.renditions.get('video.mp4')!;
    const chunkBytes = 1024 * 1024;
    assert.ok(video.bytes.length > 4 * chunkBytes, `big enough to cut mid-body (${video.bytes.length} bytes)`);
    // Which replica does the streamer read first? The node whose upstream bytes grow.
    const perNode = async (): Promise<Map<string, number>> => {
      const m = new Map<string, number>();
      for (const n of c.nodes) m.set(n.id, await metricValue(streamerUrl, 'ktv_streamer_upstream_bytes_total', (l) => l.includes(`node="${n.id}"`)));
      return m;
    };
    const before = await perNode();
    const probe = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range: 'bytes=0-999' } });
    assert.equal(probe.status, 206);
    await probe.arrayBuffer();
    const afterProbe = await perNode();
    const first = c.nodes.find((n) => afterProbe.get(n.id)! > before.get(n.id)!)!;
    assert.ok(first, 'found the node the streamer reads from');
    // Rot one byte in its 4th chunk: the node verifies every chunk before sending it, so it sends
    // chunks 0-2 and then cuts the connection (never bad bytes).
    const file = first.disks.map((d) => join(d, 'blobs', video.blob.slice(0, 2), video.blob.slice(2, 4), video.blob)).find((f) => existsSync(f));
    assert.ok(file, `the replica file on ${first.id}`);
    const fd = openSync(file, 'r+');
    const at3 = 3 * chunkBytes + 123;
    writeSync(fd, Buffer.from([video.bytes[at3]! ^ 0xff]), 0, 1, at3);
    closeSync(fd);

    const failoversBefore = await metricValue(streamerUrl, 'ktv_streamer_failovers_total');
    const res = await fetch(at(`/hls/${song.id}/video.mp4`));
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, video.bytes.length);
    assert.ok(body.equals(video.bytes), 'the whole file, byte for byte');
    assert.ok((await metricValue(streamerUrl, 'ktv_streamer_failovers_total')) > failoversBefore, 'the read moved to the other replica');
    assert.ok(
      (await metricValue(streamerUrl, 'ktv_streamer_upstream_errors_total', (l) => l.includes(`node="${first.id}"`) && l.includes('reason="short-body"'))) > 0,
      'counted as a body cut short',
    );
  });

  test('a storage node SIGKILLed while a paced room plays: zero failed segments, the streamer failed over', async () => {
    const song = songs[1]!;
    const video = song.renditions.get('video.mp4')!;
    const vocal = song.renditions.get('vocal.mp4')!;
    assert.equal((await fetch(at(`/hls/${song.id}/master.m3u8`))).status, 200);
    for (const r of [video, vocal]) await (await fetch(at(`/hls/${song.id}/${r.playlistName}`))).text();

    // The node the streamer reads this video blob from: the one whose upstream bytes grow.
    const perNode = async (): Promise<Map<string, number>> => {
      const m = new Map<string, number>();
      for (const n of c.nodes) m.set(n.id, await metricValue(streamerUrl, 'ktv_streamer_upstream_bytes_total', (l) => l.includes(`node="${n.id}"`)));
      return m;
    };
    const before = await perNode();
    const [initOffset, initLength] = ranges(video.playlist)[0]!;
    const init = await fetch(at(`/hls/${song.id}/video.mp4`), { headers: { range: `bytes=${initOffset}-${initOffset + initLength - 1}` } });
    assert.equal(init.status, 206);
    await init.arrayBuffer();
    const afterInit = await perNode();
    const victim = c.nodes.find((n) => afterInit.get(n.id)! > before.get(n.id)!)!;
    assert.ok(victim, 'found the node serving the video blob');
    const failoversBefore = await metricValue(streamerUrl, 'ktv_streamer_failovers_total');
    await c.procs.stop(victim.proc!, 'SIGKILL');

    // The paced room: one step per 0.5 s, each step the next video and vocal segment.
    const videoRanges = ranges(video.playlist).slice(1);
    const vocalRanges = ranges(vocal.playlist);
    const failures: string[] = [];
    const steps = Math.max(videoRanges.length, vocalRanges.length);
    for (let i = 0; i < steps; i++) {
      const wanted: Array<[string, Buffer, [number, number] | undefined]> = [
        ['video.mp4', video.bytes, videoRanges[i]],
        ['vocal.mp4', vocal.bytes, vocalRanges[i]],
      ];
      await Promise.all(
        wanted.map(async ([name, bytes, range]) => {
          if (!range) return;
          const [offset, length] = range;
          try {
            const res = await fetch(at(`/hls/${song.id}/${name}`), { headers: { range: `bytes=${offset}-${offset + length - 1}` }, signal: AbortSignal.timeout(4000) });
            const body = Buffer.from(await res.arrayBuffer());
            if (res.status !== 206 || !body.equals(bytes.subarray(offset, offset + length))) failures.push(`${name}@${offset}: ${res.status}`);
          } catch (error) {
            failures.push(`${name}@${offset}: ${(error as Error).message}`);
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(failures, [], 'no segment request failed');
    assert.ok((await metricValue(streamerUrl, 'ktv_streamer_failovers_total')) > failoversBefore, 'the streamer failed over');
    await waitFor('the tracker to count the read failure', async () => (await metricValue(c.trackerUrl, 'ktv_tracker_read_failures_total', (l) => l.includes(`node="${victim.id}"`))) > 0, 10_000);
  });

  test('the tracker SIGKILLed after a song was played once: the whole song and a cached search are still served', async () => {
    const song = songs[0]!;
    // Played once already (first test); search once so it is cached.
    const q = `/api/v1/songs?q=${encodeURIComponent('邓丽君')}`;
    assert.equal((await fetch(at(q))).status, 200);
    await c.procs.stop(c.tracker!, 'SIGKILL');
    // Past every TTL: from here on the streamer runs on stale entries, refreshes failing.
    await new Promise((r) => setTimeout(r, 2500));

    const errors: string[] = [];
    const check = async (path: string, expect: Buffer | string, range?: string): Promise<void> => {
      const res = await fetch(at(path), { headers: range ? { range } : {}, signal: AbortSignal.timeout(5000) }).catch((e: Error) => e);
      if (res instanceof Error) {
        errors.push(`${path} ${range ?? ''}: ${res.message}`);
        return;
      }
      const body = Buffer.from(await res.arrayBuffer());
      const want = typeof expect === 'string' ? Buffer.from(expect) : expect;
      if (res.status >= 300 || !body.equals(want)) errors.push(`${path} ${range ?? ''}: ${res.status}`);
    };
    await check(`/hls/${song.id}/master.m3u8`, song.manifest.masterPlaylist!);
    for (const [name, r] of song.renditions) {
      await check(`/hls/${song.id}/${r.playlistName}`, r.playlistText);
      for (const [offset, length] of ranges(r.playlist)) {
        await check(`/hls/${song.id}/${name}`, r.bytes.subarray(offset, offset + length), `bytes=${offset}-${offset + length - 1}`);
      }
    }
    assert.deepEqual(errors, []);
    assert.ok((await metricValue(streamerUrl, 'ktv_streamer_stale_answers_total')) > 0, 'served from stale entries');

    const search = await fetch(at(q));
    assert.equal(search.status, 200);
    const found = (await search.json()) as { songs: SongSummary[] };
    assert.ok(found.songs.some((s) => s.id === song.id), 'cached search still answers');

    // What was never cached cannot be answered: a clean 503, not a hang.
    const unknown = await fetch(at('/hls/neverSeenSong/master.m3u8'));
    assert.equal(unknown.status, 503);
    assertJsonError(await unknown.text(), 'tracker down, not cached');
    const health = await fetch(at('/health'));
    assert.equal(health.status, 200);
    await health.text();
    assert.ok(streamer && streamer.child.exitCode === null, 'the streamer is still running');
  });
});
