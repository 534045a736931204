// Tracker units without sockets: blob index, report protocol, liveness, placement, locate order,
// repair selection, pinyin keys. (HTTP: tracker-http.test.ts; search: tracker-catalog.test.ts.)
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { DiskState, FetchCommand, HeartbeatRequest, InventoryBatch } from '../common/contracts.js';
import { createLogger } from '../common/log.js';
import { toPinyin } from '../common/pinyin.js';
import { RepairScheduler } from '../tracker/repair/scheduler.js';
import { judgeBlob, locationCodes, retryDelayMs, scanIndex } from '../tracker/repair/scan.js';
import { BlobIndex } from '../tracker/topology/blobIndex.js';
import { deadForMs, nodeStateAt, replicaStatus } from '../tracker/topology/liveness.js';
import { rankReplicas } from '../tracker/topology/locate.js';
import { choosePlacement, type PlacementCandidate } from '../tracker/topology/placement.js';
import { decideChanges, heartbeatNeedsFullReport } from '../tracker/topology/sequence.js';
import { Topology } from '../tracker/topology/topology.js';
import { seededRandom } from '../loadtest/zipf.js';

const quiet = createLogger('test', 'error');
const blob = (name: string): string => createHash('sha256').update(name).digest('hex');

/** Deterministic rng (mulberry32, the load test's) so placement statistics are reproducible. */
const seeded = seededRandom;

const LIMITS = { inventoryReportIdleMs: 60_000, inventoryReportMaxBlobs: 1_000_000, changeBufferMaxEntries: 1000 };

/** The index's clock reads 0: every blob was first seen at time 0 of the test's fake clock. */
function makeTopology(manifests: string[] = []): Topology {
  return new Topology({ ...LIMITS, nodeDeadAfterMs: 5000, placementFreeFloorBytes: 0, now: () => 0 }, quiet, (id) => manifests.push(id));
}

function hb(nodeId: string, opts: { changeSeq?: number; bootId?: string; disks?: Array<[string, DiskState, number?]> } = {}): HeartbeatRequest {
  const disks = opts.disks ?? [['d1', 'healthy'], ['d2', 'healthy']];
  return {
    nodeId,
    url: `http://127.0.0.1:${7100 + Number(nodeId.replace(/\D/g, '') || 0)}/`,
    changeSeq: opts.changeSeq ?? 0,
    bootId: opts.bootId ?? 'boot1',
    disks: disks.map(([id, state, free]) => ({ id, state, reason: '', freeBytes: free ?? 1e12, totalBytes: 2e12, blobs: 0, usedBytes: 0 })),
  };
}

function inv(nodeId: string, part: number, final: boolean, blobs: Record<string, string[]>, o: { reportId?: string; changeSeq?: number; bootId?: string } = {}): InventoryBatch {
  return {
    nodeId,
    bootId: o.bootId ?? 'boot1',
    reportId: o.reportId ?? 'r1',
    changeSeq: o.changeSeq ?? 0,
    part,
    final,
    disks: Object.entries(blobs).map(([id, names]) => ({ id, blobs: names.map((n) => [blob(n), 100, n.startsWith('m') ? 'manifest' : 'data'] as [string, number, 'data' | 'manifest']) })),
  };
}

