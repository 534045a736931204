// A storage node dies mid-song: the room must not notice. Chromium plays a 40 s song from a real
// `ktv streamer` (1 MiB hot-range cache, so segments keep coming from storage) in front of a real
// tracker and 3 storage nodes × 2 disks; after ~5 s of playback the node holding the replica of
// the song's video blob that the streamer is reading (its per-node counters say which) is SIGKILLed.
//
// hls.js would otherwise fetch a 40 s test song in its first second (it buffers 60 s ahead at
// loopback speed) and a kill would prove nothing, so the page's network is throttled (Chrome
// DevTools Protocol) to a few times the song's bit rate and its HTTP cache is off: at the kill
// most of the song has not been fetched yet, which the test checks. Asserted: the playhead goes
// on to the end and the room moves on by itself, `__ktv.stalls` stays 0, no error toast and no
// 网络重连中 badge; the streamer read from the killed node before the kill, failed over from it
// after (its failover and per-node error counters, and the tracker's read-failure counter), and
// read the rest of the song from the surviving replicas. No wall-clock figure is asserted.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { SongManifest } from '../common/contracts.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { launchBrowser, type BrowserSession } from './helpers/browser.js';
import { SECRET, TestCluster, type NodeInfo } from './helpers/cluster.js';
import { freePort, tempDir, waitFor, type Proc } from './helpers/procs.js';
import { metricSum as metric } from './helpers/metrics.js';

const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  // No re-replication during the song: the surviving replicas alone must carry it.
  tracker: { nodeDeadAfterMs: 3000, repairGraceMs: 60_000, repairIntervalMs: 500, placementFreeFloorBytes: 0 },
  library: { catalogWaitMs: 15_000 },
};
/** The streamer's cache holds about one 4 s segment of this song: later segments come from storage. */
const STREAMER_CACHE_BYTES = 1024 * 1024;
const SONG = { title: '后来', artist: '刘若英', language: 'zh', durationS: 40, vocalHz: 440, backingHz: 330 };
/** A test picture compresses to almost nothing; at this rate a 4 s segment is ~0.75 MB. */
const VIDEO_BITS_PER_S = 1_500_000;
/** The page may download this many times the song's bit rate (so it buffers ahead slowly). */
const THROTTLE_X = 2.5;
const PLAYED_BEFORE_KILL_S = 5;
const UI_TIMEOUT_MS = 30_000;

interface Sample {
  at: number;
  t: number;
  bufferedEnd: number;
  state: string;
  stalls: number;
  reconnecting: boolean;
  songId: string | null;
  errorToast: string | null;
  reconnectBadge: boolean;
}

interface Watch {
  samples: Sample[];
  waiting: Array<{ at: number; t: number; songId: string | null }>;
  mediaErrors: Array<{ at: number; error: string; songId: string | null }>;
}

/** Blob ids of the streamer's "trying the next one" log lines for `nodeId` between two wall-clock times. */
function streamerFailovers(log: string, nodeId: string, sinceMs: number, untilMs: number): string[] {
  const blobs: string[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('trying the next one')) continue;
    try {
      const e = JSON.parse(line) as { t: string; node: string; blob: string };
      if (e.node === nodeId && Date.parse(e.t) >= sinceMs && Date.parse(e.t) <= untilMs) blobs.push(e.blob);
    } catch {
      /* not a JSON line */
    }
  }
  return blobs;
}

async function metricsText(baseUrl: string): Promise<string> {
  const res = await fetch(new URL('/metrics', baseUrl));
  assert.equal(res.status, 200, `GET ${baseUrl}metrics`);
  return res.text();
}

