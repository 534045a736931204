// Repair units without sockets (issue 5): maintenance window, token buckets and debt, the rate
// meter, priority order with play counts, play counts kept across a restart, drain progress,
// lost-blob listing and suspect-disk signalling. TrackerCore runs in-process with a fake clock and
// a recording fetch transport: the test stands in for storage nodes (their real half is tested
// in tracker-repair.test.ts with real processes).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DiskState, FetchCommand, HeartbeatRequest, InventoryBatch, SongManifest } from '../common/contracts.js';
import { createLogger } from '../common/log.js';
import { loadConfig } from '../config/load.js';
import { Catalog } from '../tracker/catalog/store.js';
import { TrackerCore } from '../tracker/core.js';
import { RateMeter, RepairBudget, TokenBucket } from '../tracker/repair/budget.js';
import { LostBlobs } from '../tracker/repair/lost.js';
import { orderRepairQueue, PlayScores, type RepairItem } from '../tracker/repair/priority.js';
import { budgetWindow, inWindow, parseWindow } from '../tracker/repair/window.js';
import { SuspectDisks } from '../tracker/streamers/suspect.js';
import { MAX_PENDING_SONGS, PendingPlays, Registration } from '../streamer/registration.js';
import { startTracker } from '../tracker/index.js';
import { tempDir, waitFor } from './helpers/procs.js';

const quiet = createLogger('test', 'error');
const blob = (name: string): string => createHash('sha256').update(name).digest('hex');
const at = (hhmm: string): Date => new Date(`2024-05-01T${hhmm}:00`); // local time

function manifest(id: string, blobs: string[]): SongManifest {
  return {
    type: 'ktv.song', id, version: 1, deleted: false, title: id, artist: '', language: '', genre: '', pinyin: '', initials: '', wordCount: 0, durationS: 1,
    renditions: blobs.map((b, i) => ({ role: i === 0 ? 'video' : 'vocal', blob: blob(b), sizeBytes: 100, ...(i === 0 ? { playlistBlob: blob(`${b}.m3u8`) } : {}) })),
  };
}

function hb(nodeId: string, disks: Array<[string, DiskState]> = [['d1', 'healthy'], ['d2', 'healthy']]): HeartbeatRequest {
  return {
    nodeId, url: `http://127.0.0.1:${7100 + Number(nodeId.replace(/\D/g, ''))}/`, changeSeq: 0, bootId: 'boot1',
    disks: disks.map(([id, state]) => ({ id, state, reason: state === 'healthy' ? '' : `operator ${state}`, freeBytes: 1e12, totalBytes: 2e12, blobs: 0, usedBytes: 0 })),
  };
}

function inv(nodeId: string, blobs: Record<string, Array<string | [string, number]>>): InventoryBatch {
  return {
    nodeId, bootId: 'boot1', reportId: 'r1', changeSeq: 0, part: 0, final: true,
    disks: Object.entries(blobs).map(([id, names]) => ({
      id,
      blobs: names.map((n) => {
        const [name, size] = typeof n === 'string' ? [n, 100] : n;
        return [blob(name), size, name.startsWith('manifest') ? 'manifest' : 'data'] as [string, number, 'data' | 'manifest'];
      }),
    })),
  };
}

interface Harness {
  core: TrackerCore;
  sent: Array<{ dest: string; id: string; cmd: FetchCommand }>;
  clock: { nowMs: number };
  beat(nodes: string[], disks?: Record<string, Array<[string, DiskState]>>): void;
}