describe('blob index', () => {
  it('adds, finds, removes and survives growth and slot reuse', () => {
    const index = new BlobIndex(16);
    for (let i = 0; i < 5000; i++) index.addReplica(blob(`b${i}`), i, i % 7 === 0 ? 'manifest' : 'data', 1 + (i % 3));
    assert.equal(index.size, 5000);
    for (let i = 0; i < 5000; i += 2) assert.equal(index.removeReplica(blob(`b${i}`), 1 + (i % 3)), true);
    assert.equal(index.size, 2500);
    for (let i = 0; i < 5000; i++) {
      const slot = index.find(blob(`b${i}`));
      if (i % 2 === 0) assert.equal(slot, -1, `b${i} should be gone`);
      else {
        assert.ok(slot >= 0, `b${i} should be found`);
        assert.equal(index.sizeOf(slot), i);
        assert.equal(index.idOf(slot), blob(`b${i}`));
        assert.equal(index.kindOf(slot), i % 7 === 0 ? 'manifest' : 'data');
      }
    }
    // Freed slots are reused by new blobs, and lookups still find everything.
    for (let i = 0; i < 1000; i++) index.addReplica(blob(`n${i}`), 1, 'data', 9);
    for (let i = 1; i < 5000; i += 2) assert.ok(index.find(blob(`b${i}`)) >= 0);
    for (let i = 0; i < 1000; i++) assert.ok(index.find(blob(`n${i}`)) >= 0);
    assert.equal(index.find('zz'), -1);
  });

  it('agrees with a Map model under random adds and removes (hash table deletion, slot reuse, growth)', () => {
    const rng = seeded(9);
    const index = new BlobIndex(8);
    const model = new Map<string, Set<number>>();
    const names = Array.from({ length: 3000 }, (_, i) => blob(`r${i}`));
    for (let step = 0; step < 60_000; step++) {
      const id = names[Math.floor(rng() * names.length)]!;
      const loc = 1 + Math.floor(rng() * 6);
      if (rng() < 0.55) {
        index.addReplica(id, 5, 'data', loc);
        if (!model.has(id)) model.set(id, new Set());
        model.get(id)!.add(loc);
      } else {
        const had = model.get(id)?.has(loc) ?? false;
        assert.equal(index.removeReplica(id, loc), had);
        if (had) {
          model.get(id)!.delete(loc);
          if (model.get(id)!.size === 0) model.delete(id);
        }
      }
    }
    assert.equal(index.size, model.size);
    for (const id of names) {
      const slot = index.find(id);
      const want = model.get(id);
      if (!want) assert.equal(slot, -1);
      else {
        const got = new Set(Array.from({ length: index.replicaCount(slot) }, (_, i) => index.replicaAt(slot, i)));
        assert.deepEqual(got, want);
      }
    }
  });

  it('keeps replicas as a set, including past the inline capacity', () => {
    const index = new BlobIndex();
    const id = blob('x');
    assert.deepEqual(index.addReplica(id, 10, 'data', 3), { slot: 0, newBlob: true, added: true });
    assert.equal(index.addReplica(id, 10, 'data', 3).added, false);
    for (const loc of [4, 5, 6, 7, 8]) index.addReplica(id, 10, 'data', loc);
    const slot = index.find(id);
    const locs = () => Array.from({ length: index.replicaCount(slot) }, (_, i) => index.replicaAt(slot, i)).sort((a, b) => a - b);
    assert.deepEqual(locs(), [3, 4, 5, 6, 7, 8]);
    index.removeReplica(id, 4);
    index.removeReplica(id, 8);
    assert.deepEqual(locs(), [3, 5, 6, 7]);
    for (const loc of [3, 5, 6, 7]) index.removeReplica(id, loc);
    assert.equal(index.find(id), -1);
    assert.equal(index.size, 0);
    assert.equal(index.totalBytes, 0);
  });
});

