// The disk health state machine (storage-node/store/disk-state.ts) and the scrub throttle, as
// pure functions: no disks, no sockets, the clock passed in.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rankDisksForWrite } from '../storage-node/store/choose-disk.js';
import {
  applyOperator,
  classifyIoError,
  clearMask,
  computeDiskState,
  faultSeverity,
  isReadable,
  isSlow,
  isWritable,
  newObservations,
  normalMs,
  noteFault,
  noteHardFault,
  noteProbe,
  recoveryDue,
  recoveryIntact,
  type DiskObservations,
  type HealthParams,
} from '../storage-node/store/disk-state.js';
import { TokenBucket } from '../storage-node/store/throttle.js';

const P: HealthParams = { freeFloorBytes: 100, faultWindowMs: 60_000, faultsToSuspect: 1, faultsToMask: 3, recoveryProbes: 3, slowFactor: 10, slowFloorMs: 200 };

function fresh(): DiskObservations {
  return { ...newObservations(), freeBytes: 1000, totalBytes: 2000 };
}

const state = (obs: DiskObservations, nowMs: number, p: HealthParams = P): string => computeDiskState(obs, p, nowMs).state;

describe('disk health: faults', () => {
  test('one fault makes a disk suspect (still readable and writable), faultsToMask masks it', () => {
    const obs = fresh();
    assert.equal(state(obs, 0), 'healthy');
    noteFault(obs, 'probe failed: boom', 1000, P);
    const v = computeDiskState(obs, P, 1000);
    assert.equal(v.state, 'suspect');
    assert.match(v.reason, /1 fault\(s\) in the last 60 s; last: probe failed: boom/);
    assert.ok(isReadable('suspect') && isWritable('suspect'));
    noteFault(obs, 'timeout', 2000, P);
    assert.equal(state(obs, 2000), 'suspect');
    noteFault(obs, 'timeout', 3000, P);
    const m = computeDiskState(obs, P, 3000);
    assert.equal(m.state, 'masked');
    assert.match(m.reason, /3 faults in 60 s/);
    assert.ok(!isReadable('masked') && !isWritable('masked'));
  });

  test('faults leave the window: suspect goes back to healthy; spread-out faults never mask', () => {
    const obs = fresh();
    noteFault(obs, 'a', 0, P);
    assert.equal(state(obs, 59_999), 'suspect');
    assert.equal(state(obs, 60_000), 'healthy', 'the fault left the window');
    noteFault(obs, 'b', 61_000, P);
    noteFault(obs, 'c', 122_000, P);
    assert.equal(state(obs, 122_000), 'suspect', 'three faults, never three in one window');
    assert.equal(obs.faults!.length, 1, 'the log keeps the window only');
  });

  test('faultsToSuspect above one: a single fault is tolerated', () => {
    const p = { ...P, faultsToSuspect: 2 };
    const obs = fresh();
    noteFault(obs, 'a', 0, p);
    assert.equal(state(obs, 0, p), 'healthy');
    noteFault(obs, 'b', 1, p);
    assert.equal(state(obs, 1, p), 'suspect');
  });

  test('a masked disk stays masked when its faults leave the window (the latch)', () => {
    const obs = fresh();
    for (const t of [0, 1, 2]) noteFault(obs, 'x', t, P);
    assert.equal(state(obs, 10 * 60_000), 'masked');
  });

  test('EIO-class errors and a vanished directory mask at once; timeouts are counted faults', () => {
    const err = (code: string): Error => Object.assign(new Error(code), { code });
    assert.equal(classifyIoError(err('EIO')), 'fault');
    assert.equal(faultSeverity(err('EIO')), 'instant');
    assert.equal(faultSeverity(err('ETIMEDOUT')), 'counted');
    const eio = fresh();
    noteHardFault(eio, 'EIO', 'read failed', 5, 'io-error');
    assert.match(computeDiskState(eio, P, 5).reason, /I\/O fault \(EIO\): read failed/);
    const gone = fresh();
    noteHardFault(gone, 'ENOENT', 'disk directory is gone', 5, 'gone');
    assert.equal(gone.present, false);
    assert.deepEqual(computeDiskState(gone, P, 5), { state: 'masked', reason: 'disk directory is gone' });
  });

  test('free space under the floor or ENOSPC: readonly (readable, not writable)', () => {
    const obs = { ...fresh(), freeBytes: 50 };
    assert.equal(state(obs, 0), 'readonly');
    assert.ok(isReadable('readonly') && !isWritable('readonly'));
    const full = { ...fresh(), noSpaceAtMs: 1 };
    assert.match(computeDiskState(full, P, 0).reason, /ENOSPC/);
    // The old signature (a floor only) still works.
    assert.equal(computeDiskState({ present: true, freeBytes: 1000, totalBytes: 2000 }, 1001).state, 'readonly');
  });
});

