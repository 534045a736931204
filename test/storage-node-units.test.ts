// The storage node's pure logic, without sockets or disks: range parsing, chunk math, disk
// state, disk choice, inventory batching, the change buffer, the LRU and the epoch fence.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { BufferPool } from '../storage-node/store/buffer-pool.js';
import { describe, test } from 'node:test';
import { EpochFence } from '../storage-node/epoch.js';
import { copyDeadlineMs } from '../storage-node/copy/replica-copy.js';
import { parseRange } from '../storage-node/range.js';
import { inventoryBatches } from '../storage-node/report/batches.js';
import { ChangeBuffer } from '../storage-node/report/change-buffer.js';
import type { Change } from '../storage-node/store/change-log.js';
import { rankDisksForWrite } from '../storage-node/store/choose-disk.js';
import { BlobHasher, chunkCount, chunksForRange, chunkSpan, sha256 } from '../storage-node/store/chunks.js';
import { forEachLimit, Semaphore } from '../storage-node/store/concurrency.js';
import { withDeadline } from '../storage-node/store/deadline.js';
import { resolveNodeId } from '../storage-node/store/disk-meta.js';
import { classifyIoError, computeDiskState } from '../storage-node/store/disk-state.js';
import { Inventory } from '../storage-node/store/inventory.js';
import { blobPath, isPlacedRight } from '../storage-node/store/layout.js';
import { Lru } from '../storage-node/store/lru.js';

const ID = createHash('sha256').update('x').digest('hex');

describe('parseRange', () => {
  test('no header, unknown unit or bad syntax: the whole blob', () => {
    assert.deepEqual(parseRange(undefined, 100), { kind: 'full' });
    assert.deepEqual(parseRange('items=0-5', 100), { kind: 'full' });
    assert.deepEqual(parseRange('bytes=abc', 100), { kind: 'full' });
    assert.deepEqual(parseRange('bytes=9-3', 100), { kind: 'full' }, 'last < first is invalid, ignored');
  });
  test('closed, open-ended and suffix ranges', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { kind: 'partial', startByte: 0, endByte: 9 });
    assert.deepEqual(parseRange('bytes=90-200', 100), { kind: 'partial', startByte: 90, endByte: 99 }, 'clamped to the end');
    assert.deepEqual(parseRange('bytes=50-', 100), { kind: 'partial', startByte: 50, endByte: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { kind: 'partial', startByte: 90, endByte: 99 });
    assert.deepEqual(parseRange('bytes=-1000', 100), { kind: 'partial', startByte: 0, endByte: 99 });
    assert.deepEqual(parseRange('Bytes = 5 - 6', 100), { kind: 'partial', startByte: 5, endByte: 6 });
  });
  test('unsatisfiable and multiple', () => {
    assert.deepEqual(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-5', 0), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=99999999999999999999-', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=0-1,5-9', 100), { kind: 'multiple' });
  });
});

describe('chunks', () => {
  test('chunk math', () => {
    assert.equal(chunkCount(0, 10), 0);
    assert.equal(chunkCount(10, 10), 1);
    assert.equal(chunkCount(11, 10), 2);
    assert.deepEqual(chunksForRange(5, 25, 10), { first: 0, last: 2 });
    assert.deepEqual(chunkSpan(2, 25, 10), { startByte: 20, endByte: 25 });
  });
  test('BlobHasher gives the whole hash and one digest per chunk, whatever the write sizes', () => {
    const data = randomBytes(10_000);
    const h = new BlobHasher(1024);
    for (let at = 0; at < data.length; ) {
      const n = Math.min(data.length - at, 1 + Math.floor(Math.random() * 3000));
      h.update(data.subarray(at, at + n));
      at += n;
    }
    const { idHex, sums } = h.finish();
    assert.equal(idHex, createHash('sha256').update(data).digest('hex'));
    assert.equal(sums.length, chunkCount(data.length, 1024) * 32);
    for (let c = 0; c < chunkCount(data.length, 1024); c++) {
      const { startByte, endByte } = chunkSpan(c, data.length, 1024);
      assert.ok(sums.subarray(c * 32, c * 32 + 32).equals(sha256(data.subarray(startByte, endByte))), `chunk ${c}`);
    }
    assert.equal(new BlobHasher(1024).finish().sums.length, 0, 'an empty blob has no chunks');
  });
});

