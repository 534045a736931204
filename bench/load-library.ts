// A library of real songs for the stream load benchmark, built once and kept: `count` songs of
// `durationS` seconds cut from the 4-minute 1080p H.264 45 Mbit/s source of bench/ingest.js
// (.cache/bench-media/, generated when missing) and ingested into a persistent cluster (a tracker
// and 2 storage nodes × 1 disk, 2 replicas, so every song is on both nodes) under
// .cache/loadtest-cluster-v1/. A later call restarts that cluster and ingests only what is
// missing.
//
//   const lib = await openLoadLibrary({ count: 10, durationS: 150 });
//   … lib.cluster.trackerUrl, lib.songIds …
//   await lib.cluster.close();
//
// Songs are cut with ffmpeg stream copy at distinct offsets, each with its own `title` tag, so
// every cut file (and so every song id: the source hash) differs; the cut files are deleted as
// soon as they are ingested (≈0.85 GB each at 150 s). Offsets are on the source's keyframes
// (every 4 s): a stream-copy cut elsewhere starts the video at the keyframe before the audio, the
// renditions' segments no longer line up, and ingest falls back to a (low-rate) transcode.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocateResponse, SongManifest, SongSummary } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig, loadConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { SECRET, TestCluster } from '../test/helpers/cluster.js';
import { tempDir } from '../test/helpers/procs.js';

export interface LoadLibraryOptions {
  count: number;
  durationS: number;
  /** Delete the cluster root first and build everything anew. */
  fresh?: boolean;
  log?: (line: string) => void;
  /** Where the cluster lives; default `.cache/loadtest-cluster-v1` in the project. */
  root?: string;
  /** Merged over this module's cluster config, one top-level section at a time (`{ streamer: {…} }`). */
  config?: Record<string, unknown>;
}

export interface LoadLibrary {
  /** Started: tracker + storage nodes, all alive, ready to serve. The caller closes it. */
  cluster: TestCluster;
  /** The `count` songs, in title order Load 01, Load 02, … */
  songIds: string[];
  nodeDisks: Array<{ nodeId: string; dirs: string[] }>;
  /** Wall seconds spent cutting and ingesting in this call (0 when all were there). */
  ingestSeconds: number;
}

const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
export const DEFAULT_LOAD_ROOT = join(PROJECT, '.cache', 'loadtest-cluster-v1');
const SOURCE_S = 240;
const SOURCE_BITS_PER_S = 45_000_000;
export const LOAD_SOURCE = join(PROJECT, '.cache', 'bench-media', `h264-1080p-${SOURCE_S}s-${SOURCE_BITS_PER_S}.mp4`);
const NODES = ['node1', 'node2'];
/** A cut's duration may exceed the asked one by up to a GOP (stream copy starts on a keyframe). */
const DURATION_SLACK_S = 3;
const GB = 1e9;

/**
 * Quick heartbeats; no repair churn (a 1 h grace) and no scrubbing during the load; a node is
 * declared dead only after 5 s of silence (a machine at 100% CPU can miss a few heartbeats). Disk
 * probes count as slow only past 10 s: with 2 nodes and 2 replicas one `suspect` disk (a 0.5 s
 * probe fsync behind a GB of dirty pages is enough) stops all placement, i.e. the ingest.
 */
export const LOAD_CLUSTER_CONFIG: Record<string, Record<string, unknown>> = {
  storageNode: { diskFreeFloorBytes: 0, scrubBytesPerSec: 0, slowFloorMs: 10_000, probeTimeoutMs: 20_000 },
  tracker: { nodeDeadAfterMs: 5000, repairGraceMs: 3_600_000, placementFreeFloorBytes: 0 },
  library: { catalogWaitMs: 30_000 },
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeSections(base: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? { ...(out[k] as Record<string, unknown>), ...v } : v;
  return out;
}

export function loadTitle(k: number): string {
  return `Load ${String(k).padStart(2, '0')}`;
}

/**
 * Where song k (1-based) starts in the source: a keyframe (a multiple of `gopS`), 7 keyframes on
 * from the previous song's, wrapping within the source; distinct for every k while the number of
 * possible starts allows (23 for 150 s songs: 0, 4, …, 88 s).
 */
export function cutOffsetS(k: number, durationS: number, gopS: number): number {
  const slots = Math.floor((SOURCE_S - durationS) / gopS + 1e-9) + 1;
  const step = slots % 7 === 0 ? 1 : 7;
  return ((k * step) % slots) * gopS;
}

/** The source's keyframe interval (its first two keyframes), seconds. */
function keyframeIntervalS(ffprobe: string): number {
  const r = spawnSync(ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-skip_frame', 'nokey', '-read_intervals', '%+20', '-show_entries', 'frame=pts_time', '-of', 'csv=p=0', LOAD_SOURCE], { encoding: 'utf8', timeout: 60_000 });
  const times = (r.stdout ?? '').split(/[\s,]+/).filter(Boolean).map(Number).filter(Number.isFinite);
  const gop = times.length >= 2 ? times[1]! - times[0]! : NaN;
  if (!(gop > 0)) throw new Error(`could not read the keyframe interval of ${LOAD_SOURCE}: ${r.stderr || r.error?.message || 'no keyframes'}`);
  return Math.round(gop * 1000) / 1000;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function run(cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${cmd}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
    });
  });
}

