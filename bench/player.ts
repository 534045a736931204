// Benchmark: the room player in Debian's Chromium against a real `ktv streamer` process, a real
// tracker and 3 storage nodes × 2 disks, songs made by ffmpeg and ingested in-process.
//
//   node dist/bench/player.js [--plays 20] [--toggles 10] [--json FILE]
//
// 1. Time to first frame: from 公播, a song is chosen in the menu (click) and the player's own
//    measure (`__ktv.ttff`, click event → requestVideoFrameCallback of the first frame) is read;
//    then 切歌 back to 公播 and the next play. Songs cycle over a few 20 s ones. The streamer has
//    its default cache; the browser's HTTP cache is off (DevTools Protocol) so every play goes to
//    the streamer. A play counts as "cold" when the streamer's cache missed during it (a storage
//    read was on the path).
// 2. 原唱/伴唱 toggle latency over N toggles: `__ktv.toggleLatencyMs` (key press → the other
//    rendition buffered over the playhead) and the audible latency (key press → an AnalyserNode
//    on the <video> hears the other tone, 3 samples 4 ms apart in a row).
// 3. A storage node SIGKILLed during playback: a fresh streamer with a 1 MiB cache, the page's
//    link throttled to 2.5× the song's bit rate (else hls.js has the whole song before the kill),
//    the node holding the video replica the streamer is reading (its per-node counters) is killed
//    after 5 s of playback; the song plays to its end; stalls, failovers, bytes from survivors.
// Prints a summary and one JSON line; writes bench-results/player.json.
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { CDPSession, Page } from 'playwright-core';
import type { SongManifest } from '../common/contracts.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { launchBrowser, waitForTone as waitForToneShared, type BrowserSession } from '../test/helpers/browser.js';
import { SECRET, TestCluster } from '../test/helpers/cluster.js';
import { freePort, tempDir, waitFor, type Proc } from '../test/helpers/procs.js';
import { argString, argValue, percentile, writeJson } from './lib.js';
import { metricSum as metric } from '../test/helpers/metrics.js';

const CONFIG = {
  storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0 },
  tracker: { nodeDeadAfterMs: 3000, repairGraceMs: 60_000, repairIntervalMs: 500, placementFreeFloorBytes: 0 },
  library: { catalogWaitMs: 15_000 },
};

interface Spec {
  title: string;
  artist: string;
  language: string;
  durationS: number;
  vocalHz: number;
  backingHz: number;
  videoBitsPerS?: number;
}

/** Songs for the time-to-first-frame plays (distinct titles: rows are clicked by title). */
const PLAY_SONGS: Spec[] = [
  { title: '月亮代表我的心', artist: '邓丽君', language: 'zh', durationS: 20, vocalHz: 440, backingHz: 330 },
  { title: '甜蜜蜜', artist: '邓丽君', language: 'zh', durationS: 20, vocalHz: 523, backingHz: 349 },
  { title: 'Yesterday', artist: 'The Beatles', language: 'en', durationS: 20, vocalHz: 587, backingHz: 392 },
  { title: '喜欢你', artist: 'Beyond', language: 'yue', durationS: 20, vocalHz: 659, backingHz: 415 },
];
/** The toggle and storage-kill song: long enough for both, and a real bit rate (a test picture compresses to nothing). */
const LONG_SONG: Spec = { title: '后来', artist: '刘若英', language: 'zh', durationS: 40, vocalHz: 440, backingHz: 330, videoBitsPerS: 1_500_000 };
const KILL_STREAMER_CACHE_BYTES = 1024 * 1024;
const THROTTLE_X = 2.5;
const PLAYED_BEFORE_KILL_S = 5;
/** Analyser bins are 48000/2048 ≈ 23 Hz wide. */
const TONE_TOLERANCE_HZ = 30;
const UI_TIMEOUT_MS = 30_000;

type Ktv = {
  state: string;
  idle: boolean;
  vocal: string;
  stalls: number;
  reconnecting: boolean;
  current: { id: string } | null;
  playing: { id: string } | null;
  ttff: Array<{ songId: string; ms: number; reason: string }>;
  toggleLatencyMs: number[];
  lastToggleAtMs: number | null;
  video: HTMLVideoElement;
};

const log = (line: string): void => void process.stdout.write(`${line}\n`);
const round1 = (x: number): number => Math.round(x * 10) / 10;