describe('disk state', () => {
  const obs = { present: true, freeBytes: 1000, totalBytes: 2000 };
  test('healthy, readonly under the floor or after ENOSPC, masked when gone or faulty', () => {
    assert.equal(computeDiskState(obs, 500).state, 'healthy');
    assert.equal(computeDiskState(obs, 1001).state, 'readonly');
    assert.equal(computeDiskState({ ...obs, noSpaceAtMs: 1 }, 0).state, 'readonly');
    assert.equal(computeDiskState({ ...obs, present: false }, 0).state, 'masked');
    const faulty = computeDiskState({ ...obs, fault: { code: 'EIO', message: 'boom', atMs: 1 } }, 0);
    assert.equal(faulty.state, 'masked');
    assert.match(faulty.reason, /EIO/);
  });
  test('error classes', () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(classifyIoError(err('EIO')), 'fault');
    assert.equal(classifyIoError(err('ETIMEDOUT')), 'fault');
    assert.equal(classifyIoError(err('ENOSPC')), 'no-space');
    assert.equal(classifyIoError(err('ENOENT')), 'not-found');
    assert.equal(classifyIoError(err('EEXIST')), 'other');
  });
  test('a disk operation past its deadline fails, and a late result is released', async () => {
    let released = false;
    const slow = new Promise<string>((r) => setTimeout(() => r('late'), 50));
    await assert.rejects(withDeadline(slow, 5, 'slow op', () => (released = true)), /no answer from the disk within 5 ms/);
    await slow;
    await new Promise((r) => setImmediate(r));
    assert.equal(released, true);
    assert.equal(await withDeadline(Promise.resolve(7), 100, 'fast op'), 7);
  });
});

describe('rankDisksForWrite', () => {
  const disks = [
    { id: 'a', state: 'healthy' as const, freeBytes: 100 },
    { id: 'b', state: 'healthy' as const, freeBytes: 300 },
    { id: 'c', state: 'readonly' as const, freeBytes: 900 },
    { id: 'd', state: 'masked' as const, freeBytes: 900 },
  ];
  test('requested disk first when it can take the blob, then most free space', () => {
    assert.deepEqual(rankDisksForWrite(disks, undefined, 10, 0), ['b', 'a']);
    assert.deepEqual(rankDisksForWrite(disks, 'a', 10, 0), ['a', 'b']);
    assert.deepEqual(rankDisksForWrite(disks, 'c', 10, 0), ['b', 'a'], 'a readonly disk is never chosen');
    assert.deepEqual(rankDisksForWrite(disks, 'a', 95, 10), ['b'], 'a disk that would drop under the floor is left out');
    assert.deepEqual(rankDisksForWrite(disks, undefined, 1000, 0), []);
    assert.deepEqual(rankDisksForWrite(disks, 'b', 10, 0, 'b'), ['a', 'b'], 'a disk that just held a corrupt copy goes last');
  });
});

describe('inventory and batches', () => {
  test('per-disk counts follow adds and removes', () => {
    const inv = new Inventory();
    assert.equal(inv.add('x', { diskId: 'd1', sizeBytes: 10, kind: 'data' }), true);
    assert.equal(inv.add('x', { diskId: 'd2', sizeBytes: 10, kind: 'data' }), false);
    inv.add('y', { diskId: 'd1', sizeBytes: 5, kind: 'manifest' });
    assert.deepEqual(inv.countsFor('d1'), { blobs: 2, bytes: 15 });
    assert.equal(inv.remove('x', 'd2'), undefined, 'not on that disk');
    assert.equal(inv.remove('x')?.sizeBytes, 10);
    assert.deepEqual(inv.countsFor('d1'), { blobs: 1, bytes: 5 });
    assert.equal(inv.removeDisk('d1'), 1);
    assert.equal(inv.size, 0);
  });
  test('batches hold at most N entries across disks and cover everything once', () => {
    const entries: Array<[string, { diskId: string; sizeBytes: number; kind: 'data' }]> = [];
    for (let i = 0; i < 25; i++) entries.push([`b${i}`, { diskId: i % 2 ? 'd1' : 'd2', sizeBytes: i, kind: 'data' }]);
    const batches = [...inventoryBatches(entries, 10)];
    assert.equal(batches.length, 3);
    for (const b of batches) assert.ok(b.reduce((n, d) => n + d.blobs.length, 0) <= 10);
    const seen = batches.flatMap((b) => b.flatMap((d) => d.blobs.map(([id, size]) => `${d.id}/${id}/${size}`)));
    assert.deepEqual(seen.sort(), entries.map(([id, e]) => `${e.diskId}/${id}/${e.sizeBytes}`).sort());
    assert.deepEqual([...inventoryBatches([], 10)], []);
  });
});