/** Song k cut from the source by stream copy: `-ss OFFSET -i SRC -t DUR -map 0 -c copy`, own title tag. */
async function cutSong(ffmpeg: string, offsetS: number, durationS: number, title: string, out: string): Promise<void> {
  await run(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-y', '-ss', String(offsetS), '-i', LOAD_SOURCE, '-t', String(durationS), '-map', '0', '-c', 'copy', '-metadata', `title=${title}`, out], 300_000);
}

/** SIGKILLs the cluster's processes (by pid) if this process exits with them still running. */
function killOnExit(cluster: TestCluster): void {
  process.once('exit', () => {
    for (const child of [cluster.tracker?.child, ...cluster.nodes.map((n) => n.proc?.child)]) {
      if (child && child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  });
}

/** Waits until both nodes are alive and the tracker's blob counts stop moving (inventory reports in). */
async function settle(cluster: TestCluster): Promise<void> {
  await cluster.waitAlive(NODES.length);
  const deadline = Date.now() + 30_000;
  let last = '';
  let since = Date.now();
  while (Date.now() < deadline) {
    const v = await cluster.cluster();
    const sig = JSON.stringify([v.blobs.total, v.songs, v.nodes.map((n) => [n.state, n.disks.map((d) => d.blobs)])]);
    if (sig !== last) {
      last = sig;
      since = Date.now();
    } else if (Date.now() - since >= 2000) return;
    await sleep(250);
  }
}

async function catalogLoadSongs(trackerUrl: string): Promise<SongSummary[]> {
  const answer = await rpc<{ songs: SongSummary[] }>(trackerUrl, '/api/v1/songs?q=Load&limit=200', { timeoutMs: 10_000 });
  return answer.songs;
}

function liveReplicas(l: LocateResponse): number {
  return new Set(l.replicas.filter((r) => r.nodeState === 'alive' && r.diskState !== 'masked').map((r) => r.nodeId)).size;
}

/** Every song has a master playlist, video + vocal + backing renditions with playlists, every blob `replicas` live copies. */
async function verify(cluster: TestCluster, songIds: string[], replicas: number, log: (line: string) => void): Promise<void> {
  const blobs: Array<{ id: string; what: string }> = [];
  for (const id of songIds) {
    const m = await rpc<SongManifest>(cluster.trackerUrl, `/api/v1/songs/${id}`, { timeoutMs: 10_000 });
    const roles = m.renditions.map((r) => r.role).sort();
    if (!m.masterPlaylist) throw new Error(`song ${id} (${m.title}) has no master playlist`);
    if (JSON.stringify(roles) !== JSON.stringify(['backing', 'video', 'vocal'])) {
      throw new Error(`song ${id} (${m.title}) has renditions ${roles.join(', ')}; expected video, vocal and backing`);
    }
    for (const r of m.renditions) {
      if (!r.playlistBlob) throw new Error(`song ${id} (${m.title}): the ${r.role} rendition has no playlist blob`);
      blobs.push({ id: r.blob, what: `${m.title} ${r.role}` }, { id: r.playlistBlob, what: `${m.title} ${r.role} playlist` });
    }
  }
  const deadline = Date.now() + 60_000;
  let short: string[] = [];
  let logged = false;
  for (;;) {
    short = [];
    for (const b of blobs) {
      let live = 0;
      try {
        live = liveReplicas(await cluster.locate(b.id));
      } catch {
        /* unknown to the tracker yet: 0 */
      }
      if (live < replicas) short.push(`${b.what} (${b.id.slice(0, 12)}…): ${live} live`);
    }
    if (short.length === 0) return;
    if (Date.now() > deadline) break;
    if (!logged) log(`waiting for ${short.length} under-replicated blob(s): ${short.slice(0, 3).join('; ')}…`);
    logged = true;
    await sleep(1000);
  }
  throw new Error(`${short.length} blob(s) have fewer than ${replicas} live replicas after 60 s: ${short.slice(0, 6).join('; ')}`);
}

export async function openLoadLibrary(o: LoadLibraryOptions): Promise<LoadLibrary> {
  const log = o.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const root = resolve(o.root ?? DEFAULT_LOAD_ROOT);
  if (!Number.isInteger(o.count) || o.count < 1 || o.count > 99) throw new Error(`count must be an integer from 1 to 99 (got ${o.count})`);
  if (!(o.durationS > 0 && o.durationS <= SOURCE_S)) throw new Error(`durationS must be in (0, ${SOURCE_S}] (got ${o.durationS})`);

  const baseConfig = defaultConfig();
  if (!existsSync(LOAD_SOURCE)) {
    mkdirSync(join(PROJECT, '.cache', 'bench-media'), { recursive: true });
    log(`generating ${LOAD_SOURCE} (once)…`);
    await makeDemoSong(LOAD_SOURCE, {
      title: 'Bench remux', durationS: SOURCE_S, vocalHz: 440, backingHz: 330, layout: 'two-streams', width: 1920, height: 1080, videoBitsPerS: SOURCE_BITS_PER_S,
    }, { ...baseConfig.library.media, packageTimeoutMsPerMediaS: 60_000 });
  }

  if (o.fresh) rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const clusterConfig = mergeSections(LOAD_CLUSTER_CONFIG, o.config);
  const cluster = new TestCluster('loadtest', clusterConfig, root);
  killOnExit(cluster);
  const work = tempDir('load-library');
  try {
    const config = loadConfig({ file: cluster.configFile });
    const replicas = config.tracker.replicas;
    if (replicas > NODES.length) throw new Error(`tracker.replicas ${replicas} > ${NODES.length} storage nodes`);
    await cluster.startTracker();
    for (const id of NODES) await cluster.addNode(id, 1);
    await settle(cluster);

    // What is there already: exact titles (a search for "Load" also finds e.g. "Download").
    const byTitle = new Map<string, SongSummary>();
    for (const s of await catalogLoadSongs(cluster.trackerUrl)) if (/^Load \d\d$/.test(s.title) && !byTitle.has(s.title)) byTitle.set(s.title, s);
    const songIds: string[] = [];
    const missing: number[] = [];
    for (let k = 1; k <= o.count; k++) {
      const s = byTitle.get(loadTitle(k));
      if (!s) {
        missing.push(k);
        songIds.push('');
        continue;
      }
      if (Math.abs(s.durationS - o.durationS) > DURATION_SLACK_S) {
        throw new Error(`${root} holds "${s.title}" of ${s.durationS.toFixed(1)} s, not ${o.durationS} s: pass fresh: true (or another root) to rebuild`);
      }
      songIds.push(s.id);
    }
    log(`load library at ${root}: ${o.count - missing.length} of ${o.count} songs there${missing.length ? `, ingesting ${missing.length}` : ''}`);

    let ingestSeconds = 0;
    if (missing.length > 0) {
      // Room for what is left: each song stored `replicas` times, plus one cut and one packaged copy at a time.
      const songBytes = (statSync(LOAD_SOURCE).size * o.durationS) / SOURCE_S;
      const needBytes = songBytes * (missing.length * replicas + 2) + GB;
      const fs = statfsSync(root);
      const freeBytes = fs.bavail * fs.bsize;
      if (freeBytes < needBytes) throw new Error(`${missing.length} songs need ≈${(needBytes / GB).toFixed(1)} GB free at ${root}; ${(freeBytes / GB).toFixed(1)} GB are`);

      const gopS = keyframeIntervalS(config.library.media.ffprobePath);
      const tracker = new TrackerClient([cluster.trackerUrl], SECRET, 10_000);
      const ingestLog = createLogger('load-library', 'warn');
      const t0 = performance.now();
      for (const k of missing) {
        const title = loadTitle(k);
        const offsetS = cutOffsetS(k, o.durationS, gopS);
        const cut = join(work, `load-${String(k).padStart(2, '0')}.mp4`);
        const s0 = performance.now();
        try {
          await cutSong(config.library.media.ffmpegPath, offsetS, o.durationS, title, cut);
          const cutS = (performance.now() - s0) / 1000;
          const r = await ingestSong(
            { file: cut, title, artist: 'Bench', language: 'en' },
            { tracker, secret: SECRET, config, log: ingestLog, workDir: work },
          );
          songIds[k - 1] = r.id;
          // A transcode would be a different (lower-rate) stream than the 45 Mbit/s one wanted.
          if (r.videoMode !== 'remux') throw new Error(`${title} (cut at ${offsetS} s) was transcoded, not remuxed: ${r.notes.join('; ')}; pass fresh: true once fixed`);
          const s = (performance.now() - s0) / 1000;
          log(`ingesting ${title} (cut at ${offsetS} s)… ${s.toFixed(1)} s (cut ${cutS.toFixed(1)} s; ${r.durationS.toFixed(1)} s of media, ${(r.storedBytes / GB).toFixed(2)} GB${r.existing ? ', already stored' : ''}) → ${r.id}`);
        } finally {
          rmSync(cut, { force: true });
        }
      }
      ingestSeconds = (performance.now() - t0) / 1000;
    }

    await verify(cluster, songIds, replicas, log);
    writeFileSync(join(root, 'load-library.json'), JSON.stringify({ count: o.count, durationS: o.durationS, songIds, source: LOAD_SOURCE, at: new Date().toISOString() }, null, 2) + '\n');
    return {
      cluster,
      songIds,
      nodeDisks: cluster.nodes.map((n) => ({ nodeId: n.id, dirs: [...n.disks] })),
      ingestSeconds: Math.round(ingestSeconds * 10) / 10,
    };
  } catch (error) {
    await cluster.close();
    throw error;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