function harness(tracker: Record<string, unknown> = {}, catalogPath = ':memory:'): Harness {
  const clock = { nowMs: 1_000_000 };
  const sent: Harness['sent'] = [];
  const config = loadConfig({ overrides: { tracker: { nodeDeadAfterMs: 5000, repairGraceMs: 0, repairNewBlobGraceMs: 0, repairMaxConcurrent: 100, maintenanceWindow: '', ...tracker } } });
  const core = new TrackerCore({
    config, dataDir: tempDir('repair-units'), secret: 'x'.repeat(32), log: quiet, catalogPath, now: () => clock.nowMs, rng: () => 0.5,
    sendFetch: async (dest, id, cmd) => {
      sent.push({ dest, id, cmd });
      return new Promise(() => undefined); // copies stay in flight: the test looks at what started
    },
  });
  return {
    core, sent, clock,
    beat(nodes, disks = {}) {
      for (const n of nodes) core.heartbeat(hb(n, disks[n]));
    },
  };
}

describe('maintenance window (pure)', () => {
  it('decides business hours and the maintenance window, also past midnight and for ""', () => {
    assert.equal(budgetWindow('', at('05:00')), 'business');
    assert.equal(parseWindow(''), undefined);
    assert.equal(parseWindow('04:00-04:00'), undefined, 'an empty interval is no window');
    assert.equal(budgetWindow('04:00-10:00', at('03:59')), 'business');
    assert.equal(budgetWindow('04:00-10:00', at('04:00')), 'maintenance');
    assert.equal(budgetWindow('04:00-10:00', at('09:59')), 'maintenance');
    assert.equal(budgetWindow('04:00-10:00', at('10:00')), 'business');
    // Wraps midnight.
    const night = parseWindow('22:30-06:00')!;
    assert.deepEqual(night, { startMin: 22 * 60 + 30, endMin: 360 });
    assert.equal(inWindow(night, 22 * 60 + 29), false);
    assert.equal(inWindow(night, 22 * 60 + 30), true);
    assert.equal(inWindow(night, 23 * 60 + 59), true);
    assert.equal(inWindow(night, 0), true);
    assert.equal(inWindow(night, 359), true);
    assert.equal(inWindow(night, 360), false);
    assert.equal(budgetWindow('22:30-06:00', at('12:00')), 'business');
    assert.throws(() => parseWindow('4:00-10:00'));
  });
});

describe('bandwidth budget (pure)', () => {
  it('a token bucket refills at its rate, holds one second, and lets a large copy start only when full (then in debt)', () => {
    const b = new TokenBucket(1000, 0);
    assert.equal(b.capacity, 1000);
    assert.ok(b.canTake(600, 0));
    b.take(600, 0);
    assert.equal(b.level(0), 400);
    assert.ok(!b.canTake(500, 0));
    assert.ok(b.canTake(500, 100), '100 ms refill 100 bytes');
    assert.equal(b.level(5000), 1000, 'never above capacity');
    // 2500 bytes > the bucket: may start only when full, and leaves a debt of 1500.
    assert.ok(b.canTake(2500, 5000));
    b.take(2500, 5000);
    assert.equal(b.level(5000), -1500);
    assert.ok(!b.canTake(1, 6000), 'still paying the debt back after 1 s');
    assert.ok(!b.canTake(2500, 7400));
    assert.ok(b.canTake(2500, 7500), 'full again 2.5 s later: the long-run rate is the budget');
    b.setRate(100, 7500);
    assert.equal(b.level(7500), 100, 'a lower rate clips the tokens to the new capacity');
  });

  it('charges the cluster and both nodes, and switches budgets with the window', () => {
    let date = at('12:00');
    const budget = new RepairBudget(
      { repairClusterBytesPerSec: 300, repairNodeBytesPerSec: 200, repairMaintenanceClusterBytesPerSec: 3000, repairMaintenanceNodeBytesPerSec: 2000, maintenanceWindow: '04:00-10:00' },
      0,
      () => date,
    );
    assert.deepEqual(budget.view(0), { window: 'business', clusterBytesPerSec: 300, nodeBytesPerSec: 200 });
    budget.charge('n1', 'n2', 150, 0);
    assert.ok(!budget.nodeAllows('n1', 100, 0), 'source charged');
    assert.ok(!budget.nodeAllows('n2', 100, 0), 'destination charged');
    assert.ok(budget.nodeAllows('n3', 100, 0));
    assert.ok(budget.clusterAllows(150, 0));
    assert.ok(!budget.clusterAllows(151, 0));
    date = at('05:00');
    assert.deepEqual(budget.view(1), { window: 'maintenance', clusterBytesPerSec: 3000, nodeBytesPerSec: 2000 });
    assert.ok(budget.clusterAllows(1000, 500), 'the maintenance rate refills faster');
  });

  it('measures the copy rate over the busy part of the last minute', () => {
    const m = new RateMeter();
    assert.equal(m.rate(0), 0);
    m.busy(10_000);
    for (let s = 0; s < 10; s++) m.add(1000, 10_000 + s * 1000);
    assert.equal(m.rate(20_000), 1000, '10,000 bytes over 10 busy seconds');
    assert.equal(Math.round(m.rate(130_000)), 0, 'a minute later nothing is left in the window');
  });
});