describe('change buffer', () => {
  const change = (seq: number): Change => ({ seq, op: 'add', disk: 'd', blob: ID, size: 1, kind: 'data' });
  test('runs of consecutive changes, dropped once delivered', () => {
    const buf = new ChangeBuffer(10);
    for (const s of [1, 2, 3, 5, 6]) buf.push(change(s));
    assert.deepEqual(buf.peekRun(10).map((c) => c.seq), [1, 2, 3]);
    assert.deepEqual(buf.peekRun(2).map((c) => c.seq), [1, 2]);
    buf.dropThrough(3);
    assert.deepEqual(buf.peekRun(10).map((c) => c.seq), [5, 6]);
  });
  test('overflow empties the buffer and says so', () => {
    const buf = new ChangeBuffer(2);
    assert.equal(buf.push(change(1)), true);
    assert.equal(buf.push(change(2)), true);
    assert.equal(buf.push(change(3)), false);
    assert.equal(buf.length, 0);
  });
});

describe('small parts', () => {
  test('LRU forgets the least recently used', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    assert.equal(lru.get('b'), undefined);
    assert.equal(lru.get('a'), 1);
    assert.equal(lru.size, 2);
  });
  test('epoch fence refuses lower epochs only', () => {
    const f = new EpochFence();
    f.admit(undefined);
    f.admit(3);
    f.observe(2);
    assert.equal(f.highestSeen, 3);
    assert.throws(() => f.admit(2), /stale epoch 2/);
    f.admit(3);
    f.observe(7);
    assert.throws(() => f.admit(6), /stale epoch/);
  });
  test('node id: given, else from the disks, else new', () => {
    assert.deepEqual(resolveNodeId('n1', ['n2'], () => 'new'), { nodeId: 'n1', conflict: true });
    assert.deepEqual(resolveNodeId(undefined, ['n2', 'n2'], () => 'new'), { nodeId: 'n2', conflict: false });
    assert.deepEqual(resolveNodeId(undefined, [], () => 'new'), { nodeId: 'new', conflict: false });
  });
  test('paths come only from valid ids', () => {
    assert.equal(blobPath('/d', 'data', ID), `/d/blobs/${ID.slice(0, 2)}/${ID.slice(2, 4)}/${ID}`);
    assert.equal(blobPath('/d', 'manifest', ID), `/d/manifests/${ID.slice(0, 2)}/${ID.slice(2, 4)}/${ID}`);
    assert.throws(() => blobPath('/d', 'data', '../../etc/passwd'));
    assert.throws(() => blobPath('/d', 'data', ID.toUpperCase()));
    assert.equal(isPlacedRight(ID.slice(0, 2), ID.slice(2, 4), ID), true);
    assert.equal(isPlacedRight('00', '00', ID), ID.startsWith('0000'));
  });
  test('bounded helpers', async () => {
    const sem = new Semaphore(1);
    assert.equal(sem.tryAcquire(), true);
    assert.equal(sem.tryAcquire(), false);
    sem.release();
    assert.equal(sem.tryAcquire(), true);
    let inFlight = 0;
    let most = 0;
    await forEachLimit([1, 2, 3, 4, 5, 6], 2, async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
    });
    assert.equal(most, 2);
    assert.equal(copyDeadlineMs(0, 1000), 1000);
    assert.equal(copyDeadlineMs(1024 ** 3, 1000), 2000);
  });
});

describe('read buffer pool', () => {
  test('a buffer given back is handed out again; views of it count; foreign and oversize ones do not', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take(1000);
    assert.equal(a.length, 1000);
    assert.equal(a.buffer.byteLength, 1024);
    pool.give(a.subarray(10, 20));
    assert.equal(pool.size, 1);
    const b = pool.take(512);
    assert.equal(b.buffer, a.buffer, 'the same memory again');
    assert.equal(b.length, 512);
    assert.equal(pool.size, 0);
    const big = pool.take(4096);
    assert.equal(big.length, 4096);
    pool.give(big);
    pool.give(Buffer.alloc(1024));
    assert.equal(pool.size, 1, 'a plain 1024-byte Buffer has its own ArrayBuffer of that size: accepted');
    pool.give(Buffer.allocUnsafe(100));
    assert.equal(pool.size, 1, 'a slice of Node\'s shared pool is never taken in');
  });

  test('bounded: at most maxFree buffers wait', () => {
    const pool = new BufferPool(64, 2);
    const bufs = [pool.take(64), pool.take(64), pool.take(64)];
    for (const b of bufs) pool.give(b);
    assert.equal(pool.size, 2);
  });
});