describe('disk health: probes and slowness', () => {
  test('normal latency is the median of good probes; slow = factor × normal and over the floor', () => {
    const obs = fresh();
    for (const ms of [10, 30, 20]) assert.equal(noteProbe(obs, { ok: true, durationMs: ms }, 0, P), 'ok');
    assert.equal(normalMs(obs), 20);
    assert.equal(isSlow(obs, 199, P), false, 'under the floor');
    const fast = fresh();
    noteProbe(fast, { ok: true, durationMs: 1 }, 0, P);
    assert.equal(isSlow(fast, 150, P), false, '150× normal, but under the 200 ms floor');
    assert.equal(isSlow(fast, 250, P), true);
    const slowDisk = fresh();
    for (let i = 0; i < 5; i++) noteProbe(slowDisk, { ok: true, durationMs: 50 }, 0, P);
    assert.equal(isSlow(slowDisk, 450, P), false, 'over the floor, under 10 × 50 ms');
    assert.equal(isSlow(slowDisk, 501, P), true);
    assert.equal(noteProbe(slowDisk, { ok: true, durationMs: 900 }, 1, P), 'slow');
    assert.equal(normalMs(slowDisk), 50, 'a slow probe does not raise the normal');
    assert.equal(state(slowDisk, 1), 'suspect');
  });

  test('failed probes are faults and reset the good streak', () => {
    const obs = fresh();
    noteProbe(obs, { ok: true, durationMs: 1 }, 0, P);
    noteProbe(obs, { ok: true, durationMs: 1 }, 0, P);
    assert.equal(obs.okStreak, 2);
    assert.equal(noteProbe(obs, { ok: false, what: 'timeout' }, 1, P), 'failed');
    assert.equal(obs.okStreak, 0);
    assert.equal(state(obs, 1), 'suspect');
  });

  test('the samples are bounded', () => {
    const obs = fresh();
    for (let i = 0; i < 100; i++) noteProbe(obs, { ok: true, durationMs: i }, 0, P);
    assert.ok(obs.probeMs!.length <= 15);
  });
});

describe('disk health: recovery', () => {
  test('masked by faults → recoveryProbes good probes in a row → verification due → trusted with a clean log', () => {
    const obs = fresh();
    for (const t of [0, 1, 2]) noteFault(obs, 'timeout', t, P);
    assert.equal(recoveryDue(obs, P), false);
    noteProbe(obs, { ok: true, durationMs: 1 }, 10, P);
    noteProbe(obs, { ok: true, durationMs: 1 }, 11, P);
    assert.match(computeDiskState(obs, P, 11).reason, /recovering: 2\/3 good probes/);
    noteProbe(obs, { ok: false, what: 'again' }, 12, P);
    assert.equal(obs.okStreak, 0, 'a failure restarts the streak');
    for (const t of [13, 14, 15]) noteProbe(obs, { ok: true, durationMs: 1 }, t, P);
    assert.equal(recoveryDue(obs, P), true);
    obs.verifying = { checked: 1, total: 4 };
    assert.equal(recoveryDue(obs, P), false, 'not twice');
    assert.equal(recoveryIntact(obs, P), true);
    assert.match(computeDiskState(obs, P, 15).reason, /verifying blobs 1\/4/);
    clearMask(obs);
    assert.equal(state(obs, 16), 'healthy', 'old faults do not re-mask a verified disk');
  });

  test('a fault during verification breaks it off', () => {
    const obs = fresh();
    noteHardFault(obs, 'EIO', 'x', 0);
    for (const t of [1, 2, 3]) noteProbe(obs, { ok: true, durationMs: 1 }, t, P);
    assert.equal(recoveryIntact(obs, P), true);
    noteFault(obs, 'slow read', 4, P);
    assert.equal(recoveryIntact(obs, P), false);
  });

  test('a gone disk recovers only once it is present again', () => {
    const obs = fresh();
    noteHardFault(obs, 'ENOENT', 'disk directory is gone', 0, 'gone');
    obs.okStreak = 5;
    assert.equal(recoveryDue(obs, P), false);
    obs.present = true;
    assert.equal(recoveryDue(obs, P), true);
  });
});