describe('report protocol', () => {
  it('decides change sequences: apply, duplicate, overlap, gap', () => {
    assert.deepEqual(decideChanges(5, 6, 3), { action: 'apply', skip: 0 });
    assert.deepEqual(decideChanges(5, 4, 3), { action: 'apply', skip: 2 });
    assert.deepEqual(decideChanges(5, 3, 3), { action: 'duplicate' });
    assert.deepEqual(decideChanges(5, 8, 1), { action: 'gap' });
  });

  it('asks for a full report when it has none, on a new boot, and when claimed changes never arrive', () => {
    const base = { applied: { bootId: 'b', changeSeq: 10 }, needFull: false, prevHeartbeatSeq: 10, reportInProgress: false };
    assert.equal(heartbeatNeedsFullReport({ ...base, applied: null }, 'b', 0), true);
    assert.equal(heartbeatNeedsFullReport(base, 'other', 10), true);
    assert.equal(heartbeatNeedsFullReport(base, 'b', 10), false);
    assert.equal(heartbeatNeedsFullReport(base, 'b', 12), false, 'one heartbeat of changes in flight is tolerated');
    assert.equal(heartbeatNeedsFullReport({ ...base, prevHeartbeatSeq: 12 }, 'b', 12), true, 'still missing a heartbeat later');
    assert.equal(heartbeatNeedsFullReport(base, 'b', 9), true);
    assert.equal(heartbeatNeedsFullReport({ ...base, needFull: true }, 'b', 10), true);
    assert.equal(heartbeatNeedsFullReport({ ...base, applied: null, reportInProgress: true }, 'b', 0), false);
  });

  it('a final full report replaces everything known of the node', () => {
    const manifests: string[] = [];
    const topo = makeTopology(manifests);
    const r = topo.reports;
    assert.equal(r.heartbeat(hb('n1'), 0).needFullReport, true);
    assert.deepEqual(r.inventory(inv('n1', 0, false, { d1: ['a', 'b'], d2: ['m1'] }), 0), { ok: true, needFullReport: false });
    assert.deepEqual(r.inventory(inv('n1', 1, true, { d1: ['c'] }), 0), { ok: true, needFullReport: false });
    assert.equal(topo.index.size, 4);
    assert.deepEqual(manifests, [blob('m1')]);
    assert.equal(r.heartbeat(hb('n1'), 100).needFullReport, false);
    // A node restart (new boot) → new report without b and m1; b and m1 disappear, d is added.
    assert.equal(r.heartbeat(hb('n1', { bootId: 'boot2' }), 200).needFullReport, true);
    r.inventory(inv('n1', 0, true, { d1: ['a', 'c', 'd'] }, { bootId: 'boot2', reportId: 'r2' }), 200);
    assert.equal(topo.index.size, 3);
    assert.equal(topo.index.find(blob('b')), -1);
    assert.equal(topo.index.find(blob('m1')), -1);
    assert.ok(topo.index.find(blob('d')) >= 0);
    assert.equal(r.heartbeat(hb('n1', { bootId: 'boot2' }), 300).needFullReport, false);
  });

  it('a full report of one node leaves the other nodes replicas alone', () => {
    const topo = makeTopology();
    for (const n of ['n1', 'n2']) {
      topo.reports.heartbeat(hb(n), 0);
      topo.reports.inventory(inv(n, 0, true, { d1: ['a', 'b'] }), 0);
    }
    topo.reports.inventory(inv('n1', 0, true, { d1: [] }, { reportId: 'r9' }), 0);
    assert.equal(topo.index.size, 2);
    assert.deepEqual(topo.locate(blob('a'), 0)!.replicas.map((x) => x.nodeId), ['n2']);
  });

  it('a new report id discards an unfinished report; stray and out-of-order parts are refused', () => {
    const topo = makeTopology();
    const r = topo.reports;
    r.heartbeat(hb('n1'), 0);
    r.inventory(inv('n1', 0, false, { d1: ['a'] }, { reportId: 'old' }), 0);
    r.inventory(inv('n1', 0, false, { d1: ['b'] }, { reportId: 'new' }), 0);
    assert.deepEqual(r.inventory(inv('n1', 1, false, { d1: ['x'] }, { reportId: 'old' }), 0), { ok: false, needFullReport: true });
    r.inventory(inv('n1', 0, false, { d1: ['b'] }, { reportId: 'new' }), 0); // resent part: ignored
    r.inventory(inv('n1', 1, true, { d1: ['c'] }, { reportId: 'new' }), 0);
    // 'a' was added while the old report arrived but is not in the new one: gone after final.
    assert.deepEqual([blob('a'), blob('b'), blob('c')].map((id) => topo.index.find(id) >= 0), [false, true, true]);
    assert.deepEqual(r.inventory(inv('n1', 3, true, { d1: [] }, { reportId: 'new2' }), 0), { ok: false, needFullReport: true });
  });

  it('applies changes in order, ignores duplicates, and answers a gap with needFullReport', () => {
    const topo = makeTopology();
    const r = topo.reports;
    r.heartbeat(hb('n1'), 0);
    r.inventory(inv('n1', 0, true, { d1: ['a'] }, { changeSeq: 0 }), 0);
    const change = (fromSeq: number, op: 'add' | 'remove', name: string) =>
      r.changes({ nodeId: 'n1', bootId: 'boot1', fromSeq, changes: [{ op, disk: 'd1', blob: blob(name), size: 100, kind: 'data' }] }, 0);
    assert.deepEqual(change(1, 'add', 'b'), { ok: true, needFullReport: false });
    assert.deepEqual(change(1, 'add', 'b'), { ok: true, needFullReport: false }); // duplicate
    assert.deepEqual(change(2, 'remove', 'a'), { ok: true, needFullReport: false });
    assert.equal(topo.index.find(blob('a')), -1);
    assert.ok(topo.index.find(blob('b')) >= 0);
    assert.deepEqual(change(5, 'add', 'c'), { ok: true, needFullReport: true }); // 3 and 4 are missing
    assert.equal(topo.index.find(blob('c')), -1);
    assert.equal(r.heartbeat(hb('n1', { changeSeq: 5 }), 10).needFullReport, true);
    // Unknown node, or changes of a boot the tracker has no inventory of: full report please.
    assert.deepEqual(r.changes({ nodeId: 'n9', bootId: 'x', fromSeq: 1, changes: [{ op: 'add', disk: 'd1', blob: blob('z'), size: 1, kind: 'data' }] }, 0), { ok: true, needFullReport: true });
  });

  it('buffers changes that arrive during a full report and replays the newer ones after it', () => {
    const topo = makeTopology();
    const r = topo.reports;
    r.heartbeat(hb('n1'), 0);
    r.inventory(inv('n1', 0, false, { d1: ['a', 'b'] }, { changeSeq: 7 }), 0);
    const c = (fromSeq: number, op: 'add' | 'remove', name: string) =>
      r.changes({ nodeId: 'n1', bootId: 'boot1', fromSeq, changes: [{ op, disk: 'd1', blob: blob(name), size: 100, kind: 'data' }] }, 0);
    c(7, 'add', 'b'); // already in the report (seq 7 ≤ 7): skipped on replay
    c(8, 'remove', 'a');
    c(9, 'add', 'e');
    assert.ok(topo.index.find(blob('a')) >= 0, 'nothing replayed before the final batch');
    r.inventory(inv('n1', 1, true, { d1: [] }, { changeSeq: 7 }), 0);
    assert.equal(topo.index.find(blob('a')), -1);
    assert.ok(topo.index.find(blob('b')) >= 0);
    assert.ok(topo.index.find(blob('e')) >= 0);
    assert.equal(r.heartbeat(hb('n1', { changeSeq: 9 }), 10).needFullReport, false);
  });

  it('refuses an inventory from a node that never sent a heartbeat', () => {
    assert.throws(() => makeTopology().reports.inventory(inv('n1', 0, true, {}), 0), /heartbeat first/);
  });
});