function stats(values: number[]): { n: number; p50: number; p99: number; max: number; min: number } {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: round1(percentile(s, 50)), p99: round1(percentile(s, 99)), max: round1(s[s.length - 1] ?? NaN), min: round1(s[0] ?? NaN) };
}

async function metricsText(baseUrl: string): Promise<string> {
  const res = await fetch(new URL('/metrics', baseUrl));
  if (res.status !== 200) throw new Error(`GET ${baseUrl}metrics: ${res.status}`);
  return res.text();
}

/** Waits in the page until `body` (an expression over `k` = window.__ktv and `arg`) is true. */
async function until(page: Page, what: string, body: string, arg?: unknown, timeoutMs = UI_TIMEOUT_MS): Promise<void> {
  try {
    await page.waitForFunction(new Function('arg', `const k = window.__ktv; return !!k && (${body});`) as (a: unknown) => boolean, arg, { timeout: timeoutMs, polling: 20 });
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message.split('\n')[0]}`);
  }
}

const ktvRead = <T>(page: Page, fn: (k: Ktv) => T): Promise<T> =>
  page.evaluate(`(${fn.toString()})(window.__ktv)`) as Promise<T>;

async function startStreamer(cluster: TestCluster, name: string, configFile: string): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const proc = cluster.procs.start(name, ['streamer', '--port', String(port), '--tracker', cluster.trackerUrl, '--config', configFile]);
  await waitFor(`${name} health`, async () => (await fetch(new URL('/health', url))).ok);
  return { proc, url };
}

async function openRoom(page: Page, url: string): Promise<void> {
  await page.goto(`${url}?autohide=0`);
  await until(page, 'the room starts in 公播', "k.state === 'idle' && !!k.playing");
  await page.click('[data-tab="newest"]');
  await page.waitForSelector('#newest-songs button.song');
}

// ---- 1. time to first frame -----------------------------------------------------------------

interface Play {
  title: string;
  ms: number;
  streamerCacheMisses: number;
}

async function timeToFirstFrame(page: Page, streamerUrl: string, plays: number): Promise<Play[]> {
  const out: Play[] = [];
  for (let i = 0; i < plays; i++) {
    const song = PLAY_SONGS[i % PLAY_SONGS.length]!;
    // A steady 公播 first: its song on screen and buffered to its end, so no load of it is in
    // flight (the streamer's miss counter below is then this play's).
    await until(page, '公播 playing, fully buffered', "k.idle && k.state === 'idle' && !!k.playing && k.video.currentTime > 0.2 && k.video.buffered.length > 0 && k.video.buffered.end(k.video.buffered.length - 1) >= k.video.duration - 0.5");
    await new Promise((r) => setTimeout(r, 500));
    const chosenBefore = await ktvRead(page, (k) => k.ttff.filter((t) => t.reason === 'chosen').length);
    const before = await metricsText(streamerUrl);
    await page.click(`#newest-songs button.song:has(.title:text-is("${song.title}"))`);
    await until(page, `first frame of ${song.title}`, "k.ttff.filter((t) => t.reason === 'chosen').length === arg", chosenBefore + 1);
    const after = await metricsText(streamerUrl);
    const ttff = await ktvRead(page, (k) => k.ttff.filter((t) => t.reason === 'chosen').pop()!);
    out.push({ title: song.title, ms: ttff.ms, streamerCacheMisses: metric(after, 'ktv_streamer_cache_misses_total') - metric(before, 'ktv_streamer_cache_misses_total') });
    await until(page, `${song.title} playing`, "k.state === 'playing' && !!k.current");
    // 切歌 with an empty queue: back to 公播.
    await page.click('#ctl-skip');
    await until(page, 'back to 公播', 'k.idle && !k.current');
  }
  return out;
}

// ---- 2. 原唱/伴唱 toggles ---------------------------------------------------------------------

function waitForTone(page: Page, hz: number, what: string): Promise<void> {
  return waitForToneShared(page, hz, what, UI_TIMEOUT_MS, TONE_TOLERANCE_HZ);
}

interface Toggle {
  to: string;
  bufferedMs: number;
  audibleMs: number | null;
  atS: number;
}

