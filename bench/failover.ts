// Tracker failover time on a real ZooKeeper, and whether rooms notice.
//
//   node dist/bench/failover.js [--runs 10] [--session-ms 4000] [--rooms 4] [--json bench-results/failover.json]
//
// Two trackers (--zk), three storage nodes and a streamer given both trackers, one local
// ZooKeeper. Paced rooms (loadtest/room.ts) play a song through the streamer (1 MiB hot-range
// cache, so they keep reading storage) for the whole run. Each run SIGKILLs the leading tracker
// and measures kill → the other one leads, and kill → a placement through the tracker list is
// answered with the new epoch (serving writes); the killed tracker is restarted as a standby
// before the next run. Prints p50/max and the rooms' stalls; writes JSON.
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { PlacementResponse } from '../common/contracts.js';
import { RawHttpPool } from '../common/raw-http.js';
import { createLogger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { defaultConfig } from '../config/load.js';
import { ingestSong } from '../library/ingest/ingest.js';
import { makeDemoSong } from '../library/media/demo.js';
import { playSong, type RoomResult } from '../loadtest/room.js';
import { SECRET } from '../test/helpers/cluster.js';
import { HA_FAST_CONFIG, HaCluster } from '../test/helpers/ha-cluster.js';
import { freePort, tempDir, waitFor } from '../test/helpers/procs.js';
import { argString, argValue, percentile, writeJson } from './lib.js';

const log = (line: string): void => void process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const runs = argValue(argv, 'runs', 10);
  const sessionMs = argValue(argv, 'session-ms', 4000);
  const roomCount = argValue(argv, 'rooms', 4);
  const jsonFile = argString(argv, 'json', 'bench-results/failover.json');
  const c = new HaCluster('bench-failover', { ...HA_FAST_CONFIG, ha: { sessionTimeoutMs: sessionMs }, streamer: { cacheBytes: 1024 * 1024 }, library: { catalogWaitMs: 20_000 } });
  const client = new RawHttpPool({ maxSocketsPerHost: 64, idleTimeoutMs: 4000 });
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  const work = tempDir('bench-failover-src');
  const leadMs: number[] = [];
  const writesMs: number[] = [];
  const epochs: number[] = [];
  let plays: RoomResult[] = [];
  try {
    await c.startWithLeader(2, 3);
    const config = defaultConfig();
    const file = join(work, 'song.mp4');
    await makeDemoSong(file, { title: 'Failover', durationS: 30, vocalHz: 440, backingHz: 330, layout: 'two-streams', width: 640, height: 360, videoBitsPerS: 1_500_000 }, config.library.media);
    const songId = (await ingestSong({ file, title: 'Failover', artist: 'Bench', language: 'en' }, { tracker: new TrackerClient(c.trackers.map((t) => t.url), SECRET, 5000), secret: SECRET, config, log: createLogger('bench', 'warn'), workDir: work })).id;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    c.procs.start('streamer', ['streamer', '--port', String(port), '--tracker', c.trackerList, '--config', c.configFile, '--zk', c.zk!.connectString]);
    await waitFor('streamer health', async () => (await fetch(`${base}/health`)).ok);

    const rooms = Array.from({ length: roomCount }, async (_, r) => {
      await new Promise((res) => setTimeout(res, r * 2000));
      const out: RoomResult[] = [];
      while (!stop.signal.aborted) out.push(await playSong({ base, songId, client, maxBufferS: 6, requestTimeoutMs: 5000, signal: stop.signal }));
      return out;
    });
    await new Promise((res) => setTimeout(res, roomCount * 2000 + 3000));

    for (let run = 1; run <= runs; run++) {
      const leader = (await waitFor('one leader', () => c.soleLeader(), 30_000))!;
      const others = c.trackers.filter((t) => t !== leader.tracker);
      const killedAt = performance.now();
      await c.procs.stop(leader.tracker.proc!, 'SIGKILL');
      const next = await waitFor('the standby leads', () => c.soleLeader(others), 30_000, 20);
      const lead = performance.now() - killedAt;
      const client = new TrackerClient(c.trackers.map((t) => t.url), SECRET, 2000);
      await waitFor('writes served', async () => (await client.call<PlacementResponse>('/internal/v1/placement', { body: { size: 1000, excludeNodes: [] } })).epoch === next.epoch, 30_000, 20);
      const writes = performance.now() - killedAt;
      leadMs.push(lead);
      writesMs.push(writes);
      epochs.push(next.epoch);
      log(`run ${run}: ${leader.tracker.id} killed; ${next.tracker.id} leads after ${lead.toFixed(0)} ms, serves writes after ${writes.toFixed(0)} ms (epoch ${leader.epoch} → ${next.epoch})`);
      await c.startTracker(leader.tracker);
      // Back as a standby, its index hot again, before the next kill.
      await waitFor('the restarted tracker stands by', async () => {
        const h = await c.health(leader.tracker);
        return h && !h.leader && h.ha?.trackersOnline?.length === 2 ? true : undefined;
      }, 30_000, 100);
      await new Promise((res) => setTimeout(res, 3000));
    }
    stop.abort();
    plays = (await Promise.all(rooms)).flat();
  } finally {
    stop.abort();
    client.destroy();
    await c.close();
  }
  const sortedLead = [...leadMs].sort((a, b) => a - b);
  const sortedWrites = [...writesMs].sort((a, b) => a - b);
  const stalls = plays.reduce((n, p) => n + p.stalls.length + (p.stalledAtEnd ? 1 : 0), 0);
  const summary = {
    runs,
    sessionTimeoutMs: sessionMs,
    killToLeaderMs: { p50: Math.round(percentile(sortedLead, 50)), max: Math.round(sortedLead[sortedLead.length - 1] ?? NaN) },
    killToWritesMs: { p50: Math.round(percentile(sortedWrites, 50)), max: Math.round(sortedWrites[sortedWrites.length - 1] ?? NaN) },
    epochs,
    rooms: roomCount,
    plays: plays.length,
    stalls,
    roomGaveUp: plays.reduce((n, p) => n + p.errors.filter((e) => e.startsWith('gave up')).length, 0),
  };
  log(`\nfailover over ${runs} runs (session timeout ${sessionMs} ms): kill → leader p50 ${summary.killToLeaderMs.p50} ms, max ${summary.killToLeaderMs.max} ms; kill → serving writes p50 ${summary.killToWritesMs.p50} ms, max ${summary.killToWritesMs.max} ms; ${roomCount} rooms, ${plays.length} plays, ${stalls} stalls`);
  writeJson(jsonFile, { benchmark: 'failover', at: new Date().toISOString(), machine: { cpus: cpus().length }, ...summary, leadMs: leadMs.map(Math.round), writesMs: writesMs.map(Math.round) });
  log(`wrote ${jsonFile}`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