describe('liveness', () => {
  it('a node is dead after nodeDeadAfterMs of silence and alive again with its next heartbeat', () => {
    assert.equal(nodeStateAt(1000, 6000, 5000), 'alive');
    assert.equal(nodeStateAt(1000, 6001, 5000), 'dead');
    assert.equal(deadForMs(1000, 9000, 5000), 3000);
    const topo = makeTopology();
    topo.reports.heartbeat(hb('n1'), 0);
    const node = topo.registry.nodes.get('n1')!;
    assert.equal(topo.registry.nodeState(node, 5000), 'alive');
    assert.equal(topo.registry.nodeState(node, 5001), 'dead');
    topo.reports.heartbeat(hb('n1'), 9000);
    assert.equal(topo.registry.nodeState(node, 9001), 'alive');
  });

  it('replica status: grace for dead nodes, masked disks count as missing at once, draining does not count', () => {
    assert.equal(replicaStatus('alive', 0, 'healthy', 60_000), 'live');
    assert.equal(replicaStatus('alive', 0, 'suspect', 60_000), 'live');
    assert.equal(replicaStatus('alive', 0, 'readonly', 60_000), 'live');
    assert.equal(replicaStatus('alive', 0, 'draining', 60_000), 'readableOnly');
    assert.equal(replicaStatus('alive', 0, 'masked', 60_000), 'missing');
    assert.equal(replicaStatus('dead', 59_999, 'healthy', 60_000), 'waiting');
    assert.equal(replicaStatus('dead', 60_000, 'healthy', 60_000), 'missing');
  });

  it('a disk the heartbeat stops listing is masked', () => {
    const topo = makeTopology();
    topo.reports.heartbeat(hb('n1'), 0);
    topo.reports.heartbeat(hb('n1', { disks: [['d1', 'healthy']] }), 10);
    assert.equal(topo.registry.nodes.get('n1')!.disks.get('d2')!.state, 'masked');
  });
});

