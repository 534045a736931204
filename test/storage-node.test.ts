// The storage node in-process on loopback with real temp-dir disks: signed writes and reads,
// ranges, refusals, corruption, replica copies, deletes, reports, and a disk vanishing.
//
// The tracker here is a FAKE: a small HTTP server that checks the node's signatures, records
// heartbeats, inventory batches and changes, and answers needFullReport until it has a full
// inventory (then false). It stands in for the real tracker, which test/cluster*.test.ts runs.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ChangeReport, DiskStatus, HeartbeatRequest, InventoryBatch } from '../common/contracts.js';
import type { Logger } from '../common/log.js';
import { NonceCache, signRequest, UNSIGNED_BODY, verifyRequest } from '../common/signing.js';
import { loadConfig } from '../config/load.js';
import { startStorageNode, type StorageNodeHandle } from '../storage-node/index.js';

const SECRET = 'storage-node-test-secret-' + randomBytes(8).toString('hex');
const CHUNK = 64 * 1024;
const MAX_BLOB = 1024 * 1024;
const TRACKER_EPOCH = 3;

const TEST_NODE_CONFIG = {
  heartbeatIntervalMs: 100,
  maxBlobBytes: MAX_BLOB,
  verifyChunkBytes: CHUNK,
  readBufferBytes: 16 * 1024,
  diskFreeFloorBytes: 0,
  diskCheckIntervalMs: 200,
  changePushDelayMs: 10,
  inventoryBatchBlobs: 3,
};

function configWith(storageNode: Record<string, unknown> = {}): ReturnType<typeof loadConfig> {
  return loadConfig({ overrides: { storageNode: { ...TEST_NODE_CONFIG, ...storageNode }, rpcTimeoutMs: 2000 } });
}

const config = configWith();

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tempRoot = mkdtempSync(join(tmpdir(), 'ktv-storage-node-test-'));
let dirSeq = 0;
const newDir = (name: string): string => join(tempRoot, `${name}-${++dirSeq}`);

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Collects log lines instead of printing them (and lets a test look for one). */
function captureLogger(lines: string[] = [], base: Record<string, unknown> = {}): Logger & { lines: string[] } {
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(JSON.stringify({ level, msg, ...base, ...fields }));
  return { lines, debug: () => {}, info: write('info'), warn: write('warn'), error: write('error'), child: (f) => captureLogger(lines, { ...base, ...f }) };
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

function blobFile(disk: string, id: string, kind = 'blobs'): string {
  return join(disk, kind, id.slice(0, 2), id.slice(2, 4), id);
}

// ---- the fake tracker -------------------------------------------------------------------------

class FakeTracker {
  readonly heartbeats: HeartbeatRequest[] = [];
  readonly batches: InventoryBatch[] = [];
  readonly changes: ChangeReport[] = [];
  readonly refused: string[] = [];
  /** Node → blob → "disk/size/kind", as a tracker would rebuild it from reports. */
  readonly views = new Map<string, Map<string, string>>();
  private readonly complete = new Set<string>();
  private readonly nonces = new NonceCache(10_000, 30_000);
  private server!: Server;
  url = '';
  /** Answer the next change push with a 500 (the node must fall back to a full report). */
  failNextChanges = false;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  view(nodeId: string): Map<string, string> {
    return this.views.get(nodeId) ?? new Map();
  }

  private async handle(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const verdict = verifyRequest(SECRET, { method: req.method!, pathAndQuery: req.url!, headers: req.headers, body }, this.nonces, 30_000);
    const answer = (status: number, value: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    };
    if (!verdict.ok) {
      this.refused.push(`${req.url}: ${verdict.reason}`);
      return answer(401, { error: verdict.reason });
    }
    const msg = JSON.parse(body.toString('utf8')) as never;
    if (req.url === '/internal/v1/heartbeat') {
      const hb = msg as HeartbeatRequest;
      this.heartbeats.push(hb);
      return answer(200, { needFullReport: !this.complete.has(`${hb.nodeId}/${hb.bootId}`), epoch: TRACKER_EPOCH, leader: true });
    }
    if (req.url === '/internal/v1/inventory') {
      const batch = msg as InventoryBatch;
      this.batches.push(batch);
      if (batch.final) {
        const parts = this.batches.filter((b) => b.reportId === batch.reportId);
        const view = new Map<string, string>();
        for (const b of parts) for (const d of b.disks) for (const [id, size, kind] of d.blobs) view.set(id, `${d.id}/${size}/${kind}`);
        this.views.set(batch.nodeId, view);
        this.complete.add(`${batch.nodeId}/${batch.bootId}`);
        // Changes after the report's sequence were held back by the node and come next.
      }
      return answer(200, { ok: true, needFullReport: false });
    }
    if (req.url === '/internal/v1/changes') {
      const report = msg as ChangeReport;
      if (this.failNextChanges) {
        this.failNextChanges = false;
        return answer(500, { error: 'tracker trouble' });
      }
      this.changes.push(report);
      const view = this.views.get(report.nodeId) ?? new Map<string, string>();
      for (const c of report.changes) {
        if (c.op === 'add') view.set(c.blob, `${c.disk}/${c.size}/${c.kind}`);
        else view.delete(c.blob);
      }
      this.views.set(report.nodeId, view);
      return answer(200, { ok: true, needFullReport: false });
    }
    answer(404, { error: 'not found' });
  }
}

// ---- HTTP helpers -------------------------------------------------------------------------------

interface RawAnswer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** False when the connection was cut before the announced body ended. */
  complete: boolean;
}