async function vocalToggles(page: Page, count: number): Promise<Toggle[]> {
  const s = LONG_SONG;
  await until(page, '公播 playing', "k.idle && !!k.playing && k.video.currentTime > 0.2");
  await page.click(`#newest-songs button.song:has(.title:text-is("${s.title}"))`);
  await until(page, `${s.title} playing`, "k.state === 'playing' && !!k.current");
  await page.keyboard.press('Escape'); // V is a global key outside the menu
  await until(page, 'menu closed', '!k.menuOpen');
  const out: Toggle[] = [];
  for (let i = 0; i < count; i++) {
    const { vocal, t, duration, n } = await ktvRead(page, (k) => ({ vocal: k.vocal, t: k.video.currentTime, duration: k.video.duration, n: k.toggleLatencyMs.length }));
    if (t > duration - 6) {
      await page.keyboard.press('r'); // 重唱: from the start, same rendition
      await until(page, 'replayed', "k.state === 'playing' && k.video.currentTime > 0.5 && k.video.currentTime < 5");
    }
    const fromHz = vocal === 'vocal' ? s.vocalHz : s.backingHz;
    const toHz = vocal === 'vocal' ? s.backingHz : s.vocalHz;
    await waitForTone(page, fromHz, `${vocal} before toggle ${i + 1}`);
    await new Promise((r) => setTimeout(r, 300));
    await page.evaluate(() => {
      const w = window as unknown as { __probe: { dominant(): number }; __watch: { samples: Array<[number, number]>; timer?: number } };
      const t0 = performance.now();
      w.__watch = { samples: [] };
      w.__watch.timer = window.setInterval(() => {
        w.__watch.samples.push([performance.now(), w.__probe.dominant()]);
        if (performance.now() - t0 > 5000) window.clearInterval(w.__watch.timer);
      }, 4);
    });
    await page.keyboard.press('v');
    await waitForTone(page, toHz, `toggle ${i + 1}`);
    await until(page, `toggle ${i + 1} latency recorded`, 'k.toggleLatencyMs.length === arg', n + 1);
    // The poll above may see the new tone before the in-page watcher has its 3 samples in a row.
    await page
      .waitForFunction((hz: number) => {
        const w = window as unknown as { __watch: { samples: Array<[number, number]> }; __ktv: { lastToggleAtMs: number } };
        const s = w.__watch.samples.filter((x) => x[0] >= w.__ktv.lastToggleAtMs);
        for (let j = 0; j + 2 < s.length; j++) if ([0, 1, 2].every((d) => Math.abs(s[j + d]![1] - hz) < 30)) return true;
        return false;
      }, toHz, { timeout: 3000, polling: 20 })
      .catch(() => undefined);
    const m = await page.evaluate((hz: number) => {
      const w = window as unknown as { __watch: { samples: Array<[number, number]>; timer?: number }; __ktv: { lastToggleAtMs: number; toggleLatencyMs: number[]; vocal: string; video: HTMLVideoElement } };
      window.clearInterval(w.__watch.timer);
      const at = w.__ktv.lastToggleAtMs;
      const samples = w.__watch.samples;
      let heardAt: number | null = null;
      for (let j = 0; j + 2 < samples.length; j++) {
        if (samples[j]![0] >= at && [0, 1, 2].every((d) => Math.abs(samples[j + d]![1] - hz) < 30)) {
          heardAt = samples[j]![0];
          break;
        }
      }
      const debug = heardAt === null ? { at, n: samples.length, first: samples[0]?.[0], last: samples[samples.length - 1]?.[0], tail: samples.filter((x) => x[0] >= at).slice(0, 400).map((x) => Math.round(x[1])).join(',') } : undefined;
      return { to: w.__ktv.vocal, bufferedMs: w.__ktv.toggleLatencyMs[w.__ktv.toggleLatencyMs.length - 1]!, audibleMs: heardAt === null ? null : Math.round(heardAt - at), atS: w.__ktv.video.currentTime, debug };
    }, toHz);
    if (m.debug) process.stderr.write(`toggle ${i + 1}: not heard in the samples ${JSON.stringify(m.debug)}\n`);
    out.push({ to: m.to, bufferedMs: m.bufferedMs, audibleMs: m.audibleMs, atS: round1(m.atS) });
    await new Promise((r) => setTimeout(r, 700));
  }
  return out;
}

// ---- 3. storage node SIGKILL during playback ---------------------------------------------------

