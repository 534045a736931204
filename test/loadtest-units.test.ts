// The load test's pure parts: Zipf popularity, the seeded generator, a level's arithmetic, the
// --bitrate parser.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseBitrate } from '../cli/loadtest.js';
import { UsageError } from '../cli/args.js';
import { formatTable, levelResult, spread } from '../loadtest/report.js';
import { seededRandom, Zipf } from '../loadtest/zipf.js';

describe('Zipf popularity', () => {
  test('probabilities follow 1/k^s and sum to 1', () => {
    const z = new Zipf(10, 1);
    const h10 = [...Array(10).keys()].reduce((n, k) => n + 1 / (k + 1), 0);
    for (let k = 0; k < 10; k++) assert.ok(Math.abs(z.probability(k) - 1 / (k + 1) / h10) < 1e-12);
    const total = [...Array(10).keys()].reduce((n, k) => n + z.probability(k), 0);
    assert.ok(Math.abs(total - 1) < 1e-12);
    const flat = new Zipf(4, 0);
    for (let k = 0; k < 4; k++) assert.ok(Math.abs(flat.probability(k) - 0.25) < 1e-12);
  });

  test('samples land on each rank at its probability (200,000 draws, within 1%)', () => {
    const z = new Zipf(10, 1);
    const rand = seededRandom(42);
    const counts = new Array<number>(10).fill(0);
    const draws = 200_000;
    for (let i = 0; i < draws; i++) counts[z.sample(rand())]! += 1;
    for (let k = 0; k < 10; k++) assert.ok(Math.abs(counts[k]! / draws - z.probability(k)) < 0.01, `rank ${k}: ${counts[k]! / draws} vs ${z.probability(k)}`);
  });

  test('edges: u = 0 is the hit, u just under 1 is the last rank; bad shapes refused', () => {
    const z = new Zipf(5, 1.2);
    assert.equal(z.sample(0), 0);
    assert.equal(z.sample(0.999999999), 4);
    assert.throws(() => new Zipf(0, 1), RangeError);
    assert.throws(() => new Zipf(3, -1), RangeError);
    assert.throws(() => new Zipf(3, Number.NaN), RangeError);
  });

  test('the same seed gives the same sequence; another seed another one', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const c = seededRandom(8);
    const sa = Array.from({ length: 20 }, () => a());
    assert.deepEqual(sa, Array.from({ length: 20 }, () => b()));
    assert.notDeepEqual(sa, Array.from({ length: 20 }, () => c()));
    assert.ok(sa.every((x) => x >= 0 && x < 1));
  });
});

describe('a load level\'s figures', () => {
  test('throughput, streams\' worth, rebuffer ratio, CPU per Gbit/s', () => {
    const l = levelResult(
      100,
      10,
      { bytes: 5_625_000_000, stalls: 2, stallMs: 3000, errors: 0, gaveUp: 0, songsStarted: 120, playingRoomSeconds: 1000, generatorCpuS: 5, serverCpuS: 9, machineBusyS: 15, machineCores: 2 },
      { downloadMs: [100, 200, 300, 4000], durationMs: [4000, 4000, 4000, 4000], startupMs: [50, 70], errors: [] },
      45e6,
      false,
    );
    assert.equal(l.bytesPerS, 562_500_000);
    assert.equal(l.gbitPerS, 4.5);
    assert.equal(l.streamsAtBitrate, 100);
    assert.equal(l.clean, false);
    assert.equal(l.stallS, 3);
    assert.equal(l.rebufferRatio, 0.003);
    assert.equal(l.generatorCpuPercent, 50);
    assert.equal(l.generatorCoresPerGbit, 0.111);
    assert.equal(l.serverCpuPercent, 90);
    assert.equal(l.serverCoresPerGbit, 0.2);
    assert.equal(l.machineBusyPercent, 75);
    assert.deepEqual(l.segmentDownloadMs, { count: 4, p50: 200, p99: 4000, max: 4000 });
    assert.equal(l.segmentDownloadOverDuration.p99, 1);
    assert.match(formatTable([l]), /^\s*streams\s+result.*\n\s+100\s+STALL\s+4\.50\s+563\s+2\s+3\.0/);
  });

  test('a clean level; empty samples give NaN spreads, not zeros', () => {
    const l = levelResult(3, 5, { bytes: 0, stalls: 0, stallMs: 0, errors: 0, gaveUp: 0, songsStarted: 0, playingRoomSeconds: 0, generatorCpuS: 0, machineBusyS: 0, machineCores: 2 }, { downloadMs: [], durationMs: [], startupMs: [], errors: [] }, 45e6, false);
    assert.equal(l.clean, true);
    assert.equal(l.serverCpuPercent, undefined);
    assert.ok(Number.isNaN(spread([]).p50));
    assert.ok(Number.isNaN(l.segmentDownloadMs.p99));
  });
});

describe('--bitrate', () => {
  test('suffixes and plain numbers', () => {
    assert.equal(parseBitrate('45M'), 45e6);
    assert.equal(parseBitrate('45000000'), 45e6);
    assert.equal(parseBitrate('2.5G'), 2.5e9);
    assert.equal(parseBitrate('800k'), 8e5);
    assert.equal(parseBitrate('45Mbps'), 45e6);
    for (const bad of ['', 'fast', '-4M', '0', '45 M', '4X']) assert.throws(() => parseBitrate(bad), UsageError, bad);
  });
});
