// Benchmark: the tracker's blob index at 1,000,000 blobs.
//
//   node dist/bench/tracker-index.js [--blobs 1000000] [--nodes 3] [--locates 20000] [--json FILE]
//
// 1. Rebuild: a real tracker process starts empty; this program speaks the storage-node
//    protocol for N nodes (signed heartbeats, then full inventories in batches) holding
//    `blobs` blobs × 2 replicas. Real storage nodes with a million files each would spend most
//    of the run creating files; the tracker's side of the protocol is identical. We time from
//    the first inventory batch until GET /api/v1/cluster counts every blob.
// 2. Locate: signed GET /internal/v1/blobs/{id} for random ids, one at a time, from one client
//    over keep-alive HTTP: p50/p99 of the full round trip (signature check, lookup, JSON).
// 3. The same rebuild and 200,000 locates inside this process (TrackerCore), without HTTP.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { ClusterView, HeartbeatResponse, InventoryEntry } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { signRequest } from '../common/signing.js';
import { SECRET, TestCluster } from '../test/helpers/cluster.js';
import { argString, argValue, cpuSeconds, percentile, writeJson } from './lib.js';

const BATCH = 20_000;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const blobCount = argValue(argv, 'blobs', 1_000_000);
  const nodeCount = argValue(argv, 'nodes', 3);
  const locates = argValue(argv, 'locates', 20_000);
  const jsonFile = argString(argv, 'json', 'bench-results/tracker-index.json');

  const cluster = new TestCluster('bench-index', { tracker: { nodeDeadAfterMs: 60_000, repairGraceMs: 3_600_000 } });
  try {
    await cluster.startTracker();
    const trackerPid = cluster.tracker!.pid;
    const ids: string[] = new Array(blobCount);
    const all = randomBytes(32 * blobCount);
    for (let i = 0; i < blobCount; i++) ids[i] = all.toString('hex', i * 32, i * 32 + 32);

    // Blob i lives on nodes i % N and (i + 1) % N, disk by parity: 2 replicas on distinct nodes.
    const nodes = Array.from({ length: nodeCount }, (_, n) => ({ id: `bench${n + 1}`, url: `http://127.0.0.1:${40000 + n}/`, bootId: `boot-${n}` }));
    const perNode: InventoryEntry[][][] = nodes.map(() => [[], []]);
    for (let i = 0; i < blobCount; i++) {
      const size = 1_000_000 + (i % 1000);
      perNode[i % nodeCount]![i & 1]!.push([ids[i]!, size, 'data']);
      perNode[(i + 1) % nodeCount]![(i >> 1) & 1]!.push([ids[i]!, size, 'data']);
    }
    const heartbeat = (n: number) =>
      rpc<HeartbeatResponse>(cluster.trackerUrl, '/internal/v1/heartbeat', {
        secret: SECRET,
        timeoutMs: 30_000,
        body: {
          nodeId: nodes[n]!.id,
          url: nodes[n]!.url,
          changeSeq: 0,
          bootId: nodes[n]!.bootId,
          disks: [0, 1].map((d) => ({ id: `d${d}`, state: 'healthy', reason: '', freeBytes: 1e12, totalBytes: 2e12, blobs: perNode[n]![d]!.length, usedBytes: 0 })),
        },
      });
    for (let n = 0; n < nodeCount; n++) await heartbeat(n);
    const keepAlive = setInterval(() => {
      for (let n = 0; n < nodeCount; n++) heartbeat(n).catch(() => undefined);
    }, 1000);

    const cpu0 = cpuSeconds(trackerPid);
    const t0 = performance.now();
    await Promise.all(
      nodes.map(async (node, n) => {
        const entries = perNode[n]!.flatMap((list, d) => list.map((e) => ({ d, e })));
        const parts = Math.ceil(entries.length / BATCH);
        for (let p = 0; p < parts; p++) {
          const slice = entries.slice(p * BATCH, (p + 1) * BATCH);
          await rpc(cluster.trackerUrl, '/internal/v1/inventory', {
            secret: SECRET,
            timeoutMs: 60_000,
            body: {
              nodeId: node.id,
              bootId: node.bootId,
              reportId: `r-${n}`,
              changeSeq: 0,
              part: p,
              final: p === parts - 1,
              disks: [0, 1].map((d) => ({ id: `d${d}`, blobs: slice.filter((x) => x.d === d).map((x) => x.e) })),
            },
          });
        }
      }),
    );
    let view: ClusterView;
    for (;;) {
      view = await rpc<ClusterView>(cluster.trackerUrl, '/api/v1/cluster', { timeoutMs: 60_000 });
      if (view.blobs.total >= blobCount) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const rebuildS = (performance.now() - t0) / 1000;
    const rebuildCpuS = cpuSeconds(trackerPid) - cpu0;
    const rssBytes = Number(/VmRSS:\s+(\d+)/.exec((await import('node:fs')).readFileSync(`/proc/${trackerPid}/status`, 'utf8'))![1]) * 1024;
    process.stdout.write(`rebuild: ${blobCount} blobs × 2 replicas from ${nodeCount} nodes in ${rebuildS.toFixed(2)} s (tracker CPU ${rebuildCpuS.toFixed(1)} s, RSS ${(rssBytes / 2 ** 20).toFixed(0)} MiB)\n`);

    // Locate latency, one request at a time over keep-alive.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const lat: number[] = [];
    let errors = 0;
    const base = new URL(cluster.trackerUrl);
    for (let i = 0; i < locates; i++) {
      const id = ids[Math.floor(Math.random() * blobCount)]!;
      const path = `/internal/v1/blobs/${id}`;
      const t = performance.now();
      const status = await new Promise<number>((resolve) => {
        const req = http.request({ host: base.hostname, port: base.port, path, agent, headers: signRequest(SECRET, 'GET', path, undefined) }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.end();
      });
      lat.push(performance.now() - t);
      if (status !== 200) errors++;
    }
    agent.destroy();
    clearInterval(keepAlive);
    lat.sort((a, b) => a - b);

    // The same index in this process: the tracker's own cost without HTTP or a second process.
    const { TrackerCore } = await import('../tracker/index.js');
    const { defaultConfig } = await import('../config/load.js');
    const { createLogger } = await import('../common/log.js');
    const core = new TrackerCore({ config: defaultConfig(), dataDir: cluster.root, catalogPath: ':memory:', secret: SECRET, log: createLogger('bench', 'error'), expectedBlobs: blobCount });
    const t1 = performance.now();
    for (let n = 0; n < nodeCount; n++) {
      core.heartbeat({
        nodeId: nodes[n]!.id, url: nodes[n]!.url, changeSeq: 0, bootId: nodes[n]!.bootId,
        disks: [0, 1].map((d) => ({ id: `d${d}`, state: 'healthy' as const, reason: '', freeBytes: 1e12, totalBytes: 2e12, blobs: perNode[n]![d]!.length, usedBytes: 0 })),
      });
      const entries = perNode[n]!.flatMap((list, d) => list.map((e) => ({ d, e })));
      const parts = Math.ceil(entries.length / BATCH);
      for (let p = 0; p < parts; p++) {
        const slice = entries.slice(p * BATCH, (p + 1) * BATCH);
        core.inventory({
          nodeId: nodes[n]!.id, bootId: nodes[n]!.bootId, reportId: `r-${n}`, changeSeq: 0, part: p, final: p === parts - 1,
          disks: [0, 1].map((d) => ({ id: `d${d}`, blobs: slice.filter((x) => x.d === d).map((x) => x.e) })),
        });
      }
    }
    const inProcessRebuildS = (performance.now() - t1) / 1000;
    const inLat: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      const id = ids[Math.floor(Math.random() * blobCount)]!;
      const t = performance.now();
      const found = core.locate(id);
      inLat.push(performance.now() - t);
      if (!found) errors++;
    }
    inLat.sort((a, b) => a - b);
    await core.close();
    process.stdout.write(`in-process: rebuild ${inProcessRebuildS.toFixed(2)} s, locate p50 ${(percentile(inLat, 50) * 1000).toFixed(1)} µs, p99 ${(percentile(inLat, 99) * 1000).toFixed(1)} µs\n`);
    const summary = {
      benchmark: 'tracker-index',
      blobs: blobCount,
      replicas: 2,
      nodes: nodeCount,
      rebuildSeconds: Number(rebuildS.toFixed(2)),
      rebuildTrackerCpuSeconds: Number(rebuildCpuS.toFixed(1)),
      trackerRssMiB: Math.round(rssBytes / 2 ** 20),
      locates,
      locateErrors: errors,
      inProcessRebuildSeconds: Number(inProcessRebuildS.toFixed(2)),
      locateInProcessUs: { p50: Number((percentile(inLat, 50) * 1000).toFixed(1)), p99: Number((percentile(inLat, 99) * 1000).toFixed(1)) },
      locateHttpMs: { p50: Number(percentile(lat, 50).toFixed(3)), p99: Number(percentile(lat, 99).toFixed(3)), max: Number(lat[lat.length - 1]!.toFixed(3)) },
      at: new Date().toISOString(),
    };
    process.stdout.write(`locate over HTTP (${locates} sequential, ${errors} errors): p50 ${summary.locateHttpMs.p50} ms, p99 ${summary.locateHttpMs.p99} ms\n`);
    process.stdout.write(JSON.stringify(summary) + '\n');
    writeJson(jsonFile, summary);
  } finally {
    await cluster.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`tracker-index: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
