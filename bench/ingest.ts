// Benchmark: ingest time and CPU seconds for a 4-minute song, on both packaging paths.
//
//   node dist/bench/ingest.js [--duration 240] [--bitrate 45000000] [--json FILE]
//
// 1. Remux path: a 1080p H.264 MP4 at --bitrate (default 45 Mbit/s, the product's stream rate)
//    with two AAC streams (原唱/伴唱): video stream-copied, audio re-encoded, ~1.35 GB stored twice.
// 2. Transcode path: a 1080p MPEG-2 .mpg with MP2 stereo, vocal on the left channel (a legacy
//    KTV source): video encoded to H.264 (libx264 veryfast), the channels split into two roles.
// Sources are generated once into .cache/bench-media/ (ignored by git). Each ingest runs in this
// process against a real tracker and 3 storage nodes; CPU seconds are ours plus ffmpeg's (reaped
// children, /proc/self/stat) plus the storage nodes' and the tracker's.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultConfig } from '../config/load.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { SECRET, TestCluster } from '../test/helpers/cluster.js';
import { tempDir } from '../test/helpers/procs.js';
import { argString, argValue, cpuSeconds, writeJson } from './lib.js';

const CLOCK_TICKS_PER_S = 100;

/** CPU seconds of this process and of its reaped children (ffmpeg runs). */
function selfAndChildrenCpuS(): { selfS: number; childrenS: number } {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { selfS: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S, childrenS: (Number(f[13]) + Number(f[14])) / CLOCK_TICKS_PER_S };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const durationS = argValue(argv, 'duration', 240);
  const bitrate = argValue(argv, 'bitrate', 45_000_000);
  const jsonFile = argString(argv, 'json', 'bench-results/ingest.json');
  const cacheDir = resolve('.cache/bench-media');
  mkdirSync(cacheDir, { recursive: true });
  const config = defaultConfig();

  const sources = [
    { path: 'remux', file: join(cacheDir, `h264-1080p-${durationS}s-${bitrate}.mp4`), layout: 'two-streams' as const },
    { path: 'transcode', file: join(cacheDir, `mpeg2-1080p-${durationS}s.mpg`), layout: 'legacy-lr' as const },
  ];
  for (const s of sources) {
    if (existsSync(s.file)) continue;
    process.stdout.write(`generating ${s.file} (once)…\n`);
    await makeDemoSong(s.file, {
      title: `Bench ${s.path}`, durationS, vocalHz: 440, backingHz: 330, layout: s.layout, width: 1920, height: 1080,
      ...(s.layout === 'two-streams' ? { videoBitsPerS: bitrate } : {}),
    }, { ...config.library.media, packageTimeoutMsPerMediaS: 60_000 });
  }

  const cluster = new TestCluster('bench-ingest', { tracker: { repairGraceMs: 3_600_000 } });
  const results: Array<Record<string, unknown>> = [];
  try {
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    const others = [cluster.tracker!.pid, ...cluster.nodes.map((n) => n.proc!.pid)];
    const workDir = tempDir('bench-ingest-work');
    for (const s of sources) {
      const cpu0 = selfAndChildrenCpuS();
      const others0 = others.map(cpuSeconds);
      const t0 = performance.now();
      const stages: Record<string, number> = {};
      let stage = '';
      let stageAt = t0;
      const r = await ingestSong(
        { file: s.file, title: `Bench ${s.path}`, artist: 'Bench', language: 'en', vocalChannel: s.layout === 'legacy-lr' ? 'left' : undefined },
        {
          tracker: new TrackerClient([cluster.trackerUrl], SECRET, config.rpcTimeoutMs), secret: SECRET, config, log: createLogger('bench', 'warn'), workDir,
          onProgress: (p) => {
            if (p.stage === stage) return;
            const now = performance.now();
            if (stage) stages[stage] = Number(((stages[stage] ?? 0) + (now - stageAt) / 1000).toFixed(1));
            stage = p.stage;
            stageAt = now;
          },
        },
      );
      const wallS = (performance.now() - t0) / 1000;
      const cpu1 = selfAndChildrenCpuS();
      const clusterCpuS = others.map(cpuSeconds).reduce((a, v, i) => a + v - others0[i]!, 0);
      const row = {
        path: s.path,
        songId: r.id,
        videoMode: r.videoMode,
        mediaSeconds: r.durationS,
        sourceBytes: statSync(s.file).size,
        storedBytes: r.storedBytes,
        wallSeconds: Number(wallS.toFixed(1)),
        realtimeFactor: Number((r.durationS / wallS).toFixed(2)),
        cpuSecondsIngest: Number((cpu1.selfS - cpu0.selfS).toFixed(1)),
        cpuSecondsFfmpeg: Number((cpu1.childrenS - cpu0.childrenS).toFixed(1)),
        cpuSecondsCluster: Number(clusterCpuS.toFixed(1)),
        stageSeconds: stages,
      };
      results.push(row);
      process.stdout.write(
        `${s.path}: ${r.durationS.toFixed(0)} s of 1080p in ${row.wallSeconds} s wall (${row.realtimeFactor}× real time); CPU s: ffmpeg ${row.cpuSecondsFfmpeg}, ingest ${row.cpuSecondsIngest}, storage+tracker ${row.cpuSecondsCluster}; stages ${JSON.stringify(stages)}\n`,
      );
    }
  } finally {
    await cluster.close();
  }
  const summary = { benchmark: 'ingest', machine: '2 cores, 24 GiB', bitrateBitsPerS: bitrate, results, at: new Date().toISOString() };
  process.stdout.write(JSON.stringify(summary) + '\n');
  writeJson(jsonFile, summary);
}

main().catch((error: unknown) => {
  process.stderr.write(`ingest bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