describe('disk health: operator', () => {
  test('drain: readable, not writable, reason names the note; mask: masked "operator: <note>"', () => {
    const obs = fresh();
    applyOperator(obs, 'drain', 'replacing, ticket 42', 0);
    assert.deepEqual(computeDiskState(obs, P, 0), { state: 'draining', reason: 'operator: replacing, ticket 42' });
    assert.ok(isReadable('draining') && !isWritable('draining'));
    applyOperator(obs, 'mask', 'clicking noise', 1);
    assert.deepEqual(computeDiskState(obs, P, 1), { state: 'masked', reason: 'operator: clicking noise' });
  });

  test('an operator mask is not lifted by good probes; unmask goes through probes and verification', () => {
    const obs = fresh();
    applyOperator(obs, 'mask', '', 0);
    for (let t = 1; t < 10; t++) noteProbe(obs, { ok: true, durationMs: 1 }, t, P);
    assert.equal(recoveryDue(obs, P), false);
    assert.equal(state(obs, 10), 'masked');
    applyOperator(obs, 'unmask', 'disk replaced', 11);
    assert.equal(obs.operator, 'none');
    const v = computeDiskState(obs, P, 11);
    assert.equal(v.state, 'masked', 'not trusted before probes and verification');
    assert.match(v.reason, /unmasked by the operator \(disk replaced\)/);
    assert.equal(recoveryDue(obs, P), false);
    for (const t of [12, 13, 14]) noteProbe(obs, { ok: true, durationMs: 1 }, t, P);
    assert.equal(recoveryDue(obs, P), true);
  });

  test('unmask of a drained disk is immediate (it never stopped serving)', () => {
    const obs = fresh();
    applyOperator(obs, 'drain', '', 0);
    applyOperator(obs, 'unmask', '', 1);
    assert.equal(state(obs, 1), 'healthy');
  });

  test('precedence: operator mask over faults; drain over readonly and suspect', () => {
    const obs = { ...fresh(), freeBytes: 0 };
    noteFault(obs, 'x', 0, P);
    applyOperator(obs, 'drain', '', 0);
    assert.equal(state(obs, 0), 'draining');
    noteHardFault(obs, 'EIO', 'x', 0);
    assert.equal(state(obs, 0), 'masked');
    applyOperator(obs, 'mask', 'n', 0);
    assert.equal(computeDiskState(obs, P, 0).reason, 'operator: n');
  });
});

describe('write ranking with health states', () => {
  test('healthy disks before suspect ones; draining, readonly and masked never', () => {
    const disks = [
      { id: 's', state: 'suspect' as const, freeBytes: 1000 },
      { id: 'h', state: 'healthy' as const, freeBytes: 10 },
      { id: 'd', state: 'draining' as const, freeBytes: 1000 },
      { id: 'm', state: 'masked' as const, freeBytes: 1000 },
    ];
    assert.deepEqual(rankDisksForWrite(disks, undefined, 1, 0), ['h', 's']);
    assert.deepEqual(rankDisksForWrite(disks, 's', 1, 0), ['s', 'h'], 'the tracker asked for it explicitly');
  });
});

describe('scrub throttle (token bucket)', () => {
  test('a burst, then the rate', () => {
    const b = new TokenBucket(1000, 100, 0);
    assert.equal(b.take(100, 0), 0, 'the burst');
    assert.equal(b.take(500, 0), 500, '500 bytes at 1000 B/s');
    assert.equal(b.take(0, 500), 0, 'paid off after the wait');
    assert.equal(b.take(100, 10_000), 0, 'tokens never exceed the burst');
    assert.equal(b.take(200, 10_000), 200);
    assert.equal(new TokenBucket(0, 1, 0).take(1e12, 0), 0, 'rate 0: unthrottled (the scrubber is off then anyway)');
  });
});