/** Starts recording the room every 100 ms, plus every `waiting` and `error` of the <video>. */
function startWatch(page: Page): Promise<void> {
  return page.evaluate(() => {
    type K = { video: HTMLVideoElement; state: string; stalls: number; reconnecting: boolean; current: { id: string } | null };
    const w = window as unknown as { __ktv: K; __watch: Watch };
    const k = w.__ktv;
    const v = k.video;
    const watch: Watch = { samples: [], waiting: [], mediaErrors: [] };
    w.__watch = watch;
    v.addEventListener('waiting', () => watch.waiting.push({ at: performance.now(), t: v.currentTime, songId: k.current ? k.current.id : null }));
    v.addEventListener('error', () => watch.mediaErrors.push({ at: performance.now(), error: String(v.error?.message || v.error?.code), songId: k.current ? k.current.id : null }));
    window.setInterval(() => {
      const toast = document.getElementById('toast')!;
      watch.samples.push({
        at: performance.now(),
        t: v.currentTime,
        bufferedEnd: v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0,
        state: k.state,
        stalls: k.stalls,
        reconnecting: k.reconnecting,
        songId: k.current ? k.current.id : null,
        errorToast: !toast.hidden && toast.classList.contains('error') ? toast.textContent : null,
        reconnectBadge: !document.getElementById('badge-reconnect')!.hidden,
      });
    }, 100);
  });
}

function readWatch(page: Page): Promise<Watch> {
  return page.evaluate(() => (window as unknown as { __watch: Watch }).__watch);
}

async function now(page: Page): Promise<{ at: number; t: number; bufferedEnd: number; stalls: number; songId: string | null }> {
  return page.evaluate(() => {
    const k = (window as unknown as { __ktv: { video: HTMLVideoElement; stalls: number; current: { id: string } | null } }).__ktv;
    const v = k.video;
    return { at: performance.now(), t: v.currentTime, bufferedEnd: v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0, stalls: k.stalls, songId: k.current ? k.current.id : null };
  });
}