interface KillResult {
  victim: string;
  survivors: string[];
  readFromVictimBeforeKillMB: number;
  killAtS: number;
  bufferedAtKillS: number;
  durationS: number;
  playheadReachedS: number;
  movedOnByItself: boolean;
  stalls: number;
  waitingEvents: number;
  errorToasts: string[];
  reconnectingShown: boolean;
  streamerFailovers: number;
  upstreamErrorsOnVictim: number;
  trackerReadFailuresOnVictim: number;
  failedOverBlobs: string[];
  readFromSurvivorsAfterKillMB: number;
  throttleMbitPerS: number;
}

async function storageKill(cluster: TestCluster, session: BrowserSession, cdp: CDPSession, streamer: { proc: Proc; url: string }, manifest: SongManifest): Promise<KillResult> {
  const page = session.page;
  const video = manifest.renditions.find((r) => r.role === 'video')!;
  const vocal = manifest.renditions.find((r) => r.role === 'vocal')!;
  const durationS = manifest.durationS;
  const holders = (await cluster.locate(video.blob)).replicas.map((r) => r.nodeId);
  const bytesPerS = ((video.sizeBytes + vocal.sizeBytes) / durationS) * THROTTLE_X;

  await openRoom(page, streamer.url);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: Math.round(bytesPerS), uploadThroughput: -1 });
  await page.click(`#newest-songs button.song:has(.title:text-is("${LONG_SONG.title}"))`);
  await until(page, 'the song plays', "k.state === 'playing' && k.current && k.current.id === arg", manifest.id);
  await page.evaluate(() => {
    type W = { samples: Array<{ at: number; t: number; state: string; stalls: number; songId: string | null; errorToast: string | null; reconnecting: boolean }>; waiting: Array<{ at: number; t: number; songId: string | null }> };
    const w = window as unknown as { __ktv: Ktv; __kw: W };
    const k = w.__ktv;
    const v = k.video;
    const kw: W = { samples: [], waiting: [] };
    w.__kw = kw;
    v.addEventListener('waiting', () => kw.waiting.push({ at: performance.now(), t: v.currentTime, songId: k.current ? k.current.id : null }));
    window.setInterval(() => {
      const toast = document.getElementById('toast')!;
      kw.samples.push({
        at: performance.now(),
        t: v.currentTime,
        state: k.state,
        stalls: k.stalls,
        songId: k.current ? k.current.id : null,
        errorToast: !toast.hidden && toast.classList.contains('error') ? toast.textContent : null,
        reconnecting: k.reconnecting || !document.getElementById('badge-reconnect')!.hidden,
      });
    }, 100);
  });
  const atStart = await metricsText(streamer.url);
  await until(page, `${PLAYED_BEFORE_KILL_S} s played`, 'k.video.currentTime >= arg', PLAYED_BEFORE_KILL_S);
  const before = await metricsText(streamer.url);
  const trackerBefore = await metricsText(cluster.trackerUrl);
  const readSince = (id: string): number => metric(before, 'ktv_streamer_upstream_bytes_total', { node: id }) - metric(atStart, 'ktv_streamer_upstream_bytes_total', { node: id });
  const victimId = [...holders].sort((a, b) => readSince(b) - readSince(a))[0]!;
  const victim = cluster.nodes.find((x) => x.id === victimId)!;
  const atKill = await ktvRead(page, (k) => ({ at: performance.now(), t: k.video.currentTime, bufferedEnd: k.video.buffered.length ? k.video.buffered.end(k.video.buffered.length - 1) : 0 }));
  const killedWallMs = Date.now();
  await cluster.procs.stop(victim.proc!, 'SIGKILL');
  await until(page, 'the song ends and the room moves on', '!k.current', undefined, (durationS + 60) * 1000);
  const after = await metricsText(streamer.url);
  const trackerAfter = await metricsText(cluster.trackerUrl);
  const kw = await page.evaluate(() => (window as unknown as { __kw: { samples: Array<{ at: number; t: number; state: string; stalls: number; songId: string | null; errorToast: string | null; reconnecting: boolean }>; waiting: Array<{ at: number; t: number; songId: string | null }> } }).__kw);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  const during = kw.samples.filter((x) => x.songId === manifest.id);
  const last = during[during.length - 1];
  const songEndWallMs = killedWallMs + ((last?.at ?? atKill.at) - atKill.at) + 100;
  const roleOf = new Map<string, string>();
  for (const r of manifest.renditions) {
    roleOf.set(r.blob, `${r.role}.mp4`);
    if (r.playlistBlob) roleOf.set(r.playlistBlob, `${r.role}.m3u8`);
  }
  const failedOverBlobs: string[] = [];
  for (const line of streamer.proc.log().split('\n')) {
    if (!line.includes('trying the next one')) continue;
    try {
      const e = JSON.parse(line) as { t: string; node: string; blob: string };
      const at = Date.parse(e.t);
      if (e.node === victimId && at >= killedWallMs && at <= songEndWallMs) failedOverBlobs.push(roleOf.get(e.blob) ?? `other:${e.blob.slice(0, 8)}`);
    } catch {
      /* not JSON */
    }
  }
  const diff = (name: string, labels: Record<string, string> = {}, a = before, b = after): number => metric(b, name, labels) - metric(a, name, labels);
  const survivors = holders.filter((id) => id !== victimId);
  return {
    victim: victimId,
    survivors,
    readFromVictimBeforeKillMB: Number((readSince(victimId) / 1e6).toFixed(2)),
    killAtS: round1(atKill.t),
    bufferedAtKillS: round1(atKill.bufferedEnd),
    durationS,
    playheadReachedS: round1(Math.max(...during.map((x) => x.t))),
    movedOnByItself: true,
    stalls: last?.stalls ?? -1,
    waitingEvents: kw.waiting.filter((x) => x.at >= atKill.at && x.songId === manifest.id && x.t < durationS - 0.5).length,
    errorToasts: [...new Set(kw.samples.map((x) => x.errorToast).filter((x): x is string => !!x))],
    reconnectingShown: kw.samples.some((x) => x.reconnecting),
    streamerFailovers: diff('ktv_streamer_failovers_total'),
    upstreamErrorsOnVictim: diff('ktv_streamer_upstream_errors_total', { node: victimId }),
    trackerReadFailuresOnVictim: diff('ktv_tracker_read_failures_total', { node: victimId }, trackerBefore, trackerAfter),
    failedOverBlobs,
    readFromSurvivorsAfterKillMB: Number((survivors.reduce((a, id) => a + diff('ktv_streamer_upstream_bytes_total', { node: id }), 0) / 1e6).toFixed(2)),
    throttleMbitPerS: round1((bytesPerS * 8) / 1e6),
  };
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const plays = argValue(argv, 'plays', 20);
  const toggles = argValue(argv, 'toggles', 10);
  const jsonFile = argString(argv, 'json', 'bench-results/player.json');

  const cluster = new TestCluster('bench-player', CONFIG);
  const work = tempDir('bench-player-src');
  let session: BrowserSession | undefined;
  let done = false;
  try {
    const t0 = Date.now();
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    const config = defaultConfig();
    const tracker = new TrackerClient([cluster.trackerUrl], SECRET, 5000);
    const manifests = new Map<string, SongManifest>();
    for (const [i, s] of [...PLAY_SONGS, LONG_SONG].entries()) {
      const file = join(work, `song-${i}.mp4`);
      await makeDemoSong(file, { title: s.title, durationS: s.durationS, vocalHz: s.vocalHz, backingHz: s.backingHz, layout: 'two-streams', width: 640, height: 360, videoBitsPerS: s.videoBitsPerS }, config.library.media);
      const r = await ingestSong({ file, title: s.title, artist: s.artist, language: s.language }, { tracker, secret: SECRET, config, log: createLogger('bench-player', 'warn'), workDir: work });
      manifests.set(s.title, (await (await fetch(new URL(`/api/v1/songs/${r.id}`, cluster.trackerUrl))).json()) as SongManifest);
    }
    log(`player: cluster up, ${manifests.size} songs (640x360) ingested in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const streamerA = await startStreamer(cluster, 'streamer-default', cluster.configFile);
    session = await launchBrowser();
    const page = session.page;
    const cdp = await session.context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });

    await openRoom(page, streamerA.url);
    const playList = await timeToFirstFrame(page, streamerA.url, plays);
    const ttff = stats(playList.map((p) => p.ms));
    const cold = playList.filter((p) => p.streamerCacheMisses > 0).map((p) => p.ms);
    const warm = playList.filter((p) => p.streamerCacheMisses === 0).map((p) => p.ms);
    log(`time to first frame (click → first frame, ${plays} plays from 公播): p50 ${ttff.p50} ms, p99 ${ttff.p99} ms, max ${ttff.max} ms, min ${ttff.min} ms`);
    log(`  plays with a streamer cache miss (storage read on the path): ${cold.length}${cold.length ? `, p50 ${stats(cold).p50} ms, max ${stats(cold).max} ms` : ''}; all from the streamer cache: ${warm.length}${warm.length ? `, p50 ${stats(warm).p50} ms, max ${stats(warm).max} ms` : ''}`);
    log(`  per play (ms): ${playList.map((p) => p.ms).join(' ')}`);

    const toggleList = await vocalToggles(page, toggles);
    const buffered = stats(toggleList.map((t) => t.bufferedMs));
    const heard = toggleList.map((t) => t.audibleMs).filter((x): x is number => x !== null);
    const audible = stats(heard);
    log(`原唱/伴唱 toggle (${toggleList.length} toggles, hls.nextAudioTrack): key → other rendition buffered (__ktv.toggleLatencyMs) p50 ${buffered.p50} ms, max ${buffered.max} ms; key → analyser hears the other tone p50 ${audible.p50} ms, max ${audible.max} ms (${heard.length}/${toggleList.length} heard)`);
    log(`  buffered (ms): ${toggleList.map((t) => t.bufferedMs).join(' ')}; audible (ms): ${toggleList.map((t) => t.audibleMs ?? '-').join(' ')}`);
    await cluster.procs.stop(streamerA.proc);

    const killConfig = join(cluster.root, 'streamer-small-cache.json');
    writeFileSync(killConfig, JSON.stringify({ ...CONFIG, streamer: { cacheBytes: KILL_STREAMER_CACHE_BYTES } }));
    const streamerB = await startStreamer(cluster, 'streamer-small-cache', killConfig);
    const kill = await storageKill(cluster, session, cdp, streamerB, manifests.get(LONG_SONG.title)!);
    log(
      `storage node SIGKILL mid-song: ${kill.victim} (serving the video; ${kill.readFromVictimBeforeKillMB} MB read from it before) killed at t=${kill.killAtS} s of ${kill.durationS} s with ${kill.bufferedAtKillS} s buffered ` +
        `(page link ${kill.throttleMbitPerS} Mbit/s, streamer cache 1 MiB); playhead reached ${kill.playheadReachedS} s; stalls ${kill.stalls}; waiting events ${kill.waitingEvents}; ` +
        `error toasts ${kill.errorToasts.length}; reconnecting shown ${kill.reconnectingShown}; streamer failovers ${kill.streamerFailovers} [${kill.failedOverBlobs.join(', ')}], ` +
        `tracker read failures on ${kill.victim} ${kill.trackerReadFailuresOnVictim}; ${kill.readFromSurvivorsAfterKillMB} MB read from ${kill.survivors.join(',')} after the kill`,
    );

    const summary = {
      benchmark: 'player',
      timeToFirstFrameMs: { ...ttff, coldPlays: cold.length, coldP50: cold.length ? stats(cold).p50 : null, warmP50: warm.length ? stats(warm).p50 : null, perPlay: playList },
      vocalToggle: {
        method: 'hls.nextAudioTrack',
        toggles: toggleList.length,
        bufferedMs: { p50: buffered.p50, max: buffered.max },
        audibleMs: { p50: audible.p50, max: audible.max, heard: heard.length },
        perToggle: toggleList,
        note: 'bufferedMs: key press → the other rendition buffered over the playhead (window.__ktv.toggleLatencyMs); audibleMs: key press → an AnalyserNode on the <video> hears the other tone',
      },
      storageKill: kill,
      setup: {
        songs: `${PLAY_SONGS.length} × ${PLAY_SONGS[0]!.durationS} s for the plays, 1 × ${LONG_SONG.durationS} s at ${LONG_SONG.videoBitsPerS! / 1e6} Mbit/s video for toggles and the kill; 640x360 H.264, two AAC roles`,
        browser: 'Debian chromium, headless, HTTP cache disabled',
        streamer: 'default config for plays and toggles; cacheBytes 1 MiB for the kill',
      },
      machine: `${os.cpus().length} cores, node ${process.version}`,
      at: new Date().toISOString(),
    };
    log(JSON.stringify(summary));
    writeJson(jsonFile, summary);
    done = true;
  } finally {
    if (session) await session.close();
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
    if (done) rmSync(cluster.root, { recursive: true, force: true });
    else process.stderr.write(`player bench: process logs kept in ${cluster.root}/logs\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`player bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
