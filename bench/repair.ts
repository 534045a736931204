// Repair under load: how fast a dead node's blobs are copied back to full strength, with and
// without 20 rooms playing 45 Mbit/s through a streamer, and whether any room stalled; and how
// long a vanished disk takes to be masked.
//
//   node dist/bench/repair.js [--blobs 48] [--blob-mib 32] [--rooms 20] [--json bench-results/repair.json]
//
// One cluster on this machine: a tracker, 3 storage nodes × 2 disks (one file system), a streamer
// with a 64 MiB hot-range cache, the rooms (loadtest/room.ts, paced on a real-time clock, started
// a second apart so they sit at different places in the song). The song is the 4-minute 1080p
// 45 Mbit/s source of bench/ingest.js (.cache/bench-media/, generated once) or, when absent, a
// 60 s one generated here. Each phase writes a fresh batch of random blobs (2 replicas), SIGKILLs
// one node, and times the copies (tracker repair counters) until nothing is under-replicated; the
// node is then restarted (its copies come back as extras, which are kept). Phases:
//   1. no rooms, unthrottled budget      2. rooms, unthrottled budget
//   3. rooms, the default business-hours budget (what a venue runs at 9 pm)
// Then scrubbing: the rooms play 60 s with the scrubber off, then 60 s with it re-hashing at
// --scrub-mib MiB/s per disk (all 6 disks at once): its measured rate and the rooms' segment
// download times and stalls side by side.
import { setMaxListeners } from 'node:events';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ClusterView } from '../common/contracts.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { playSong, type RoomResult } from '../loadtest/room.js';
import { SECRET, TestCluster, type NodeInfo } from '../test/helpers/cluster.js';
import { freePort, tempDir, waitFor } from '../test/helpers/procs.js';
import { argString, argValue, cpuSeconds, percentile, writeJson } from './lib.js';
import { RawHttpPool } from '../common/raw-http.js';

const MIB = 1024 * 1024;
const log = (line: string): void => void process.stdout.write(`${line}\n`);

interface Phase {
  name: string;
  rooms: number;
  budget: 'unthrottled' | 'business';
}

function clusterConfig(budget: Phase['budget'], scrubBytesPerSec = 0): Record<string, unknown> {
  const t = defaultConfig().tracker;
  const unthrottled = 8 * 1024 * MIB;
  return {
    // Scrubbing is off except in the scrub phases (it would blur the repair figures).
    storageNode: { heartbeatIntervalMs: 200, diskFreeFloorBytes: 0, diskCheckIntervalMs: 500, scrubBytesPerSec, scrubPeriodMs: 1000 },
    tracker: {
      nodeDeadAfterMs: 1500,
      repairGraceMs: 1000,
      repairNewBlobGraceMs: 1000,
      repairIntervalMs: 200,
      placementFreeFloorBytes: 0,
      maintenanceWindow: '',
      repairClusterBytesPerSec: budget === 'unthrottled' ? unthrottled : t.repairClusterBytesPerSec,
      repairNodeBytesPerSec: budget === 'unthrottled' ? unthrottled : t.repairNodeBytesPerSec,
    },
    streamer: { cacheBytes: 64 * MIB },
    library: { catalogWaitMs: 30_000 },
  };
}

/** Rooms playing the song over and over (each from its own start, a second apart) until `signal`. */
function startRooms(count: number, play: (room: number) => Promise<RoomResult>, signal: AbortSignal): Promise<RoomResult[]> {
  const rooms = Array.from({ length: count }, async (_, r) => {
    await new Promise((res) => setTimeout(res, r * 1000));
    const out: RoomResult[] = [];
    while (!signal.aborted) out.push(await play(r));
    return out;
  });
  return Promise.all(rooms).then((all) => all.flat());
}

