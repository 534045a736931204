// Benchmark: stall-free 45 Mbit/s streams, our path against nginx, side by side, one run.
//
//   node dist/bench/stream.js [--songs 10] [--song-s 150] [--hold 30] [--settle 20] [--start 50]
//        [--step 50] [--max 1000] [--resolution 10] [--workers 2] [--cache-mib N] [--only ours|nginx] [--fresh]
//        [--json bench-results/stream.json]
//
// 1. Ours: the streamer (its own process) reading from 2 storage nodes through the tracker.
// 2. nginx (Debian's, started here on loopback, sendfile on) serving the very same packaged HLS
//    files (symlinks to the blob files on node1's disk) with the same URL layout.
// Same library (real 1080p H.264 at 45 Mbit/s, bench/load-library.ts, built once into .cache/),
// same load generator (`ktv loadtest --find-max`: same seed, Zipf curve, toggles, skips), all on
// this machine. Prints each side's largest stall-free level, its throughput, CPU per Gbit/s of
// the servers and of the generator, and the ratio ours/nginx; writes JSON.
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { runFindMax, type LoadReport } from '../loadtest/run.js';
import { formatTable, type LevelResult } from '../loadtest/report.js';
import { freePort, tempDir, waitFor } from '../test/helpers/procs.js';
import { argString, argValue, writeJson } from './lib.js';
import { openLoadLibrary } from './load-library.js';
import { exportHlsTree, startNginx } from './nginx.js';

const log = (line: string): void => void process.stdout.write(`${line}\n`);
const MIB = 1024 * 1024;

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Side {
  name: 'ours' | 'nginx';
  report: LoadReport;
  best?: LevelResult;
}

function sideSummary(s: Side): Record<string, unknown> {
  const b = s.best;
  return {
    server: s.name,
    maxStallFreeStreams: s.report.maxStallFreeStreams ?? 0,
    atMax: b
      ? {
          gbitPerS: b.gbitPerS,
          bytesPerS: b.bytesPerS,
          serverCpuPercent: b.serverCpuPercent,
          serverCoresPerGbit: b.serverCoresPerGbit,
          generatorCpuPercent: b.generatorCpuPercent,
          generatorCoresPerGbit: b.generatorCoresPerGbit,
          segmentDownloadMsP99: b.segmentDownloadMs.p99,
          startupMsP99: b.startupMs.p99,
        }
      : null,
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const songCount = argValue(argv, 'songs', 10);
  const songS = argValue(argv, 'song-s', 150);
  const only = argString(argv, 'only', '');
  const jsonFile = argString(argv, 'json', 'bench-results/stream.json');
  const run = {
    startStreams: argValue(argv, 'start', 50),
    stepStreams: argValue(argv, 'step', 50),
    maxStreams: argValue(argv, 'max', 1000),
    holdS: argValue(argv, 'hold', 30),
    settleS: argValue(argv, 'settle', 20),
    resolutionStreams: argValue(argv, 'resolution', 10),
  };
  const workers = argValue(argv, 'workers', 2);
  const cacheMiB = argValue(argv, 'cache-mib', 0);
  const load = {
    bitrateBitsPerS: 45e6,
    workers,
    zipfExponent: 1,
    toggleFraction: 0.3,
    skipFraction: 0.2,
    seed: 1,
    query: 'Load',
    progress: (line: string) => log(`  ${line}`),
    progressEveryMs: 5000,
  };

  const lib = await openLoadLibrary({ count: songCount, durationS: songS, fresh: argv.includes('--fresh'), log });
  const sides: Side[] = [];
  const work = tempDir('bench-stream');
  try {
    const c = lib.cluster;
    if (only !== 'nginx') {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const extra = cacheMiB > 0 ? ['--set', `streamer.cacheBytes=${cacheMiB * MIB}`] : [];
      const streamer = c.procs.start('bench-streamer', ['streamer', '--port', String(port), '--tracker', c.trackerUrl, '--config', c.configFile, ...extra]);
      await waitFor('streamer health', async () => (await fetch(`${url}/health`)).ok);
      const pids = [streamer.pid, c.tracker!.pid, ...c.nodes.map((n) => n.proc!.pid)];
      log(`ours: streamer ${url} (pid ${streamer.pid}) + tracker + ${c.nodes.length} storage nodes; CPU measured over pids ${pids.join(', ')}`);
      const report = await runFindMax({ ...load, target: url, serverPids: pids }, run);
      sides.push({ name: 'ours', report });
      await c.procs.stop(streamer);
    }
    if (only !== 'ours') {
      const root = join(work, 'www');
      await exportHlsTree({ trackerUrl: c.trackerUrl, songIds: lib.songIds, nodeDisks: lib.nodeDisks, outDir: root });
      const nginx = await startNginx({ root, workDir: join(work, 'nginx'), procs: c.procs });
      try {
        const pids = [nginx.pid, ...childPids(nginx.pid)];
        log(`nginx: ${nginx.url} (master ${nginx.pid}, workers ${childPids(nginx.pid).join(', ')}), sendfile on`);
        const report = await runFindMax({ ...load, target: nginx.url, serverPids: pids }, run);
        sides.push({ name: 'nginx', report });
      } finally {
        await nginx.stop();
      }
    }
  } finally {
    await lib.cluster.close();
  }

  for (const s of sides) s.best = s.report.levels.filter((l) => l.clean && l.streams === s.report.maxStallFreeStreams).pop();
  log('');
  for (const s of sides) {
    log(`== ${s.name}: max stall-free 45 Mbit/s streams = ${s.report.maxStallFreeStreams ?? 0}`);
    log(formatTable(s.report.levels));
  }
  const ours = sides.find((s) => s.name === 'ours');
  const nginx = sides.find((s) => s.name === 'nginx');
  const ratio = ours && nginx && (nginx.report.maxStallFreeStreams ?? 0) > 0 ? (ours.report.maxStallFreeStreams ?? 0) / nginx.report.maxStallFreeStreams! : null;
  log('');
  log('server  max streams  Gbit/s at max  server CPU%  server cores/Gbit  generator CPU%  generator cores/Gbit');
  for (const s of sides) {
    const b = s.best;
    log(
      `${s.name.padEnd(6)}  ${String(s.report.maxStallFreeStreams ?? 0).padStart(11)}  ${(b?.gbitPerS ?? 0).toFixed(2).padStart(13)}  ${(b?.serverCpuPercent ?? 0).toFixed(0).padStart(11)}  ${(b?.serverCoresPerGbit ?? 0).toFixed(3).padStart(17)}  ${(b?.generatorCpuPercent ?? 0).toFixed(0).padStart(14)}  ${(b?.generatorCoresPerGbit ?? 0).toFixed(3).padStart(20)}`,
    );
  }
  if (ratio !== null) log(`ratio ours/nginx (max stall-free streams): ${ratio.toFixed(2)}`);
  const summary = {
    benchmark: 'stream',
    machine: `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 1024 ** 3)} GiB, node ${process.version}`,
    library: { songs: songCount, songSeconds: songS, bitrateBitsPerS: 45e6, ingestSeconds: lib.ingestSeconds },
    load: { ...load, progress: undefined, ...run },
    sides: sides.map(sideSummary),
    ratioOursToNginx: ratio,
    reports: Object.fromEntries(sides.map((s) => [s.name, s.report])),
    at: new Date().toISOString(),
  };
  writeJson(jsonFile, summary);
  log(JSON.stringify({ benchmark: 'stream', sides: summary.sides, ratioOursToNginx: ratio }));
}

main().catch((error: unknown) => {
  process.stderr.write(`stream bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
