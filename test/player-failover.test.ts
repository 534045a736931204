// 流媒体服务器宕机: a room playing from one streamer moves to another when that one dies. Two
// real `ktv streamer` processes register with the tracker; Chromium plays a 200 s song from the
// first, which is SIGKILLed mid-song while the player is still fetching. The song must keep
// playing without a stall, the room must move to the second streamer by itself (from the list the
// tracker gives, GET /api/v1/streamers), and a song the box has never fetched must then start
// from the second streamer. Behaviour only: the figures printed are not thresholds.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { launchBrowser, type BrowserSession } from './helpers/browser.js';
import { SECRET, TestCluster } from './helpers/cluster.js';
import { freePort, tempDir, waitFor, type Proc } from './helpers/procs.js';

const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  tracker: { nodeDeadAfterMs: 3000, repairGraceMs: 60_000, repairIntervalMs: 500, placementFreeFloorBytes: 0 },
  library: { catalogWaitMs: 15_000 },
};
// Longer than the most the player buffers (120 s at a low bitrate), so it is still fetching mid-song.
const SONG_S = 200;

interface Room {
  t: number;
  bufferedEnd: number;
  state: string;
  stalls: number;
  streamer: string;
  streamers: string[];
  title: string;
}

function room(page: Page): Promise<Room> {
  return page.evaluate(() => {
    const k = (window as unknown as { __ktv: { video: HTMLVideoElement; state: string; stalls: number; streamer: string; streamers: string[]; current: { title: string } | null } }).__ktv;
    const v = k.video;
    const end = v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
    return { t: v.currentTime, bufferedEnd: end, state: k.state, stalls: k.stalls, streamer: k.streamer, streamers: [...k.streamers], title: k.current?.title ?? '' };
  });
}

describe('room player moves to another streamer when its streamer dies', () => {
  const cluster = new TestCluster('player-failover', CONFIG);
  const work = tempDir('player-failover-src');
  const streamers: { proc: Proc; base: string }[] = [];
  let session: BrowserSession | undefined;

  const startStreamer = async (): Promise<{ proc: Proc; base: string }> => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = cluster.procs.start(`streamer${streamers.length + 1}`, ['streamer', '--port', String(port), '--tracker', cluster.trackerUrl, '--config', cluster.configFile]);
    await waitFor('streamer health', async () => (await fetch(`${base}/health`)).ok);
    const s = { proc, base };
    streamers.push(s);
    return s;
  };

  before(async () => {
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    const config = defaultConfig();
    const tracker = new TrackerClient([cluster.trackerUrl], SECRET, 5000);
    const songs = [
      { title: '稻香', durationS: SONG_S, vocalHz: 440, backingHz: 330 },
      { title: '夜曲', durationS: 30, vocalHz: 523, backingHz: 392 },
    ];
    for (const s of songs) {
      const file = join(work, `${s.title}.mp4`);
      await makeDemoSong(file, { ...s, layout: 'two-streams', width: 320, height: 180 }, config.library.media);
      await ingestSong({ file, title: s.title, artist: '周杰伦', language: 'zh' }, { tracker, secret: SECRET, config, log: createLogger('player-failover', 'warn'), workDir: work });
    }
    await startStreamer();
    await startStreamer();
    // Both registered: the tracker lists them to rooms.
    await waitFor('both streamers listed by the tracker', async () => {
      const r = (await (await fetch(new URL('/api/v1/streamers', cluster.trackerUrl))).json()) as { streamers: { state?: string }[] };
      return r.streamers.filter((s) => s.state === undefined || s.state === 'alive').length >= 2;
    }, 20_000, 200);
    session = await launchBrowser();
  });

  after(async () => {
    if (session) await session.close();
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
  });

  test('SIGKILL of the room streamer mid-song: no stall, the room moves, the next song comes from the other', async () => {
    assert.ok(session);
    const [first, second] = streamers;
    assert.ok(first && second);
    const page = session.page;
    await page.goto(`${first.base}/?autohide=0`);
    await page.waitForFunction(() => (window as unknown as { __ktv?: { state: string } }).__ktv?.state === 'idle', undefined, { timeout: 30_000 });
    // The room learns the other streamer from the tracker (through its own streamer).
    await waitFor('the room knows both streamers', async () => {
      const r = await room(page);
      return r.streamers.includes(second.base) ? r : undefined;
    }, 30_000, 250);
    await page.click('[data-tab="newest"]');
    await page.click('#newest-songs button.song:has(.title:text-is("稻香"))');
    await page.click('#newest-songs button.song:has(.title:text-is("夜曲"))');
    await page.waitForFunction(() => {
      const k = (window as unknown as { __ktv: { state: string; current: { title: string } | null } }).__ktv;
      return k.state === 'playing' && k.current?.title === '稻香';
    }, undefined, { timeout: 30_000 });
    // Mid-song, still fetching: the playhead a few seconds in, the buffer not yet at the end.
    const before = await waitFor('playing a few seconds', async () => {
      const r = await room(page);
      return r.t >= 3 ? r : undefined;
    }, 30_000, 200);
    assert.equal(before.streamer, first.base);
    assert.ok(before.bufferedEnd < SONG_S - 1, `still fetching when the streamer dies (buffered to ${before.bufferedEnd} s)`);

    const killedAt = Date.now();
    await cluster.procs.stop(first.proc, 'SIGKILL');
    const moved = await waitFor('the room moves to the other streamer', async () => {
      const r = await room(page);
      return r.streamer === second.base ? r : undefined;
    }, 40_000, 200);
    const movedMs = Date.now() - killedAt;
    // Fetching goes on from the second streamer: the buffer grows past where it stood.
    const grew = await waitFor('the buffer grows from the other streamer', async () => {
      const r = await room(page);
      return r.bufferedEnd > moved.bufferedEnd + 1 || r.bufferedEnd >= SONG_S - 0.5 ? r : undefined;
    }, 40_000, 250);
    assert.equal(grew.state, 'playing');
    assert.equal(grew.title, '稻香');
    assert.equal(grew.stalls, 0, 'no stall while the room moved');
    assert.ok(grew.t > before.t, `the playhead moved on: ${before.t} → ${grew.t}`);

    // The next song was never fetched (no cache to hide behind): 切歌 must start it from the second streamer.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.clearBrowserCache');
    await cdp.detach();
    const skippedAt = Date.now();
    await page.keyboard.press('n');
    await page.waitForFunction(() => {
      const k = (window as unknown as { __ktv: { state: string; current: { title: string } | null; video: HTMLVideoElement } }).__ktv;
      return k.state === 'playing' && k.current?.title === '夜曲' && k.video.currentTime > 0.5;
    }, undefined, { timeout: 30_000 });
    const after = await room(page);
    assert.equal(after.streamer, second.base);
    const served = await (await fetch(`${second.base}/metrics`)).text();
    const bytes = [...served.matchAll(/^(?:ktv_)?streamer_served_bytes_total(?:\{[^}]*\})? (\S+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(bytes > 0, `the second streamer served the room (${bytes} bytes)`);
    process.stdout.write(`player streamer failover: moved ${movedMs} ms after the SIGKILL (playhead ${before.t.toFixed(1)} s, buffered to ${before.bufferedEnd.toFixed(1)} s); stalls ${grew.stalls}; next song playing ${Date.now() - skippedAt} ms after 切歌\n`);
  });
});
