// The simulated room's accounting against a local HTTP server we control: a fast server gives no
// stall; one segment held back past the moment the playhead needs it gives exactly one stall, on
// that segment, as long as the hold-back minus the buffer the room had; the room fetches at the
// song's bitrate once its buffer is full (pacing), not as fast as the server can send.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { PlaybackClock } from '../loadtest/clock.js';
import { parseMaster, playSong } from '../loadtest/room.js';
import { RawHttpPool } from '../common/raw-http.js';

const SEG_S = 1;
const SEGMENTS = 8;
const VIDEO_SEG_BYTES = 200_000;
const AUDIO_SEG_BYTES = 20_000;
const INIT_BYTES = 1000;

function mediaPlaylist(file: string, segBytes: number): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', `#EXT-X-TARGETDURATION:${SEG_S}`, '#EXT-X-MEDIA-SEQUENCE:0', '#EXT-X-PLAYLIST-TYPE:VOD', `#EXT-X-MAP:URI="${file}",BYTERANGE="${INIT_BYTES}@0"`];
  for (let i = 0; i < SEGMENTS; i++) lines.push(`#EXTINF:${SEG_S.toFixed(3)},`, `#EXT-X-BYTERANGE:${segBytes}@${INIT_BYTES + i * segBytes}`, file);
  lines.push('#EXT-X-ENDLIST', '');
  return lines.join('\n');
}

const MASTER = [
  '#EXTM3U',
  '#EXT-X-VERSION:7',
  '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="原唱 Vocal",DEFAULT=YES,AUTOSELECT=YES,URI="vocal.m3u8"',
  '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="伴唱 Backing",DEFAULT=NO,AUTOSELECT=YES,URI="backing.m3u8"',
  '#EXT-X-STREAM-INF:BANDWIDTH=1760000,CODECS="avc1.640028,mp4a.40.2",AUDIO="aud"',
  'video.m3u8',
  '',
].join('\n');

describe('simulated room accounting (loadtest/room.ts)', () => {
  let server: http.Server;
  let base = '';
  /** Video segment index → extra delay before answering, ms. */
  const holdMs = new Map<number, number>();
  const requests: string[] = [];
  const client = new RawHttpPool({ maxSocketsPerHost: 64, idleTimeoutMs: 4000 });

  before(async () => {
    server = http.createServer((req, res) => {
      const name = (req.url ?? '').split('/').pop() ?? '';
      requests.push(`${name} ${req.headers.range ?? ''}`);
      const text = name === 'master.m3u8' ? MASTER : name === 'video.m3u8' ? mediaPlaylist('video.mp4', VIDEO_SEG_BYTES) : name === 'vocal.m3u8' ? mediaPlaylist('vocal.mp4', AUDIO_SEG_BYTES) : name === 'backing.m3u8' ? mediaPlaylist('backing.mp4', AUDIO_SEG_BYTES) : '';
      if (text) {
        res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'content-length': Buffer.byteLength(text) }).end(text);
        return;
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
      if (!m || !name.endsWith('.mp4')) {
        res.writeHead(404).end();
        return;
      }
      const start = Number(m[1]);
      const length = Number(m[2]) - start + 1;
      const seg = name === 'video.mp4' && start >= INIT_BYTES ? (start - INIT_BYTES) / VIDEO_SEG_BYTES : -1;
      const send = (): void => {
        res.writeHead(206, { 'content-length': String(length), 'content-range': `bytes ${start}-${start + length - 1}/*` }).end(Buffer.alloc(length, 7));
      };
      const hold = holdMs.get(seg);
      if (hold) setTimeout(send, hold);
      else send();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    client.destroy();
    await new Promise((r) => server.close(r));
  });

  test('the master parser finds the variant and both roles', () => {
    const m = parseMaster(MASTER);
    assert.equal(m.videoUri, 'video.m3u8');
    assert.equal(m.audio.get('vocal'), 'vocal.m3u8');
    assert.equal(m.audio.get('backing'), 'backing.m3u8');
    assert.throws(() => parseMaster('hello'), /EXTM3U/);
  });

  test('the clock: a segment ready late by 700 ms is one stall of 700 ms; ready early is none', () => {
    const segs = Array.from({ length: 4 }, (_, i) => ({ startS: i, durationS: 1 }));
    const c = new PlaybackClock(segs, 0, 1);
    c.markReady(0, 100); // starts at 100
    c.markReady(1, 500);
    c.markReady(2, 2800); // needed at 2100
    assert.deepEqual(c.at(2500), { positionS: 2, stalled: true, ended: false, stallMs: 400 });
    c.markReady(3, 2900);
    const end = c.at(10_000);
    assert.equal(end.ended, true);
    assert.equal(end.stallMs, 700);
    assert.deepEqual(c.stalls, [{ segment: 2, atMs: 2100, waitedMs: 700 }]);
    assert.equal(c.startupMs, 100);
  });

  test('a fast server: no stall, every byte, the vocal toggle switches the audio file', async () => {
    holdMs.clear();
    requests.length = 0;
    const r = await playSong({ base, songId: 's1', client, maxBufferS: 3, toggleAtS: 3 });
    assert.deepEqual(r.errors, []);
    assert.equal(r.stalls.length, 0);
    assert.equal(r.stallMs, 0);
    assert.equal(r.segments.length, SEGMENTS);
    assert.equal(r.toggled, true);
    assert.ok(requests.some((q) => q.startsWith('backing.mp4 bytes=')), 'fetched 伴唱 after the toggle');
    assert.ok(requests.some((q) => q.startsWith('vocal.mp4 bytes=')), 'fetched 原唱 before it');
    assert.ok(Math.abs(r.playedS - SEGMENTS * SEG_S) < 0.01, `played ${r.playedS} s`);
  });

  test('one segment held past its deadline: exactly one stall, on it, of the expected length', async () => {
    holdMs.clear();
    // maxBuffer 2 s: segment 4 is asked for when the playhead passes 2 s and needed at 4 s; held
    // 3 s, it arrives near 5 s: one stall of about 1 s at segment 4.
    holdMs.set(4, 3000);
    const r = await playSong({ base, songId: 's1', client, maxBufferS: 2 });
    assert.deepEqual(r.errors, []);
    assert.equal(r.stalls.length, 1, JSON.stringify(r.stalls));
    assert.equal(r.stalls[0]!.segment, 4);
    const waited = r.stalls[0]!.waitedMs;
    assert.ok(waited > 700 && waited < 1400, `stalled ${waited} ms (expected about 1000)`);
    assert.equal(r.stallMs, waited);
  });

  test('pacing: with a full buffer the room fetches at the song bitrate', async () => {
    holdMs.clear();
    const t0 = performance.now();
    const r = await playSong({ base, songId: 's1', client, maxBufferS: 1 });
    const wallS = (performance.now() - t0) / 1000;
    const songBytes = SEGMENTS * (VIDEO_SEG_BYTES + AUDIO_SEG_BYTES) + 2 * INIT_BYTES;
    assert.equal(r.bytes, songBytes);
    // The song takes its duration (plus startup) to play, so bytes arrive at its bitrate.
    const rate = r.bytes / wallS;
    const bitrate = songBytes / (SEGMENTS * SEG_S);
    assert.ok(Math.abs(rate - bitrate) / bitrate < 0.05, `fetched at ${Math.round(rate)} B/s, the song is ${Math.round(bitrate)} B/s`);
    // And not ahead of the playhead by more than the buffer: the last segment was fetched late.
    assert.ok(wallS >= SEGMENTS * SEG_S, `the room took ${wallS.toFixed(2)} s for an ${SEGMENTS} s song`);
  });
});