/** A request with node:http, so paths go out exactly as written (fetch would normalise `%2e%2e`). */
function raw(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = httpRequest({ host: u.hostname, port: u.port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = (): void => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
      res.on('close', done);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function signed(method: string, base: string, path: string, extra: Record<string, string> = {}, body?: Buffer, dateMs?: number): Promise<RawAnswer> {
  const headers = { ...signRequest(SECRET, method, path, method === 'PUT' ? UNSIGNED_BODY : body, dateMs), ...extra };
  if (body && method !== 'PUT') headers['content-type'] = 'application/json';
  // node:http sends DELETE bodies unframed unless told the length.
  if (body && !('content-length' in headers)) headers['content-length'] = String(body.length);
  return raw(base, path, { method, headers, body });
}

function put(node: string, data: Buffer, options: { id?: string; query?: string; kind?: string; epoch?: number } = {}): Promise<RawAnswer> {
  const path = `/internal/v1/blobs/${options.id ?? sha(data)}${options.query ?? ''}`;
  const extra: Record<string, string> = { 'content-length': String(data.length) };
  if (options.kind) extra['x-ktv-kind'] = options.kind;
  if (options.epoch !== undefined) extra['x-ktv-epoch'] = String(options.epoch);
  return signed('PUT', node, path, extra, data);
}

function get(node: string, id: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawAnswer> {
  return signed(method, node, `/internal/v1/blobs/${id}`, headers);
}

function json(answer: RawAnswer): Record<string, unknown> {
  return JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
}

/** A URL on which nothing listens (a port that was bound a moment ago). */
async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}/`;
}

async function health(node: StorageNodeHandle): Promise<{ nodeId: string; url: string; disks: DiskStatus[] }> {
  return (await (await fetch(new URL('/health', node.url))).json()) as { nodeId: string; url: string; disks: DiskStatus[] };
}

// ---- the tests --------------------------------------------------------------------------------------

describe('storage node (in-process, temp-dir disks, fake tracker)', () => {
  const tracker = new FakeTracker();
  const nodes: StorageNodeHandle[] = [];
  const log = captureLogger();
  let a: StorageNodeHandle;
  let disksA: string[];

  async function startNode(disks: string[], nodeId?: string, nodeConfig = config): Promise<StorageNodeHandle> {
    const node = await startStorageNode({ config: nodeConfig, host: '127.0.0.1', port: 0, trackers: [tracker.url], disks, nodeId, secret: SECRET, log });
    nodes.push(node);
    return node;
  }

  before(async () => {
    await tracker.start();
    disksA = [newDir('a-disk1'), newDir('a-disk2')];
    a = await startNode(disksA, 'node-a');
  });

  after(async () => {
    if (process.env.KTV_TEST_DUMP_LOG) for (const l of log.lines) process.stderr.write(l + '\n');
    // Every node and server is closed, also when a test failed.
    await Promise.allSettled(nodes.map((n) => n.close()));
    await tracker.close();
    rmSync(tempRoot, { recursive: true, force: true });
  });

  test('disks get meta files and report healthy', async () => {
    const h = await health(a);
    assert.equal(h.nodeId, 'node-a');
    assert.equal(h.url, a.url);
    assert.equal(h.disks.length, 2);
    for (const [i, d] of h.disks.entries()) {
      assert.equal(d.state, 'healthy');
      assert.ok(d.freeBytes > 0);
      const meta = JSON.parse(readFileSync(join(disksA[i]!, 'ktv-disk.json'), 'utf8')) as { diskId: string; nodeId: string };
      assert.deepEqual([meta.diskId, meta.nodeId], [d.id, 'node-a']);
    }
  });

  test('signed PUT, then GET whole, HEAD, ranges, 416, ETag and 304', async () => {
    const data = randomBytes(200_000);
    const id = sha(data);
    const created = await put(a.url, data);
    assert.equal(created.status, 201, created.body.toString());
    assert.deepEqual(Object.keys(json(created)).sort(), ['disk', 'id', 'size']);
    assert.equal(json(created).size, data.length);

    const whole = await get(a.url, id);
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(data));
    assert.equal(whole.headers.etag, `"${id}"`);
    assert.equal(whole.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    assert.equal(whole.headers['content-type'], 'application/octet-stream');

    const head = await get(a.url, id, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(data.length));
    assert.equal(head.body.length, 0);

    // A range across a chunk boundary (chunks are 64 KiB here).
    const part = await get(a.url, id, { range: 'bytes=65000-70000' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 65000-70000/${data.length}`);
    assert.ok(part.body.equals(data.subarray(65000, 70001)));

    const suffix = await get(a.url, id, { range: 'bytes=-100' });
    assert.equal(suffix.status, 206);
    assert.ok(suffix.body.equals(data.subarray(data.length - 100)));

    const open = await get(a.url, id, { range: 'bytes=199990-' });
    assert.equal(open.status, 206);
    assert.ok(open.body.equals(data.subarray(199990)));

    const beyond = await get(a.url, id, { range: `bytes=${data.length}-` });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers['content-range'], `bytes */${data.length}`);
    assert.match(String(json(beyond).error), /not satisfiable/);

    const multi = await get(a.url, id, { range: 'bytes=0-1,5-9' });
    assert.equal(multi.status, 416);
    assert.match(String(json(multi).error), /one byte range/);

    const cached = await get(a.url, id, { 'if-none-match': `"${id}"` });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
  });

  test('an empty blob and a manifest blob', async () => {
    const empty = Buffer.alloc(0);
    assert.equal((await put(a.url, empty)).status, 201);
    const got = await get(a.url, sha(empty));
    assert.equal(got.status, 200);
    assert.equal(got.body.length, 0);

    const manifest = Buffer.from(JSON.stringify({ type: 'ktv.song', id: 's1', version: 1 }));
    assert.equal((await put(a.url, manifest, { kind: 'manifest' })).status, 201);
    const disk = disksA.find((d) => existsSync(blobFile(d, sha(manifest), 'manifests')));
    assert.ok(disk, 'stored under manifests/');
    assert.ok(existsSync(blobFile(disk, sha(manifest), 'manifests') + '.sums'));
  });

  test('re-PUT of a stored blob is idempotent: 200 existed, no second add change', async () => {
    const data = randomBytes(3000);
    const id = sha(data);
    assert.equal((await put(a.url, data)).status, 201);
    const again = await put(a.url, data);
    assert.equal(again.status, 200);
    assert.equal(json(again).existed, true);
    await waitFor('the add change', () => tracker.changes.some((c) => c.changes.some((x) => x.blob === id)));
    await sleep(100);
    const adds = tracker.changes.flatMap((c) => c.changes).filter((x) => x.blob === id && x.op === 'add');
    assert.equal(adds.length, 1);
  });

  test('a body that does not hash to its id: 422, and nothing left in blobs/ or tmp/', async () => {
    const data = randomBytes(150_000);
    const wrongId = sha(Buffer.from('another body'));
    const res = await put(a.url, data, { id: wrongId });
    assert.equal(res.status, 422);
    assert.equal(json(res).error, `hash mismatch: body is ${sha(data)}`);
    for (const d of disksA) {
      assert.equal(existsSync(blobFile(d, wrongId)), false);
      assert.equal(existsSync(blobFile(d, sha(data))), false);
      assert.deepEqual(filesUnder(join(d, 'tmp')), []);
    }
    assert.equal((await get(a.url, wrongId)).status, 404);
  });

  test('unsigned, stale, replayed and path-trick requests are refused and change nothing', async () => {
    const data = randomBytes(5000);
    const id = sha(data);
    const before = disksA.flatMap(filesUnder).sort();

    const unsigned = await raw(a.url, `/internal/v1/blobs/${id}`, { method: 'PUT', body: data });
    assert.equal(unsigned.status, 401);
    assert.match(String(json(unsigned).error), /not signed/);

    const stale = await signed('PUT', a.url, `/internal/v1/blobs/${id}`, {}, data, Date.now() - 60_000);
    assert.equal(stale.status, 401);
    assert.match(String(json(stale).error), /expired/);

    const forged = await raw(a.url, `/internal/v1/blobs/${id}`, {
      method: 'PUT',
      headers: signRequest('some-other-secret-long-enough', 'PUT', `/internal/v1/blobs/${id}`, UNSIGNED_BODY),
      body: data,
    });
    assert.equal(forged.status, 401);

    for (const trick of ['..%2F..%2Fetc%2Fpasswd', '..%2F..%2F..%2Ftmp%2Fx', '%2e%2e', '%2E%2E%2F%2e%2e', id.slice(0, 63), id.toUpperCase(), `${id}%00`, `${id.slice(0, 62)}..`]) {
      const r = await signed('PUT', a.url, `/internal/v1/blobs/${trick}`, { 'content-length': String(data.length) }, data);
      assert.ok(r.status === 400 || r.status === 404, `${trick} → ${r.status}`);
      assert.ok(!/at .*\.js:\d+/.test(r.body.toString()), 'no stack trace');
      const g = await get(a.url, trick);
      assert.ok(g.status === 400 || g.status === 404, `GET ${trick} → ${g.status}`);
    }
    assert.deepEqual(disksA.flatMap(filesUnder).sort(), before, 'the disks are unchanged');

    // A replayed request (same nonce) is refused even though its signature is valid.
    const stored = randomBytes(1000);
    assert.equal((await put(a.url, stored)).status, 201);
    const path = `/internal/v1/blobs/${sha(stored)}`;
    const headers = signRequest(SECRET, 'GET', path, undefined);
    assert.equal((await raw(a.url, path, { headers })).status, 200);
    const replay = await raw(a.url, path, { headers });
    assert.equal(replay.status, 401);
    assert.match(String(json(replay).error), /replayed/);
  });

  test('oversize bodies are refused with 413 and nothing is stored', async () => {
    const id = sha(Buffer.from('big'));
    // Declared too large: refused on the headers, before any body byte is read.
    const path = `/internal/v1/blobs/${id}`;
    const declared = await new Promise<number>((resolve, reject) => {
      const u = new URL(a.url);
      const req = httpRequest({
        host: u.hostname,
        port: u.port,
        path,
        method: 'PUT',
        agent: false,
        headers: { ...signRequest(SECRET, 'PUT', path, UNSIGNED_BODY), 'content-length': String(MAX_BLOB + 1) },
      });
      req.on('response', (res) => {
        resolve(res.statusCode!);
        res.resume();
        req.destroy();
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(declared, 413);

    // Chunked (no length given): refused once the limit is crossed while streaming.
    const big = randomBytes(MAX_BLOB + 100_000);
    const bigPath = `/internal/v1/blobs/${sha(big)}`;
    const streamed = await new Promise<number>((resolve) => {
      const u = new URL(a.url);
      const req = httpRequest({ host: u.hostname, port: u.port, path: bigPath, method: 'PUT', agent: false, headers: signRequest(SECRET, 'PUT', bigPath, UNSIGNED_BODY) });
      req.on('response', (res) => {
        resolve(res.statusCode!);
        res.resume();
      });
      req.on('error', () => resolve(-1)); // the server may cut the connection before we read the answer
      for (let at = 0; at < big.length; at += 64 * 1024) req.write(big.subarray(at, at + 64 * 1024));
      req.end();
    });
    assert.ok(streamed === 413 || streamed === -1, `streamed oversize → ${streamed}`);
    if (process.env.KTV_TEST_DUMP_LOG) process.stderr.write(`streamed oversize answer: ${streamed}\n`);
    await waitFor('temp files to go', () => disksA.every((d) => filesUnder(join(d, 'tmp')).length === 0));
    for (const d of disksA) assert.equal(existsSync(blobFile(d, sha(big))), false);
  });

  test('a client that aborts mid-body leaves no temp file', async () => {
    const data = randomBytes(300_000);
    const path = `/internal/v1/blobs/${sha(data)}`;
    const u = new URL(a.url);
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path,
      method: 'PUT',
      agent: false,
      headers: { ...signRequest(SECRET, 'PUT', path, UNSIGNED_BODY), 'content-length': String(data.length) },
    });
    req.on('error', () => {});
    req.write(data.subarray(0, 100_000));
    await waitFor('a temp file to appear', () => disksA.some((d) => filesUnder(join(d, 'tmp')).length > 0));
    req.destroy();
    await waitFor('the temp file to go', () => disksA.every((d) => filesUnder(join(d, 'tmp')).length === 0));
    assert.equal((await get(a.url, sha(data))).status, 404);
  });

  test('stale epochs are refused (409); the heartbeat taught the node epoch 3', async () => {
    await waitFor('a heartbeat answer', () => tracker.heartbeats.length > 0);
    await sleep(150);
    const data = randomBytes(100);
    const res = await put(a.url, data, { epoch: TRACKER_EPOCH - 1 });
    assert.equal(res.status, 409);
    assert.match(String(json(res).error), /stale epoch/);
    assert.equal((await put(a.url, data, { epoch: TRACKER_EPOCH })).status, 201);
  });

  test('a corrupt chunk is never served: 500 before the headers, a cut body after; the replica is quarantined', async () => {
    // 4 chunks of 64 KiB; corrupt the third.
    const data = randomBytes(4 * CHUNK);
    const id = sha(data);
    const created = json(await put(a.url, data));
    const disk = disksA.find((d) => existsSync(blobFile(d, id)))!;
    const file = blobFile(disk, id);
    const bad = readFileSync(file);
    bad.fill(0x42, 2 * CHUNK + 100, 2 * CHUNK + 4196);
    writeFileSync(file, bad);

    const res = await get(a.url, id, { range: `bytes=${2 * CHUNK}-${2 * CHUNK + 5000}` });
    assert.equal(res.status, 500);
    assert.equal(json(res).error, `blob ${id} is corrupt on disk ${created.disk}; replica quarantined`);
    assert.equal(existsSync(file), false, 'moved out of blobs/');
    assert.ok(readdirSync(join(disk, 'quarantine')).some((n) => n.startsWith(id)), 'kept in quarantine/');
    assert.equal((await get(a.url, id)).status, 404);
    // A new copy (the tracker's repair) is not put back on the disk that just failed it.
    const rewritten = await put(a.url, data, { query: `?disk=${String(created.disk)}` });
    assert.equal(rewritten.status, 201);
    assert.notEqual(json(rewritten).disk, created.disk);
    await waitFor('a remove change', () => tracker.changes.some((c) => c.changes.some((x) => x.blob === id && x.op === 'remove')));
    assert.ok(log.lines.some((l) => l.includes('corrupt replica quarantined') && l.includes(id)));

    // Corruption found after the headers went out: the body is cut short, never wrong.
    const data2 = randomBytes(4 * CHUNK);
    const id2 = sha(data2);
    assert.equal((await put(a.url, data2)).status, 201);
    const disk2 = disksA.find((d) => existsSync(blobFile(d, id2)))!;
    const bad2 = readFileSync(blobFile(disk2, id2));
    bad2.fill(0x42, 2 * CHUNK + 100, 2 * CHUNK + 4196);
    writeFileSync(blobFile(disk2, id2), bad2);
    const cut = await get(a.url, id2);
    assert.equal(cut.status, 200);
    assert.equal(cut.complete, false, 'the connection was cut');
    assert.ok(cut.body.length <= 2 * CHUNK, 'nothing past the good chunks');
    assert.ok(cut.body.equals(data2.subarray(0, cut.body.length)), 'only true bytes');
    assert.equal(existsSync(blobFile(disk2, id2)), false);

    const metrics = await (await fetch(new URL('/metrics', a.url))).text();
    assert.match(metrics, /ktv_storage_corrupt_reads_total\{disk="[^"]+"\} [1-9]/);
  });

  test('a missing checksum sidecar is rebuilt from the file (its id proves it)', async () => {
    const data = randomBytes(3 * CHUNK + 17);
    const id = sha(data);
    assert.equal((await put(a.url, data)).status, 201);
    const disk = disksA.find((d) => existsSync(blobFile(d, id)))!;
    rmSync(blobFile(disk, id) + '.sums');
    const part = await get(a.url, id, { range: 'bytes=100000-150000' });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(data.subarray(100000, 150001)));
    assert.equal(readFileSync(blobFile(disk, id) + '.sums').length, 4 * 32);
  });

  test('fetch command: copies from another node (skipping a dead source), verified; bad sources → 502', async () => {
    const b = await startNode([newDir('b-disk1')], 'node-b');
    const data = randomBytes(300_000);
    const id = sha(data);
    assert.equal((await put(a.url, data)).status, 201);
    const fetchCmd = (body: unknown): Promise<RawAnswer> => signed('POST', b.url, `/internal/v1/blobs/${id}/fetch`, {}, Buffer.from(JSON.stringify(body)));

    const dead = await closedPortUrl();
    const copied = await fetchCmd({ sources: [dead, a.url], size: data.length, kind: 'data', epoch: TRACKER_EPOCH });
    assert.equal(copied.status, 201, copied.body.toString());
    assert.equal(json(copied).source, a.url);
    const got = await get(b.url, id);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(data));

    const again = await fetchCmd({ sources: [a.url], size: data.length, kind: 'data', epoch: TRACKER_EPOCH });
    assert.equal(again.status, 200);
    assert.equal(json(again).existed, true);

    // A source that answers with the wrong bytes, and one that does not have the blob.
    const liar = createServer((_req, res) => res.writeHead(200, { 'content-length': '5000' }).end(randomBytes(5000)));
    await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r));
    try {
      const liarUrl = `http://127.0.0.1:${(liar.address() as { port: number }).port}/`;
      const other = randomBytes(5000);
      const res = await signed('POST', b.url, `/internal/v1/blobs/${sha(other)}/fetch`, {}, Buffer.from(JSON.stringify({ sources: [liarUrl, a.url], size: 5000, kind: 'data', epoch: TRACKER_EPOCH })));
      assert.equal(res.status, 502);
      assert.match(String(json(res).error), /hash mismatch/);
      assert.match(String(json(res).error), /404/);
      assert.equal((await get(b.url, sha(other))).status, 404);
    } finally {
      liar.closeAllConnections();
      await new Promise((r) => liar.close(r));
    }

    const stale = await fetchCmd({ sources: [a.url], size: data.length, kind: 'data', epoch: TRACKER_EPOCH - 1 });
    assert.equal(stale.status, 409);
    const invalid = await fetchCmd({ sources: ['not a url'], size: 1, kind: 'data', epoch: TRACKER_EPOCH });
    assert.equal(invalid.status, 400);
    const metrics = await (await fetch(new URL('/metrics', b.url))).text();
    assert.match(metrics, /ktv_storage_copies_total\{result="copied"\} 1/);
    assert.match(metrics, /ktv_storage_hash_mismatches_total [1-9]/);
  });

  test('delete: removes file and sidecar, reports a remove change; stale epoch 409; absent 404', async () => {
    const data = randomBytes(10_000);
    const id = sha(data);
    assert.equal((await put(a.url, data)).status, 201);
    const disk = disksA.find((d) => existsSync(blobFile(d, id)))!;
    const del = (epoch: number): Promise<RawAnswer> => signed('DELETE', a.url, `/internal/v1/blobs/${id}`, {}, Buffer.from(JSON.stringify({ epoch })));

    const staleDel = await del(TRACKER_EPOCH - 1);
    assert.equal(staleDel.status, 409, staleDel.body.toString());
    assert.equal(existsSync(blobFile(disk, id)), true, 'a stale epoch changed nothing');
    const ok = await del(TRACKER_EPOCH);
    assert.equal(ok.status, 200);
    assert.deepEqual(json(ok), { deleted: 1 });
    assert.equal(existsSync(blobFile(disk, id)), false);
    assert.equal(existsSync(blobFile(disk, id) + '.sums'), false);
    assert.equal((await get(a.url, id)).status, 404);
    assert.equal((await del(TRACKER_EPOCH)).status, 404);
    await waitFor('the remove change', () => tracker.changes.some((c) => c.changes.some((x) => x.blob === id && x.op === 'remove')));
    const unsignedBody = await raw(a.url, `/internal/v1/blobs/${id}`, { method: 'DELETE', headers: { ...signRequest(SECRET, 'DELETE', `/internal/v1/blobs/${id}`, Buffer.from('{"epoch":9}')), 'content-length': '11' }, body: Buffer.from('{"epoch":1}') });
    assert.equal(unsignedBody.status, 401, 'a body that is not the signed one is refused');
  });

  test('the tracker gets a full inventory (in batches) and then every change', async () => {
    const view = await waitFor('the tracker view to match the node', async () => {
      const v = tracker.view('node-a');
      const h = await health(a);
      const total = h.disks.reduce((n, d) => n + d.blobs, 0);
      return v.size === total && v.size > 0 ? v : undefined;
    });
    // Every blob the tracker knows is on disk where it says, with the right size and kind.
    const disks = (await health(a)).disks;
    for (const [id, where] of view) {
      const [diskId, size, kind] = where.split('/');
      const root = disksA[disks.findIndex((d) => d.id === diskId)]!;
      const file = blobFile(root, id, kind === 'manifest' ? 'manifests' : 'blobs');
      assert.equal(readFileSync(file).length, Number(size), `${id} size`);
    }
    const first = tracker.batches.find((b) => b.nodeId === 'node-a')!;
    assert.equal(first.part, 0);
    assert.ok(tracker.batches.every((b) => b.disks.reduce((n, d) => n + d.blobs.length, 0) <= 3), 'batches bounded by inventoryBatchBlobs');
    assert.deepEqual(tracker.refused, [], 'every report was signed');
    const hb = tracker.heartbeats.filter((h) => h.nodeId === 'node-a').at(-1)!;
    assert.equal(hb.url, a.url);
    assert.equal(hb.disks.length, 2);
  });

  test('a restarted node keeps its id, re-scans its disks and reports them again', async () => {
    const disk = newDir('r-disk1');
    const node = await startNode([disk]);
    const data = randomBytes(2000);
    assert.equal((await put(node.url, data)).status, 201);
    const nodeId = node.nodeId;
    const boot1 = await waitFor('a heartbeat', () => tracker.heartbeats.find((h) => h.nodeId === nodeId));
    await node.close();
    writeFileSync(join(disk, 'tmp', `${sha(data)}.left-over.tmp`), 'half a blob from a crash');
    const again = await startNode([disk]);
    assert.deepEqual(readdirSync(join(disk, 'tmp')), [], 'stale temp files removed at start');
    assert.equal(again.nodeId, nodeId, 'the node id came from the disk meta file');
    assert.equal((await get(again.url, sha(data))).status, 200);
    await waitFor('a report of the new boot', () => tracker.batches.some((b) => b.nodeId === nodeId && b.bootId !== boot1.bootId && b.final && b.disks.some((d) => d.blobs.some(([id]) => id === sha(data)))));
  });

  test('a disk directory removed while running: the node keeps serving the other disk and writes go there', async () => {
    const disks = [newDir('c-disk1'), newDir('c-disk2')];
    const c = await startNode(disks, 'node-c');
    const [d1, d2] = (await health(c)).disks;
    const onD1 = randomBytes(5000);
    const onD2 = randomBytes(5000);
    assert.equal(json(await put(c.url, onD1, { query: `?disk=${d1!.id}` })).disk, d1!.id);
    assert.equal(json(await put(c.url, onD2, { query: `?disk=${d2!.id}` })).disk, d2!.id);

    rmSync(disks[0]!, { recursive: true, force: true });
    // Straight away, before the periodic check has noticed: a write aimed at the gone disk
    // lands on the other one.
    const fresh = randomBytes(5000);
    const written = await put(c.url, fresh, { query: `?disk=${d1!.id}` });
    assert.equal(written.status, 201, written.body.toString());
    assert.equal(json(written).disk, d2!.id);
    assert.equal((await get(c.url, sha(onD2))).status, 200);
    assert.equal((await get(c.url, sha(fresh))).status, 200);
    const gone = await get(c.url, sha(onD1));
    assert.equal(gone.status, 404);
    const h = await waitFor('disk 1 masked', async () => {
      const v = await health(c);
      return v.disks[0]!.state === 'masked' ? v : undefined;
    });
    assert.match(h.disks[0]!.reason, /gone|ENOENT/);
    assert.equal(h.disks[1]!.state, 'healthy');
    // The tracker hears about it: a full report without the masked disk's blobs.
    await waitFor('the tracker view without disk 1', () => {
      const v = tracker.view('node-c');
      return v.has(sha(onD2)) && v.has(sha(fresh)) && !v.has(sha(onD1));
    });
  });

  test('each tracker is reported to independently: a silent one does not delay the others; a failed push brings a full report', async () => {
    // A tracker that accepts connections and never answers.
    const hung: Array<{ atMs: number; closedAtMs?: number }> = [];
    const silent = createServer((req) => {
      const entry: { atMs: number; closedAtMs?: number } = { atMs: Date.now() };
      hung.push(entry);
      req.socket.on('close', () => (entry.closedAtMs = Date.now()));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const flaky = new FakeTracker();
    await flaky.start();
    try {
      const silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}/`;
      const node = await startStorageNode({ config, host: '127.0.0.1', port: 0, trackers: [silentUrl, flaky.url], disks: [newDir('t-disk1')], nodeId: 'node-t', secret: SECRET, log });
      nodes.push(node);
      await waitFor('a full report to the answering tracker', () => flaky.batches.some((b) => b.final));
      await waitFor('a request to the silent tracker', () => hung.length > 0);
      assert.equal(hung[0]!.closedAtMs, undefined, 'the answering tracker got its report while the silent one still had the first call open');

      flaky.failNextChanges = true;
      const data = randomBytes(1000);
      assert.equal((await put(node.url, data)).status, 201);
      await waitFor('a new full report listing the blob', () => flaky.batches.some((b) => b.final && b.disks.some((d) => d.blobs.some(([id]) => id === sha(data)))));
      assert.ok(flaky.view('node-t').has(sha(data)));
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
      await flaky.close();
    }
  });

  test('a sender that stalls mid-body is cut off after writeIdleTimeoutMs and leaves no temp file', async () => {
    const disk = newDir('i-disk1');
    const node = await startNode([disk], 'node-i', configWith({ writeIdleTimeoutMs: 200 }));
    const data = randomBytes(100_000);
    const path = `/internal/v1/blobs/${sha(data)}`;
    const u = new URL(node.url);
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path,
      method: 'PUT',
      agent: false,
      headers: { ...signRequest(SECRET, 'PUT', path, UNSIGNED_BODY), 'content-length': String(data.length) },
    });
    const closed = new Promise<void>((r) => req.on('close', () => r()));
    req.on('error', () => {});
    req.write(data.subarray(0, 10_000)); // …and nothing more
    await closed; // the node hung up on us
    await waitFor('the temp file to go', () => filesUnder(join(disk, 'tmp')).length === 0);
    assert.equal((await get(node.url, sha(data))).status, 404);
  });

  test('replica copies are bounded: past maxConcurrentCopies the node answers 503', async () => {
    const node = await startNode([newDir('k-disk1')], 'node-k', configWith({ maxConcurrentCopies: 1 }));
    // A source that sends headers and a few bytes, then stalls until the test lets go.
    const stalled: import('node:http').ServerResponse[] = [];
    const slow = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '50000' });
      res.write(randomBytes(100));
      stalled.push(res);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    try {
      const slowUrl = `http://127.0.0.1:${(slow.address() as { port: number }).port}/`;
      const command = (id: string): Promise<RawAnswer> =>
        signed('POST', node.url, `/internal/v1/blobs/${id}/fetch`, {}, Buffer.from(JSON.stringify({ sources: [slowUrl], size: 50000, kind: 'data', epoch: TRACKER_EPOCH })));
      const first = command(sha(Buffer.from('one')));
      await waitFor('the first copy to reach the source', () => stalled.length === 1);
      const second = await command(sha(Buffer.from('two')));
      assert.equal(second.status, 503);
      assert.match(String(json(second).error), /replica copies/);
      stalled[0]!.destroy(); // the source drops the connection mid-body
      const firstAnswer = await first;
      assert.equal(firstAnswer.status, 502);
    } finally {
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });

  test('a disk that cannot be opened at start is masked; the node starts on the others', async () => {
    const notADir = newDir('u-file');
    writeFileSync(notADir, 'a file where a disk directory should be');
    const badMeta = newDir('u-badmeta');
    const good = newDir('u-good');
    mkdirSync(badMeta);
    writeFileSync(join(badMeta, 'ktv-disk.json'), '{not json');
    const node = await startNode([notADir, badMeta, good], 'node-u');
    const h = await health(node);
    assert.deepEqual(h.disks.map((d) => d.state), ['masked', 'masked', 'healthy']);
    assert.match(h.disks[1]!.reason, /ktv-disk\.json is not valid JSON/);
    const res = await put(node.url, randomBytes(100));
    assert.equal(res.status, 201);
    assert.equal(json(res).disk, h.disks[2]!.id);
  });

  test('a disk under the free-space floor is readonly: reads only, writes get 507', async () => {
    const node = await startNode([newDir('f-disk1')], 'node-f', configWith({ diskFreeFloorBytes: Number.MAX_SAFE_INTEGER }));
    const h = await health(node);
    assert.equal(h.disks[0]!.state, 'readonly');
    assert.match(h.disks[0]!.reason, /floor/);
    const res = await put(node.url, randomBytes(100));
    assert.equal(res.status, 507);
    assert.match(String(json(res).error), /no writable disk/);
  });

  test('metrics and health are served without a signature', async () => {
    const text = await (await fetch(new URL('/metrics', a.url))).text();
    for (const name of ['ktv_storage_read_bytes_total', 'ktv_storage_written_bytes_total', 'ktv_storage_http_requests_total', 'ktv_storage_disk_blobs', 'ktv_storage_disk_free_bytes', 'ktv_storage_hash_mismatches_total']) {
      assert.ok(text.includes(name), name);
    }
    assert.match(text, /ktv_storage_http_requests_total\{method="PUT",route="\/internal\/v1\/blobs\/:id",status="201"\} [1-9]/);
    const unknown = await fetch(new URL('/nope', a.url));
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), { error: 'not found' });
  });
});