describe('placement', () => {
  const cands = (): PlacementCandidate[] => [
    { nodeId: 'n1', url: 'http://a/', diskId: 'd1', state: 'healthy', freeBytes: 100e9 },
    { nodeId: 'n1', url: 'http://a/', diskId: 'd2', state: 'healthy', freeBytes: 100e9 },
    { nodeId: 'n2', url: 'http://b/', diskId: 'd1', state: 'healthy', freeBytes: 300e9 },
    { nodeId: 'n3', url: 'http://c/', diskId: 'd1', state: 'healthy', freeBytes: 600e9 },
    { nodeId: 'n4', url: 'http://d/', diskId: 'd1', state: 'suspect', freeBytes: 900e9 },
    { nodeId: 'n4', url: 'http://d/', diskId: 'd2', state: 'masked', freeBytes: 900e9 },
    { nodeId: 'n5', url: 'http://e/', diskId: 'd1', state: 'healthy', freeBytes: 1e9 },
  ];

  it('picks distinct nodes, never an unhealthy or too-full disk', () => {
    const rng = seeded(1);
    for (let i = 0; i < 2000; i++) {
      const r = choosePlacement(cands(), 2e9, 2, rng, 0);
      assert.ok(r.ok);
      assert.equal(new Set(r.targets.map((t) => t.nodeId)).size, 2);
      for (const t of r.targets) assert.ok(t.nodeId !== 'n4' && t.nodeId !== 'n5', `chose ${t.nodeId}`);
    }
  });

  it('weights by free space', () => {
    const rng = seeded(2);
    const counts: Record<string, number> = {};
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const r = choosePlacement(cands(), 0, 1, rng, 10e9);
      assert.ok(r.ok);
      counts[r.targets[0]!.nodeId] = (counts[r.targets[0]!.nodeId] ?? 0) + 1;
    }
    // Eligible free bytes: n1 200 GB (two disks), n2 300, n3 600 → shares 0.18, 0.27, 0.55.
    assert.ok(Math.abs(counts.n1! / n - 200 / 1100) < 0.02, JSON.stringify(counts));
    assert.ok(Math.abs(counts.n2! / n - 300 / 1100) < 0.02, JSON.stringify(counts));
    assert.ok(Math.abs(counts.n3! / n - 600 / 1100) < 0.02, JSON.stringify(counts));
    assert.equal(counts.n5, undefined, 'below the free floor');
  });

  it('reports too few healthy nodes', () => {
    const r = choosePlacement(cands(), 400e9, 2, seeded(3), 0); // only n3 (600 GB) has room
    assert.deepEqual(r, { ok: false, eligibleNodes: 1, reason: 'only 1 healthy nodes for 2 replicas' });
  });
});

describe('locate order', () => {
  it('readable first, healthy before degraded, more free space first', () => {
    const r = (nodeId: string, nodeState: 'alive' | 'dead', diskState: DiskState, freeBytes: number) => ({ nodeId, url: 'http://x/', diskId: 'd', nodeState, diskState, freeBytes });
    const ranked = rankReplicas([r('dead', 'dead', 'healthy', 9e12), r('masked', 'alive', 'masked', 9e12), r('suspect', 'alive', 'suspect', 9e12), r('small', 'alive', 'healthy', 1e9), r('big', 'alive', 'healthy', 5e9), r('drain', 'alive', 'draining', 1)]);
    assert.deepEqual(ranked.map((x) => x.nodeId).slice(0, 4), ['big', 'small', 'suspect', 'drain']);
    assert.deepEqual(new Set(ranked.slice(4).map((x) => x.nodeId)), new Set(['dead', 'masked']));
  });
});

