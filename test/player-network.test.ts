// 拔掉网线不死机: a 30-second network cut in the middle of a song must not stop it. Chromium plays a
// 100 s song from a real `ktv streamer`; once the player has buffered ahead, the streamer process
// is frozen (SIGSTOP: connections hang as with a pulled cable, nothing is refused) for 30 s and
// then thawed. The song must keep playing through the cut without a stall and the player must
// resume loading afterwards. Behaviour only: no figure here is a pass/fail threshold.
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
const SONG_S = 100;
const CUT_MS = 30_000;
/** Buffered ahead before the cut (the player aims at 60 s). */
const AHEAD_BEFORE_CUT_S = 40;

interface Sample {
  t: number;
  bufferedEnd: number;
  state: string;
  stalls: number;
  reconnecting: boolean;
}

function sample(page: Page): Promise<Sample> {
  return page.evaluate(() => {
    const k = (window as unknown as { __ktv: { video: HTMLVideoElement; state: string; stalls: number; reconnecting: boolean } }).__ktv;
    const v = k.video;
    const end = v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0;
    return { t: v.currentTime, bufferedEnd: end, state: k.state, stalls: k.stalls, reconnecting: k.reconnecting };
  });
}

describe('room player through a 30 s network cut', () => {
  const cluster = new TestCluster('player-net', CONFIG);
  const work = tempDir('player-net-src');
  let streamer: Proc | undefined;
  let frozen = false;
  let url = '';
  let session: BrowserSession | undefined;

  before(async () => {
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    const config = defaultConfig();
    const file = join(work, 'long.mp4');
    await makeDemoSong(file, { title: '稻香', durationS: SONG_S, vocalHz: 440, backingHz: 330, layout: 'two-streams', width: 320, height: 180 }, config.library.media);
    await ingestSong({ file, title: '稻香', artist: '周杰伦', language: 'zh' }, { tracker: new TrackerClient([cluster.trackerUrl], SECRET, 5000), secret: SECRET, config, log: createLogger('player-net', 'warn'), workDir: work });
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    streamer = cluster.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', cluster.trackerUrl, '--config', cluster.configFile]);
    await waitFor('streamer health', async () => (await fetch(new URL('/health', url))).ok);
    session = await launchBrowser();
  });

  after(async () => {
    // A frozen process cannot handle SIGTERM; thaw it before the cluster stops everything.
    if (streamer && frozen) process.kill(streamer.pid, 'SIGCONT');
    if (session) await session.close();
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
  });

  test('the song plays through the cut without a stall, and loading resumes after it', async () => {
    assert.ok(session && streamer);
    const page = session.page;
    await page.goto(`${url}?autohide=0`);
    await page.waitForFunction(() => (window as unknown as { __ktv?: { state: string } }).__ktv?.state === 'idle', undefined, { timeout: 30_000 });
    await page.click('[data-tab="newest"]');
    await page.click('#newest-songs button.song:has(.title:text-is("稻香"))');
    await page.waitForFunction(() => {
      const k = (window as unknown as { __ktv: { state: string; current: { title: string } | null } }).__ktv;
      return k.state === 'playing' && k.current?.title === '稻香';
    }, undefined, { timeout: 30_000 });
    await waitFor('buffer ahead', async () => {
      const s = await sample(page);
      return s.bufferedEnd - s.t >= AHEAD_BEFORE_CUT_S ? s : undefined;
    }, 30_000, 200);

    const start = await sample(page);
    process.kill(streamer.pid, 'SIGSTOP');
    frozen = true;
    const during: Sample[] = [];
    const cutEnds = Date.now() + CUT_MS;
    while (Date.now() < cutEnds) {
      await new Promise((r) => setTimeout(r, 2000));
      during.push(await sample(page));
    }
    process.kill(streamer.pid, 'SIGCONT');
    frozen = false;

    let last = start.t;
    for (const s of during) {
      assert.equal(s.state, 'playing', `still playing during the cut (${JSON.stringify(s)})`);
      assert.ok(s.t > last, `the playhead moves during the cut: ${last} → ${s.t}`);
      last = s.t;
    }
    const end = during[during.length - 1]!;
    assert.equal(end.stalls, 0, 'no stall during the cut');
    // After the cut the player fetches again: the buffer grows past where it stood.
    const resumed = await waitFor('loading resumes after the cut', async () => {
      const s = await sample(page);
      return s.bufferedEnd > end.bufferedEnd + 1 || s.bufferedEnd >= SONG_S - 0.5 ? s : undefined;
    }, 60_000, 250);
    assert.equal(resumed.stalls, 0);
    process.stdout.write(`player network cut: ${CUT_MS / 1000} s cut from t=${start.t.toFixed(1)} s (buffered to ${start.bufferedEnd.toFixed(1)} s); playhead at ${end.t.toFixed(1)} s when it ended; stalls ${end.stalls}; buffered to ${resumed.bufferedEnd.toFixed(1)} s after\n`);
  });
});