/** What the rooms saw: plays, stalls, errors, segment download time over segment duration. */
function roomFigures(plays: RoomResult[]): Record<string, number> {
  const downloads = plays.flatMap((p) => p.segments.map((x) => x.downloadMs / (x.durationS * 1000))).sort((a, b) => a - b);
  return {
    plays: plays.length,
    stalls: plays.reduce((n, p) => n + p.stalls.length + (p.stalledAtEnd ? 1 : 0), 0),
    stallS: Math.round(plays.reduce((n, p) => n + p.stallMs, 0)) / 1000,
    roomErrors: plays.reduce((n, p) => n + p.errors.length, 0),
    segmentDownloadOverDurationP50: Math.round(percentile(downloads, 50) * 1000) / 1000,
    segmentDownloadOverDurationP99: Math.round(percentile(downloads, 99) * 1000) / 1000,
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const blobCount = argValue(argv, 'blobs', 48);
  const blobMib = argValue(argv, 'blob-mib', 32);
  const roomCount = argValue(argv, 'rooms', 20);
  const jsonFile = argString(argv, 'json', 'bench-results/repair.json');
  const config = defaultConfig();

  const cacheDir = resolve('.cache/bench-media');
  mkdirSync(cacheDir, { recursive: true });
  let source = join(cacheDir, 'h264-1080p-240s-45000000.mp4');
  if (!existsSync(source)) {
    source = join(cacheDir, 'h264-1080p-60s-45000000.mp4');
    if (!existsSync(source)) {
      log(`generating ${source} (once)…`);
      await makeDemoSong(source, { title: 'Bench repair', durationS: 60, vocalHz: 440, backingHz: 330, layout: 'two-streams', width: 1920, height: 1080, videoBitsPerS: 45_000_000 }, { ...config.library.media, packageTimeoutMsPerMediaS: 60_000 });
    }
  }

  const cluster = new TestCluster('bench-repair', clusterConfig('unthrottled'));
  const client = new RawHttpPool({ maxSocketsPerHost: 4 * roomCount, idleTimeoutMs: 4000 });
  const results: Array<Record<string, unknown>> = [];
  const work = tempDir('bench-repair-work');
  try {
    await cluster.startTracker();
    for (const id of ['node1', 'node2', 'node3']) await cluster.addNode(id, 2);
    await cluster.waitAlive(3);
    log(`ingesting ${source}…`);
    const song = await ingestSong({ file: source, title: 'Bench repair', artist: 'Bench', language: 'en' }, { tracker: new TrackerClient([cluster.trackerUrl], SECRET, 10_000), secret: SECRET, config, log: createLogger('bench', 'warn'), workDir: work });
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const streamer = cluster.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', cluster.trackerUrl, '--config', cluster.configFile]);
    await waitFor('streamer health', async () => (await fetch(`${base}/health`)).ok);

    // ---- fault → mask: a disk directory removed under a running node ----
    const victimDisk = cluster.nodes[2]!.disks[1]!;
    const diskIds = async (): Promise<Map<string, string>> => new Map((await cluster.cluster()).nodes.find((n) => n.id === 'node3')!.disks.map((d) => [d.id, d.state]));
    const before = await diskIds();
    const t0 = performance.now();
    rmSync(victimDisk, { recursive: true, force: true });
    const maskedId = await waitFor('the removed disk masked', async () => {
      for (const [id, state] of await diskIds()) if (state === 'masked' && before.get(id) !== 'masked') return id;
      return undefined;
    }, 30_000, 50);
    const maskMs = performance.now() - t0;
    log(`disk directory removed → masked at the tracker: ${maskMs.toFixed(0)} ms (disk ${maskedId})`);
    await waitFor('repaired after the disk loss', async () => ((await cluster.cluster()).blobs.underReplicated === 0 ? true : undefined), 300_000, 250);
    mkdirSync(victimDisk, { recursive: true }); // an empty replacement disk for the rest of the run
    results.push({ phase: 'disk removed', faultToMaskMs: Math.round(maskMs) });

    const phases: Phase[] = [
      { name: 'no rooms, unthrottled', rooms: 0, budget: 'unthrottled' },
      { name: `${roomCount} rooms, unthrottled`, rooms: roomCount, budget: 'unthrottled' },
      { name: `${roomCount} rooms, business-hours budget`, rooms: roomCount, budget: 'business' },
    ];
    let victimIndex = 0;
    let budgetNow: Phase['budget'] = 'unthrottled';
    for (const phase of phases) {
      if (phase.budget !== budgetNow) {
        writeFileSync(cluster.configFile, JSON.stringify(clusterConfig(phase.budget)));
        await cluster.procs.stop(cluster.tracker!);
        await cluster.startTracker();
        await cluster.waitAlive(3);
        budgetNow = phase.budget;
      }
      // A fresh batch of random blobs, 2 replicas each.
      log(`[${phase.name}] writing ${blobCount} × ${blobMib} MiB…`);
      for (let i = 0; i < blobCount; i++) await cluster.writeBlob(randomBytes(blobMib * MIB));
      await waitFor('batch indexed', async () => ((await cluster.cluster()).blobs.underReplicated === 0 ? true : undefined), 120_000, 250);

      const victim: NodeInfo = cluster.nodes[victimIndex++ % cluster.nodes.length]!;
      const stop = new AbortController();
      setMaxListeners(0, stop.signal); // every room waits on it
      const rooms = startRooms(phase.rooms, (r) => playSong({ base, songId: song.id, client, maxBufferS: 30, signal: stop.signal, toggleAtS: r % 3 === 0 ? 20 : undefined, playS: 90 }), stop.signal);
      if (phase.rooms > 0) await new Promise((res) => setTimeout(res, phase.rooms * 1000 + 5000));
      const v0: ClusterView = await cluster.cluster();
      const cpu0 = [cluster.tracker!.pid, ...cluster.nodes.filter((n) => n !== victim).map((n) => n.proc!.pid), streamer.pid].map(cpuSeconds);
      const start = performance.now();
      await cluster.procs.stop(victim.proc!, 'SIGKILL');
      await waitFor('the node seen dead', async () => ((await cluster.cluster()).nodes.find((n) => n.id === victim.id)?.state === 'dead' ? true : undefined), 30_000, 100);
      const rates: number[] = [];
      const v1 = await waitFor('repair finished', async () => {
        const v = await cluster.cluster();
        if (v.repair.rateBytesPerSec !== undefined) rates.push(v.repair.rateBytesPerSec);
        return v.blobs.underReplicated === 0 && v.repair.inFlight === 0 ? v : undefined;
      }, 900_000, 500);
      const seconds = (performance.now() - start) / 1000;
      const cpu1 = [cluster.tracker!.pid, ...cluster.nodes.filter((n) => n !== victim).map((n) => n.proc!.pid), streamer.pid].map(cpuSeconds);
      stop.abort();
      const plays = await rooms;
      const copies = v1.repair.done - v0.repair.done;
      const copiedBytes = v1.repair.copiedBytes !== undefined && v0.repair.copiedBytes !== undefined ? v1.repair.copiedBytes - v0.repair.copiedBytes : NaN;
      const r = {
        phase: phase.name,
        rooms: phase.rooms,
        budget: phase.budget,
        killed: victim.id,
        copies,
        copiedMiB: Math.round(copiedBytes / MIB),
        seconds: Math.round(seconds * 10) / 10,
        // Includes the dead-node detection (1.5 s) and the grace (1 s).
        throughputMiBps: Math.round((copiedBytes / MIB / seconds) * 10) / 10,
        ...roomFigures(plays),
        cpuSecondsTrackerNodesStreamer: Math.round(cpu1.reduce((a, b, i) => a + b - cpu0[i]!, 0) * 10) / 10,
      };
      results.push(r);
      log(JSON.stringify(r));
      await cluster.startNode(victim);
      await cluster.waitAlive(3);
    }

    // ---- scrubbing: its rate, and what it costs the rooms ----
    const scrubRate = argValue(argv, 'scrub-mib', 64) * MIB;
    for (const rate of [0, scrubRate]) {
      writeFileSync(cluster.configFile, JSON.stringify(clusterConfig('business', rate)));
      for (const n of cluster.nodes) {
        await cluster.procs.stop(n.proc!);
        await cluster.startNode(n);
      }
      await cluster.waitAlive(3);
      const scrubbed = async (): Promise<number> => (await cluster.cluster()).nodes.reduce((s, n) => s + n.disks.reduce((t, d) => t + (d.scrub?.bytesVerified ?? 0), 0), 0);
      const stop = new AbortController();
      setMaxListeners(0, stop.signal); // every room waits on it
      const rooms = startRooms(roomCount, () => playSong({ base, songId: song.id, client, maxBufferS: 30, signal: stop.signal, playS: 90 }), stop.signal);
      await new Promise((res) => setTimeout(res, roomCount * 1000 + 5000));
      const s0 = await scrubbed();
      const t0 = performance.now();
      const cpu0 = cluster.nodes.map((n) => cpuSeconds(n.proc!.pid));
      await new Promise((res) => setTimeout(res, argValue(argv, 'scrub-s', 60) * 1000));
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = cluster.nodes.map((n) => cpuSeconds(n.proc!.pid));
      const s1 = await scrubbed();
      stop.abort();
      const plays = await rooms;
      const r = {
        phase: rate === 0 ? `${roomCount} rooms, scrub off` : `${roomCount} rooms, scrub ${rate / MIB} MiB/s per disk`,
        rooms: roomCount,
        scrubConfiguredMiBpsPerDisk: rate / MIB,
        scrubMeasuredMiBps: Math.round(((s1 - s0) / MIB / seconds) * 10) / 10,
        seconds: Math.round(seconds),
        ...roomFigures(plays),
        nodeCpuSeconds: Math.round(cpu1.reduce((a, b, i) => a + b - cpu0[i]!, 0) * 10) / 10,
      };
      results.push(r);
      log(JSON.stringify(r));
    }
  } finally {
    client.destroy();
    await cluster.close();
    rmSync(work, { recursive: true, force: true });
  }
  log('\nphase                                   copies  MiB    s      MiB/s  stalls  seg p99/dur');
  for (const r of results) {
    if (!('copies' in r)) continue;
    log(`${String(r.phase).padEnd(40)}${String(r.copies).padStart(6)}${String(r.copiedMiB).padStart(6)}${String(r.seconds).padStart(7)}${String(r.throughputMiBps).padStart(9)}${String(r.stalls).padStart(8)}${String(r.segmentDownloadOverDurationP99).padStart(12)}`);
  }
  for (const r of results) if ('scrubMeasuredMiBps' in r) log(`${String(r.phase).padEnd(40)} scrubbed ${r.scrubMeasuredMiBps} MiB/s; stalls ${r.stalls}; segment download/duration p50 ${r.segmentDownloadOverDurationP50} p99 ${r.segmentDownloadOverDurationP99}; node CPU ${r.nodeCpuSeconds} s`);
  writeJson(jsonFile, { benchmark: 'repair', at: new Date().toISOString(), machine: { cpus: (await import('node:os')).cpus().length }, results });
  log(`wrote ${jsonFile}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