describe('repair priority (pure and in the scheduler)', () => {
  it('orders by live copies, then manifests, then plays', () => {
    const items: RepairItem[] = [
      { slot: 1, live: 1, manifest: false, score: 5 },
      { slot: 2, live: 1, manifest: false, score: 50 },
      { slot: 3, live: 0, manifest: false, score: 0 },
      { slot: 4, live: 1, manifest: true, score: 0 },
      { slot: 5, live: 1, manifest: false, score: 5 },
    ];
    assert.deepEqual(orderRepairQueue(items).map((i) => i.slot), [3, 4, 2, 1, 5]);
  });

  it('play counts persist in the catalog file and map blobs (renditions, playlists, manifest) to songs', () => {
    const path = join(tempDir('plays'), 'tracker.sqlite');
    let catalog = new Catalog(path);
    catalog.upsertManifest(manifest('sA', ['a-video', 'a-vocal']), blob('manifest-A'));
    catalog.upsertManifest(manifest('sB', ['b-video', 'shared']), blob('manifest-B'));
    catalog.upsertManifest(manifest('sC', ['c-video', 'shared']), blob('manifest-C'));
    const scores = new PlayScores(catalog);
    scores.refresh(0);
    scores.add([['sA', 3], ['sB', 10]], 0);
    scores.add([['sA', 1]], 1);
    assert.equal(scores.scoreOf(blob('a-video')), 4);
    assert.equal(scores.scoreOf(blob('a-video.m3u8')), 4, 'the playlist blob');
    assert.equal(scores.scoreOf(blob('manifest-A')), 4, 'the manifest blob');
    assert.equal(scores.scoreOf(blob('shared')), 10, 'sB 10 + sC 0');
    assert.deepEqual(catalog.songsOfBlob(blob('shared')), ['sB', 'sC']);
    catalog.close();
    catalog = new Catalog(path);
    assert.equal(catalog.playsOf('sA'), 4);
    assert.equal(catalog.playsOf('sB'), 10);
    const again = new PlayScores(catalog);
    again.refresh(0);
    assert.equal(again.scoreOf(blob('b-video')), 10, 'scores rebuilt from the stored counts after a restart');
    catalog.close();
  });

  it('the scheduler starts the blobs of the most played songs first within the same copy count', () => {
    const h = harness({ repairMaxConcurrent: 1 });
    h.core.catalog.upsertManifest(manifest('cold', ['cold-video']), blob('manifest-cold'));
    h.core.catalog.upsertManifest(manifest('hot', ['hot-video']), blob('manifest-hot'));
    h.core.catalog.upsertManifest(manifest('warm', ['warm-video']), blob('manifest-warm'));
    h.beat(['n1', 'n2', 'n3']);
    h.core.inventory(inv('n1', { d1: ['cold-video', 'hot-video', 'warm-video', 'manifest-hot', 'lonely'], d2: ['lonely'] }));
    h.core.inventory(inv('n2', { d1: ['manifest-hot', 'lonely'] }));
    h.core.inventory(inv('n3', { d1: [] }));
    h.core.streamerHeartbeat({ id: 's1', url: 'http://127.0.0.1:8080/', startedAt: '', servedBytes: 0, plays: [['hot', 9], ['warm', 2]] });
    h.clock.nowMs += 10_000;
    h.beat(['n1', 'n2', 'n3'], { n2: [['d1', 'masked']] }); // n2's copies vanish: 'lonely' and the hot manifest have 1 live copy
    h.core.repair.tick(); // refreshes the play scores
    const order = h.core.repair.queue().map((i) => h.core.topology.index.idOf(i.slot));
    assert.deepEqual(order, [blob('manifest-hot'), blob('hot-video'), blob('warm-video'), ...order.slice(3)]);
    assert.deepEqual(order.slice(3).sort(), [blob('cold-video'), blob('lonely')].sort());
    assert.equal(h.sent[0]!.id, blob('manifest-hot'));
  });

  it('the budget paces copies: strict order, a copy larger than the bucket waits for a full bucket', () => {
    const h = harness({ repairClusterBytesPerSec: 250, repairNodeBytesPerSec: 10_000 });
    h.beat(['n1', 'n2']);
    h.core.inventory(inv('n1', { d1: [['big', 600], 'small1', 'small2'] }));
    h.core.inventory(inv('n2', { d1: [] }));
    h.clock.nowMs += 10_000;
    h.beat(['n1', 'n2']);
    h.core.repair.tick();
    // The queue is in index order here (no plays): 'big' first; it is larger than the 250-byte bucket, which is full.
    assert.deepEqual(h.sent.map((s) => s.id), [blob('big')]);
    h.clock.nowMs += 1000;
    h.beat(['n1', 'n2']);
    h.core.repair.tick();
    assert.equal(h.sent.length, 1, '600 - 250 = 350 bytes of debt: nothing starts after 1 s');
    h.clock.nowMs += 1000;
    h.beat(['n1', 'n2']);
    h.core.repair.tick();
    assert.equal(h.sent.length, 2, 'debt paid and 100 bytes in the bucket after 2.4 s… one small copy');
    const view = h.core.clusterView().repair;
    assert.deepEqual(view.budget, { window: 'business', clusterBytesPerSec: 250, nodeBytesPerSec: 10_000 });
    assert.equal(view.queuedBytes, 100, 'one small blob not started yet');
    assert.equal(view.inFlight, 2);
  });
});