describe('repair selection', () => {
  it('judges blobs: under-replicated, waiting within grace, lost', () => {
    assert.deepEqual(judgeBlob({ live: 2, readable: 2, waiting: 0 }, 2), { underReplicated: false, lost: false, waiting: false, needsRepair: false });
    assert.deepEqual(judgeBlob({ live: 1, readable: 1, waiting: 1 }, 2), { underReplicated: true, lost: false, waiting: true, needsRepair: false });
    assert.deepEqual(judgeBlob({ live: 1, readable: 1, waiting: 0 }, 2), { underReplicated: true, lost: false, waiting: false, needsRepair: true });
    assert.deepEqual(judgeBlob({ live: 0, readable: 1, waiting: 0 }, 2), { underReplicated: true, lost: false, waiting: false, needsRepair: true });
    assert.deepEqual(judgeBlob({ live: 0, readable: 0, waiting: 0 }, 2), { underReplicated: true, lost: true, waiting: false, needsRepair: false });
    assert.equal(retryDelayMs(1, 1000, 60_000), 1000);
    assert.equal(retryDelayMs(3, 1000, 60_000), 4000);
    assert.equal(retryDelayMs(50, 1000, 60_000), 60_000);
  });

  it('counts a dead node as missing only after the grace; fewest live copies first', () => {
    const topo = makeTopology();
    for (const n of ['n1', 'n2', 'n3']) topo.reports.heartbeat(hb(n), 0);
    topo.reports.inventory(inv('n1', 0, true, { d1: ['ok', 'one', 'single'] }), 0);
    topo.reports.inventory(inv('n2', 0, true, { d1: ['ok', 'one'], d2: ['ok'] }), 0);
    topo.reports.inventory(inv('n3', 0, true, { d1: ['one'] }), 0);
    const scan = (nowMs: number) => {
      const { codes, nodeOf } = locationCodes(topo.registry, nowMs, 10_000);
      return scanIndex(topo.index, codes, nodeOf, { replicas: 2, maxCandidates: 100, nowMs, newBlobGraceMs: 0 });
    };
    let s = scan(1000);
    assert.deepEqual(s.stats, { total: 3, bytes: 300, underReplicated: 1, lost: 0, waiting: 0, needRepair: 1 });
    assert.deepEqual(s.candidates.map((slot) => topo.index.idOf(slot)), [blob('single')]);
    // n1 falls silent: dead at 5000 ms; within the grace its copies are waited for.
    topo.reports.heartbeat(hb('n2'), 6000);
    topo.reports.heartbeat(hb('n3'), 6000);
    s = scan(7000);
    assert.equal(s.stats.needRepair, 0);
    assert.equal(s.stats.lost, 1, 'single has no readable copy');
    assert.equal(s.stats.underReplicated, 2, "'ok' (n1 waiting) and 'single'");
    // Past the grace: 'ok' (1 live: two disks of n2 are one copy) and 'one' (n2, n3: fine) …
    topo.reports.heartbeat(hb('n2'), 14_000);
    topo.reports.heartbeat(hb('n3'), 14_000);
    s = scan(16_000);
    assert.deepEqual(s.candidates.map((slot) => topo.index.idOf(slot)), [blob('ok')]);
    assert.equal(s.stats.lost, 1);
    // A masked disk counts as missing immediately; a blob with 0 live copies (but a draining one) comes first.
    topo.reports.heartbeat(hb('n3', { disks: [['d1', 'draining']] }), 16_000);
    topo.reports.heartbeat(hb('n2', { disks: [['d1', 'masked'], ['d2', 'healthy']] }), 16_000);
    s = scan(16_000);
    assert.deepEqual(s.candidates.map((slot) => topo.index.idOf(slot)), [blob('one'), blob('ok')]);
  });

  it('leaves a blob alone while it is younger than the new-blob grace (its upload may be running)', () => {
    const topo = makeTopology();
    for (const n of ['n1', 'n2']) topo.reports.heartbeat(hb(n), 0);
    topo.reports.inventory(inv('n1', 0, true, { d1: ['fresh'] }), 0); // first seen at 0
    const scan = (nowMs: number) => {
      const { codes, nodeOf } = locationCodes(topo.registry, nowMs, 10_000);
      return scanIndex(topo.index, codes, nodeOf, { replicas: 2, maxCandidates: 100, nowMs, newBlobGraceMs: 1000 });
    };
    assert.deepEqual(scan(500).stats, { total: 1, bytes: 100, underReplicated: 1, lost: 0, waiting: 1, needRepair: 0 });
    assert.equal(scan(500).validUntilMs, 1000, 'a cached scan must be redone when the blob turns old');
    assert.equal(scan(1500).stats.needRepair, 1);
    assert.equal(judgeBlob({ live: 1, readable: 1, waiting: 0 }, 2, true).needsRepair, false);
  });

  it('schedules copies to a node without the blob, from live sources, within the concurrency limit', async () => {
    const topo = makeTopology();
    for (const n of ['n1', 'n2', 'n3']) topo.reports.heartbeat(hb(n), 0);
    topo.reports.inventory(inv('n1', 0, true, { d1: ['x', 'y', 'z'] }), 0);
    topo.reports.inventory(inv('n2', 0, true, {}), 0);
    topo.reports.inventory(inv('n3', 0, true, {}), 0);
    const sent: Array<{ dest: string; id: string; cmd: FetchCommand }> = [];
    let nowMs = 10_000;
    let fail = true;
    const repair = new RepairScheduler(
      topo,
      { epoch: 7, leader: true },
      { replicas: 2, repairIntervalMs: 1000, repairGraceMs: 0, repairMaxConcurrent: 2, repairQueueMax: 100, repairRetryBaseMs: 1000, repairRetryMaxMs: 8000, nodeDeadAfterMs: 5000, rpcTimeoutMs: 1000, copyTimeoutMsPerGiB: 1000, repairNewBlobGraceMs: 0 },
      quiet,
      () => nowMs,
      seeded(4),
      async (dest, id, cmd, timeoutMs) => {
        assert.ok(Number.isInteger(timeoutMs) && timeoutMs > 1000, `timeout ${timeoutMs}`);
        sent.push({ dest, id, cmd });
        if (fail) throw new Error('node busy');
        return { diskId: 'd2' }; // the node may store on another disk than the one asked for
      },
    );
    // The scheduler started "now": it first waits nodeDeadAfterMs for nodes to check in.
    repair.tick();
    assert.equal(sent.length, 0);
    nowMs = 20_000;
    for (const n of ['n1', 'n2', 'n3']) topo.reports.heartbeat(hb(n), nowMs);
    repair.tick();
    assert.equal(sent.length, 2, 'at most repairMaxConcurrent in flight');
    for (const s of sent) {
      assert.notEqual(s.dest, 'http://127.0.0.1:7101/', 'never to the node that has it');
      assert.deepEqual(s.cmd.sources, ['http://127.0.0.1:7101/']);
      assert.equal(s.cmd.epoch, 7);
      assert.equal(s.cmd.size, 100);
    }
    await new Promise((r) => setImmediate(r));
    assert.equal(repair.counters.failed, 2);
    // Failed blobs back off; only the third one is tried now.
    repair.tick();
    assert.equal(sent.length, 3);
    await new Promise((r) => setImmediate(r));
    fail = false;
    nowMs += 1000;
    repair.tick();
    await new Promise((r) => setImmediate(r));
    assert.equal(repair.counters.done, 2);
    nowMs += 2000;
    repair.tick();
    await new Promise((r) => setImmediate(r));
    assert.equal(repair.counters.done, 3);
    // Successful copies were added to the index, on the disk the node named: nothing is short.
    assert.equal(repair.stats().underReplicated, 0);
    assert.deepEqual(topo.locate(blob('x'), nowMs)!.replicas.map((r) => r.diskId).sort(), ['d1', 'd2']);
  });

  it('does not repair while an alive node has not delivered its inventory', () => {
    const topo = makeTopology();
    for (const n of ['n1', 'n2', 'n3']) topo.reports.heartbeat(hb(n), 0);
    topo.reports.inventory(inv('n1', 0, true, { d1: ['x'] }), 0);
    const sent: string[] = [];
    let nowMs = 0;
    const repair = new RepairScheduler(
      topo, { epoch: 1, leader: true },
      { replicas: 2, repairIntervalMs: 1000, repairGraceMs: 0, repairMaxConcurrent: 2, repairQueueMax: 100, repairRetryBaseMs: 1000, repairRetryMaxMs: 8000, nodeDeadAfterMs: 5000, rpcTimeoutMs: 1000, copyTimeoutMsPerGiB: 1000, repairNewBlobGraceMs: 0 },
      quiet, () => nowMs, seeded(5), async (_d, id) => (sent.push(id), {}),
    );
    nowMs = 6000;
    for (const n of ['n1', 'n2', 'n3']) topo.reports.heartbeat(hb(n), nowMs);
    repair.tick();
    assert.equal(sent.length, 0);
    topo.reports.inventory(inv('n2', 0, true, {}), nowMs);
    topo.reports.inventory(inv('n3', 0, true, {}), nowMs);
    repair.tick();
    assert.equal(sent.length, 1);
  });
});

describe('pinyin keys', () => {
  it('Chinese, Latin and mixed text', () => {
    assert.deepEqual(toPinyin('周杰伦'), { pinyin: 'zhou jie lun', initials: 'ZJL' });
    assert.deepEqual(toPinyin('Let It Be'), { pinyin: 'let it be', initials: 'LIB' });
    assert.deepEqual(toPinyin('七里香 (Live)'), { pinyin: 'qi li xiang live', initials: 'QLXL' });
    assert.deepEqual(toPinyin("Don't Stop Me Now"), { pinyin: 'dont stop me now', initials: 'DSMN' });
    assert.deepEqual(toPinyin('Ｃａｆé 女儿情'), { pinyin: 'cafe nv er qing', initials: 'CNEQ' });
    assert.deepEqual(toPinyin('  '), { pinyin: '', initials: '' });
  });
});