describe('room player through a storage node SIGKILL mid-song', () => {
  const cluster = new TestCluster('player-kill', CONFIG);
  const work = tempDir('player-kill-src');
  let streamer: Proc | undefined;
  let url = '';
  let session: BrowserSession | undefined;
  let manifest: SongManifest | undefined;
  let passed = false;

  before(async () => {
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    const config = defaultConfig();
    const file = join(work, 'song.mp4');
    await makeDemoSong(file, { title: SONG.title, durationS: SONG.durationS, vocalHz: SONG.vocalHz, backingHz: SONG.backingHz, layout: 'two-streams', width: 640, height: 360, videoBitsPerS: VIDEO_BITS_PER_S }, config.library.media);
    const tracker = new TrackerClient([cluster.trackerUrl], SECRET, 5000);
    const ingested = await ingestSong({ file, title: SONG.title, artist: SONG.artist, language: SONG.language }, { tracker, secret: SECRET, config, log: createLogger('player-kill', 'warn'), workDir: work });
    const res = await fetch(new URL(`/api/v1/songs/${ingested.id}`, cluster.trackerUrl));
    assert.equal(res.status, 200, 'the manifest is in the catalog');
    manifest = (await res.json()) as SongManifest;
    // The streamer gets its own config file: the cluster's plus a hot-range cache of ~one segment.
    const streamerConfig = join(cluster.root, 'streamer-config.json');
    writeFileSync(streamerConfig, JSON.stringify({ ...CONFIG, streamer: { cacheBytes: STREAMER_CACHE_BYTES } }));
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    streamer = cluster.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', cluster.trackerUrl, '--config', streamerConfig]);
    await waitFor('streamer health', async () => (await fetch(new URL('/health', url))).ok);
    session = await launchBrowser();
  });

  after(async () => {
    if (session && (!passed || process.env.KTV_TEST_VERBOSE)) process.stdout.write(`page log (last 40):\n${session.logs.slice(-40).join('\n')}\n`);
    if (session) await session.close();
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
    if (passed) rmSync(cluster.root, { recursive: true, force: true });
    else process.stdout.write(`cluster logs kept in ${cluster.root}/logs\n`);
  });

  test('the song plays to its end through the kill with no stall and no error, from the surviving replicas', async () => {
    assert.ok(session && streamer && manifest);
    const page = session.page;
    const video = manifest.renditions.find((r) => r.role === 'video');
    const vocal = manifest.renditions.find((r) => r.role === 'vocal');
    assert.ok(video && vocal, 'the manifest has a video and a 原唱 rendition');
    const durationS = manifest.durationS;

    // Where the video blob lives. Which of its replicas the streamer reads is decided below from
    // the streamer's own counters: the tracker ranks equal replicas by their disk's free bytes, and
    // all test disks share one filesystem, so its replica[0] changes with heartbeat timing.
    const located = await cluster.locate(video.blob);
    const holders = located.replicas.map((r) => r.nodeId);
    assert.ok(holders.length >= 2, `the video blob has ${holders.length} replicas`);

    // The box's link: a few times the song's rate, and no HTTP cache (the 公播 playback of the
    // same song before the choice must not leave the media in the browser).
    const songBytesPerS = (video.sizeBytes + vocal.sizeBytes) / durationS;
    const cdp = await session.context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });

    await page.goto(`${url}?autohide=0`);
    await page.waitForFunction(() => (window as unknown as { __ktv?: { state: string } }).__ktv?.state === 'idle', undefined, { timeout: UI_TIMEOUT_MS });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: Math.round(songBytesPerS * THROTTLE_X), uploadThroughput: -1 });
    await page.click('[data-tab="newest"]');
    await page.click(`#newest-songs button.song:has(.title:text-is("${SONG.title}"))`);
    await page.waitForFunction((id: string) => {
      const k = (window as unknown as { __ktv: { state: string; current: { id: string } | null } }).__ktv;
      return k.state === 'playing' && k.current?.id === id;
    }, manifest.id, { timeout: UI_TIMEOUT_MS });
    await startWatch(page);
    const streamerAtStart = await metricsText(url);
    await waitFor(`${PLAYED_BEFORE_KILL_S} s of playback`, async () => ((await now(page)).t >= PLAYED_BEFORE_KILL_S ? true : undefined), UI_TIMEOUT_MS, 50);

    // The victim: the holder of the video blob the streamer has been reading this song from (the
    // video is ~90% of the bytes; only this song plays and the cache holds about one segment).
    const streamerBefore = await metricsText(url);
    const readSinceStart = (id: string): number => metric(streamerBefore, 'ktv_streamer_upstream_bytes_total', { node: id }) - metric(streamerAtStart, 'ktv_streamer_upstream_bytes_total', { node: id });
    const victimId = [...holders].sort((a, b) => readSinceStart(b) - readSinceStart(a))[0]!;
    assert.ok(readSinceStart(victimId) > 0, `the streamer read from a holder of the video blob during playback: ${holders.map((id) => `${id} ${readSinceStart(id)} B`).join(', ')}`);
    const victim = cluster.nodes.find((x) => x.id === victimId) as NodeInfo;
    assert.ok(victim.proc, `${victimId} is one of ours`);
    const survivors = holders.filter((id) => id !== victimId);
    const trackerBefore = await metricsText(cluster.trackerUrl);
    const atKill = await now(page);
    const killedWallMs = Date.now();
    await cluster.procs.stop(victim.proc, 'SIGKILL');
    const killedAt = await now(page);

    // The room moves on by itself when the song ends (to 公播: the queue is empty).
    await waitFor('the song to end and the room to move on', async () => ((await now(page)).songId === null ? true : undefined), (durationS + 60) * 1000, 250);
    const watch = await readWatch(page);
    const streamerAfter = await metricsText(url);
    const trackerAfter = await metricsText(cluster.trackerUrl);

    const during = watch.samples.filter((s) => s.songId === manifest!.id);
    const afterKill = during.filter((s) => s.at >= killedAt.at);
    const lastT = Math.max(...during.map((s) => s.t));
    const stallsAtEnd = during.length ? during[during.length - 1]!.stalls : atKill.stalls;
    // `waiting` events of this song (the 公播 load that follows it is another song).
    const waitingAfterKill = watch.waiting.filter((w) => w.at >= killedAt.at && w.songId === manifest!.id && w.t < durationS - 0.5);
    const shownErrors = [...new Set(watch.samples.map((s) => s.errorToast).filter((x): x is string => !!x))];
    const reconnectShown = watch.samples.some((s) => s.reconnectBadge || s.reconnecting);
    const n = {
      failovers: metric(streamerAfter, 'ktv_streamer_failovers_total') - metric(streamerBefore, 'ktv_streamer_failovers_total'),
      upstreamErrorsVictim: metric(streamerAfter, 'ktv_streamer_upstream_errors_total', { node: victim.id }) - metric(streamerBefore, 'ktv_streamer_upstream_errors_total', { node: victim.id }),
      trackerReadFailuresVictim: metric(trackerAfter, 'ktv_tracker_read_failures_total', { node: victim.id }) - metric(trackerBefore, 'ktv_tracker_read_failures_total', { node: victim.id }),
      bytesFromSurvivorsAfterKill: survivors.reduce((a, id) => a + metric(streamerAfter, 'ktv_streamer_upstream_bytes_total', { node: id }) - metric(streamerBefore, 'ktv_streamer_upstream_bytes_total', { node: id }), 0),
    };
    // Which of this song's blobs the streamer failed over from the victim (its log names them).
    const roleOf = new Map<string, string>();
    for (const r of manifest.renditions) {
      roleOf.set(r.blob, `${r.role}.mp4`);
      if (r.playlistBlob) roleOf.set(r.playlistBlob, `${r.role}.m3u8`);
    }
    // Log lines from the kill to the song's last sample (the 公播 load after it reads too).
    const songEndWallMs = killedWallMs + ((during.length ? during[during.length - 1]!.at : killedAt.at) - killedAt.at) + 100;
    const failedOver = streamerFailovers(streamer.log(), victim.id, killedWallMs, songEndWallMs).map((blob) => roleOf.get(blob) ?? `other:${blob.slice(0, 8)}`);
    process.stdout.write(
      `player storage-node kill: SIGKILL ${victim.id} (the video blob's replica being read: ${(readSinceStart(victimId) / 1e6).toFixed(2)} MB from it in the ${PLAYED_BEFORE_KILL_S} s before; tracker's replica[0] ${holders[0]}; survivor ${survivors.join(',')}) at t=${atKill.t.toFixed(1)} s of ${durationS} s, ` +
        `buffered to ${atKill.bufferedEnd.toFixed(1)} s; playhead reached ${lastT.toFixed(1)} s; stalls ${stallsAtEnd} (before the kill ${atKill.stalls}); ` +
        `streamer failovers +${n.failovers}, upstream errors on ${victim.id} +${n.upstreamErrorsVictim}, tracker read failures on ${victim.id} +${n.trackerReadFailuresVictim}, ` +
        `failed over from ${victim.id} for [${failedOver.join(', ')}], ${(n.bytesFromSurvivorsAfterKill / 1e6).toFixed(2)} MB read from ${survivors.join(',')} after the kill; page throttled to ${((songBytesPerS * THROTTLE_X * 8) / 1e6).toFixed(2)} Mbit/s\n`,
    );

    // The kill matters: most of the song was still to be fetched through the streamer.
    assert.ok(atKill.bufferedEnd < durationS - 8, `only ${atKill.bufferedEnd.toFixed(1)} s of ${durationS} s were buffered at the kill`);
    // It played on, to the end, and the room moved on by itself.
    assert.ok(afterKill.length > 0 && afterKill.every((s) => s.state === 'playing'), `playing throughout after the kill: ${JSON.stringify(afterKill.find((s) => s.state !== 'playing'))}`);
    for (let i = 1; i < afterKill.length; i++) assert.ok(afterKill[i]!.t >= afterKill[i - 1]!.t, `the playhead never goes back: ${afterKill[i - 1]!.t} → ${afterKill[i]!.t}`);
    assert.ok(lastT >= durationS - 1, `the playhead reached ${lastT} s of ${durationS} s`);
    // No stall, no error, no reconnecting badge.
    assert.equal(stallsAtEnd, 0, '__ktv.stalls stays 0');
    assert.deepEqual(waitingAfterKill, [], 'no `waiting` event of the <video> after the kill');
    assert.deepEqual(watch.mediaErrors.filter((e) => e.songId === manifest!.id), [], 'no media error');
    assert.deepEqual(shownErrors, [], 'no error toast');
    assert.equal(reconnectShown, false, 'no 网络重连中 badge');
    // The killed node was being read, the streamer failed over from it, and the surviving replicas served the rest.
    assert.ok(n.failovers > 0 || n.trackerReadFailuresVictim > 0, `the streamer failed over from ${victim.id} (failovers +${n.failovers}, tracker read failures +${n.trackerReadFailuresVictim})`);
    assert.ok(failedOver.some((r) => !r.startsWith('other:')), `the streamer's log shows a failover from ${victim.id} for a blob of this song: [${failedOver.join(', ')}]`);
    assert.ok(n.bytesFromSurvivorsAfterKill > 0, 'media read from the surviving replicas after the kill');
    passed = true;
  });
});