describe('drain, lost blobs, suspect disks (TrackerCore in-process)', () => {
  it('drain progress counts blobs on a draining disk that lack their copies elsewhere; safe to remove at 0', () => {
    const h = harness();
    h.beat(['n1', 'n2', 'n3']);
    h.core.inventory(inv('n1', { d1: ['both', 'only-here', ['big-only-here', 1000]], d2: ['other'] }));
    h.core.inventory(inv('n2', { d1: ['both', 'other'] }));
    h.core.inventory(inv('n3', { d1: ['both'] }));
    h.beat(['n1', 'n2', 'n3'], { n1: [['d1', 'draining'], ['d2', 'healthy']] });
    let n1 = h.core.clusterView().nodes.find((n) => n.id === 'n1')!;
    assert.deepEqual(n1.disks.find((d) => d.id === 'd1')!.drain, { remainingBlobs: 2, remainingBytes: 1100, safeToRemove: false });
    assert.equal(n1.disks.find((d) => d.id === 'd2')!.drain, undefined);
    assert.equal(n1.drain, undefined, 'not every disk of the node drains');
    // Node drain: both disks. 'other' has one live copy (n2) now.
    h.beat(['n1', 'n2', 'n3'], { n1: [['d1', 'draining'], ['d2', 'draining']] });
    n1 = h.core.clusterView().nodes.find((n) => n.id === 'n1')!;
    assert.deepEqual(n1.drain, { remainingBlobs: 3, remainingBytes: 1200, safeToRemove: false });
    // Copies land elsewhere (as repair would do): safe to remove, and the drained copies stay.
    const add = (names: string[]) => names.map((n) => ({ op: 'add' as const, disk: 'd1', blob: blob(n), size: n.startsWith('big') ? 1000 : 100, kind: 'data' as const }));
    h.core.changes({ nodeId: 'n3', bootId: 'boot1', fromSeq: 1, changes: add(['only-here', 'big-only-here', 'other']) });
    h.core.changes({ nodeId: 'n2', bootId: 'boot1', fromSeq: 1, changes: add(['only-here', 'big-only-here']) });
    n1 = h.core.clusterView().nodes.find((n) => n.id === 'n1')!;
    assert.deepEqual(n1.drain, { remainingBlobs: 0, remainingBytes: 0, safeToRemove: true });
    assert.equal(n1.disks[0]!.drain!.safeToRemove, true);
    assert.equal(h.core.topology.locate(blob('only-here'), h.clock.nowMs)!.replicas.length, 3, 'the drained copy is not deleted by the tracker (extras stay)');
  });

  it('lists a lost blob once with its songs and how long, and forgets it when a copy reappears', () => {
    const h = harness();
    h.core.catalog.upsertManifest(manifest('sLost', ['gone']), blob('manifest-lost'));
    h.beat(['n1', 'n2']);
    h.core.inventory(inv('n1', { d1: ['gone', 'fine'] }));
    h.core.inventory(inv('n2', { d1: ['fine'] }));
    assert.deepEqual(h.core.clusterView().lostBlobs, []);
    h.beat(['n1', 'n2'], { n1: [['d1', 'masked'], ['d2', 'healthy']] });
    let view = h.core.clusterView();
    assert.equal(view.blobs.lost, 1);
    assert.deepEqual(view.lostBlobs!.map((l) => [l.id, l.songs, l.kind, l.sizeBytes]), [[blob('gone'), ['sLost'], 'data', 100]]);
    h.clock.nowMs += 4000;
    h.beat(['n1', 'n2'], { n1: [['d1', 'masked'], ['d2', 'healthy']] });
    h.clock.nowMs += 3000;
    h.beat(['n1', 'n2'], { n1: [['d1', 'masked'], ['d2', 'healthy']] });
    view = h.core.clusterView();
    assert.equal(view.lostBlobs![0]!.lostSinceAgoMs, 7000);
    assert.equal(h.core.repair.lost.lostTotal, 1, 'counted (and logged) once');
    assert.match(h.core.metrics.registry.render(), /tracker_blobs_lost_total 1/);
    h.beat(['n1', 'n2']);
    view = h.core.clusterView();
    assert.equal(view.blobs.lost, 0);
    assert.deepEqual(view.lostBlobs, []);
    assert.equal(h.core.repair.lost.lostTotal, 1);
  });

  it('LostBlobs is bounded and tells how many are not listed', () => {
    const lost = new LostBlobs(2);
    const e = lost.update([{ id: 'a', sizeBytes: 1, kind: 'data' }, { id: 'b', sizeBytes: 1, kind: 'data' }, { id: 'c', sizeBytes: 1, kind: 'data' }], 5, 0, () => []);
    assert.equal(e.lost.length, 2);
    assert.equal(e.untracked, 3);
    assert.equal(lost.list(10).length, 2);
  });

  it('a disk with readFailuresToSuspect streamer failures within the window is named in its node heartbeat answer, once per window', () => {
    const h = harness({ readFailuresToSuspect: 3, readFailureWindowMs: 60_000 });
    h.beat(['n1', 'n2']);
    const fail = (disk = 'd1'): void => h.core.readFailure({ blobId: blob('x'), nodeId: 'n1', diskId: disk, reason: 'timeout', detail: '' });
    fail();
    fail();
    assert.equal(h.core.heartbeat(hb('n1')).suspectDisks, undefined, 'two failures: below the threshold');
    fail();
    assert.equal(h.core.heartbeat(hb('n2')).suspectDisks, undefined, 'only the disk’s own node is told');
    const answer = h.core.heartbeat(hb('n1'));
    assert.equal(answer.suspectDisks!.length, 1);
    assert.equal(answer.suspectDisks![0]!.disk, 'd1');
    assert.equal(answer.suspectDisks![0]!.failures, 3);
    assert.equal(h.core.heartbeat(hb('n1')).suspectDisks, undefined, 'once');
    fail();
    assert.equal(h.core.heartbeat(hb('n1')).suspectDisks, undefined, 'once per window');
    const disk = h.core.clusterView().nodes.find((n) => n.id === 'n1')!.disks.find((d) => d.id === 'd1')!;
    assert.equal(disk.readFailures, 4);
    h.clock.nowMs += 61_000;
    h.beat(['n1', 'n2']);
    assert.equal(h.core.clusterView().nodes[0]!.disks[0]!.readFailures, 0, 'the window moved on');
    fail();
    fail();
    fail();
    assert.equal(h.core.heartbeat(hb('n1')).suspectDisks!.length, 1, 'a new window, a new signal');
    // Unknown disks are not followed (bounded label values and memory).
    h.core.readFailure({ blobId: blob('x'), nodeId: 'nX', diskId: 'd9', reason: 'timeout', detail: '' });
    const s = new SuspectDisks({ readFailuresToSuspect: 1, readFailureWindowMs: 10 });
    assert.equal(s.record('n', 'd', 'connect', 0), true);
    assert.deepEqual(s.takeFor('n', 0).map((x) => x.disk), ['d']);
  });
});

describe('play counts from streamer heartbeats', () => {
  it('pending plays are bounded and cleared only by what a tracker acknowledged', () => {
    const p = new PendingPlays();
    p.add('a');
    p.add('a');
    p.add('b');
    const sent = p.snapshot();
    p.add('a'); // counted while the heartbeat was on its way
    p.acknowledge(sent);
    assert.deepEqual(p.snapshot(), [['a', 1]]);
    for (let i = 0; i < MAX_PENDING_SONGS + 5; i++) p.add(`s${i}`);
    assert.equal(p.size, MAX_PENDING_SONGS);
    assert.equal(p.dropped, 6, "songs past the bound are dropped and counted ('a' was already there)");
  });

  it('a streamer registration carries plays to a real tracker, which persists them', async () => {
    const dataDir = tempDir('plays-tracker');
    const config = loadConfig({});
    const tracker = await startTracker({ config, host: '127.0.0.1', port: 0, dataDir, secret: 'p'.repeat(32), adminToken: 'a'.repeat(32), log: quiet });
    const registration = new Registration({
      trackers: [tracker.url], secret: 'p'.repeat(32), intervalMs: 100, timeoutMs: 1000, log: quiet,
      body: () => ({ id: 'st1', url: 'http://127.0.0.1:1/', startedAt: new Date().toISOString(), servedBytes: 0 }),
    });
    try {
      registration.start();
      registration.countPlay('songA');
      registration.countPlay('songA');
      registration.countPlay('songB');
      await waitFor('plays stored', () => tracker.core.catalog.playsOf('songA') === 2 && tracker.core.catalog.playsOf('songB') === 1);
      // The tracker stores before it answers; the streamer forgets them once the answer is in.
      await waitFor('pending plays acknowledged', () => registration.pendingPlays()[tracker.url]!.songs === 0);
      assert.equal(tracker.core.catalog.playsOf('songA'), 2, 'sent once, not again after the answer');
    } finally {
      await registration.stop();
      await tracker.close();
    }
    const reopened = new Catalog(join(dataDir, 'tracker.sqlite'));
    assert.equal(reopened.playsOf('songA'), 2, 'kept across a tracker restart');
    reopened.close();
  });
});
