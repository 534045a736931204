// The library's upload API against a real cluster: a tracker and three storage nodes as separate
// processes, the library in-process on port 0, real ffmpeg on generated songs. Every refusal is
// checked for its status, its one-line JSON message, and that nothing was stored: no new song in
// the catalog, no new blob in the cluster, no file left in the uploads folder.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SongManifest } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { createLogger } from '../common/log.js';
import { loadConfig } from '../config/load.js';
import { JobBoard, JobSlots } from '../library/jobs.js';
import { startLibrary, type LibraryHandle } from '../library/index.js';
import { makeDemoSong } from '../library/media/demo.js';
import { parseUploadFields } from '../library/server.js';
import { ADMIN, FAST_CONFIG, SECRET, TestCluster } from './helpers/cluster.js';
import { waitFor } from './helpers/procs.js';

const CONFIG = {
  ...FAST_CONFIG,
  // Repair must not add or move copies while the test counts them.
  tracker: { ...FAST_CONFIG.tracker, repairNewBlobGraceMs: 600_000 },
  library: { catalogWaitMs: 15_000 },
};

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

interface Source {
  data: Buffer;
  name: string;
}

const BASE_FIELDS = { title: '月亮代表我的心', artist: '邓丽君', language: 'zh' };

async function upload(base: string, fields: Record<string, string>, file: Source | undefined, headers: Record<string, string> = { authorization: `Bearer ${ADMIN}` }): Promise<Answer> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  if (file) form.append('media', new Blob([new Uint8Array(file.data)]), file.name);
  const res = await fetch(new URL('/api/v1/songs', base), { method: 'POST', body: form, headers });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    assert.fail(`answer ${res.status} is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body };
}

/** A raw request: headers now, body bytes only as the test writes them. */
function rawUpload(base: string, contentLength: number, boundary: string): { req: http.ClientRequest; response: Promise<{ status: number; body: string }> } {
  const req = http.request(new URL('/api/v1/songs', base), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(contentLength),
    },
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
  });
  req.flushHeaders();
  return { req, response };
}

function assertOneLineError(a: Answer, status: number, pattern?: RegExp): void {
  assert.equal(a.status, status, `expected ${status}, got ${a.status} ${JSON.stringify(a.body)}`);
  assert.equal(typeof a.body.error, 'string', JSON.stringify(a.body));
  const message = a.body.error as string;
  assert.ok(message.length > 0 && !/[\r\n]/.test(message), `one-line message: ${JSON.stringify(message)}`);
  assert.ok(!/\bat .+:\d+:\d+\)?/.test(message), `no stack trace: ${message}`);
  if (pattern) assert.match(message, pattern);
}

describe('library HTTP', { timeout: 300_000 }, () => {
  const cluster = new TestCluster('library-http', CONFIG);
  let lib: LibraryHandle;
  /** A second library with a tiny upload limit and no queue, for 413 and 503. */
  let small: LibraryHandle;
  let song: Source;
  let legacy: Source;
  /** Longer, so close() can catch its ingest half way. */
  let long: Source;
  const log = createLogger('library', 'error');

  const songCount = async (): Promise<number> =>
    (await rpc<{ songs: unknown[] }>(cluster.trackerUrl, '/api/v1/songs?limit=200', { timeoutMs: 3000 })).songs.length;
  const blobCount = async (): Promise<number> => (await cluster.cluster()).blobs.total;
  const leftovers = (h: LibraryHandle): string[] => [...readdirSync(join(h.workDir, 'uploads')), ...readdirSync(join(h.workDir, 'packaging'))];

  /** Runs a refused request and checks that it left nothing anywhere. */
  async function refused(h: LibraryHandle, run: () => Promise<Answer>, status: number, pattern?: RegExp): Promise<Answer> {
    const songsBefore = await songCount();
    const blobsBefore = await blobCount();
    const answer = await run();
    assertOneLineError(answer, status, pattern);
    assert.equal(await songCount(), songsBefore, 'no new song in the catalog');
    assert.equal(await blobCount(), blobsBefore, 'no new blob in the cluster');
    assert.deepEqual(leftovers(h), [], 'no file left in the work dir');
    return answer;
  }

  before(async () => {
    await cluster.startTracker();
    await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster.addNode(id, 1)));
    await cluster.waitAlive(3);
    const [a, b, c] = await Promise.all([
      makeDemoSong(join(cluster.root, 'song.mp4'), { title: 'Moon', durationS: 8, vocalHz: 440, backingHz: 1000, layout: 'two-streams', vocalTitle: '原唱 Vocal', backingTitle: '伴唱 Backing' }),
      makeDemoSong(join(cluster.root, 'legacy.mpg'), { title: 'Old song', durationS: 8, vocalHz: 440, backingHz: 1000, layout: 'legacy-lr', vocalChannel: 'left' }),
      makeDemoSong(join(cluster.root, 'long.mp4'), { title: 'Long', durationS: 60, vocalHz: 500, backingHz: 900, layout: 'two-streams' }),
    ]);
    long = { data: await readFile(c.file), name: 'long.mp4' };
    song = { data: await readFile(a.file), name: '月亮代表我的心.mp4' };
    legacy = { data: await readFile(b.file), name: 'old.mpg' };

    const base = { host: '127.0.0.1', port: 0, trackers: [cluster.trackerUrl], secret: SECRET, adminToken: ADMIN, log };
    lib = await startLibrary({ ...base, config: loadConfig({ overrides: { ...CONFIG, library: { ...CONFIG.library, workDir: join(cluster.root, 'lib') } } }) });
    small = await startLibrary({
      ...base,
      config: loadConfig({ overrides: { ...CONFIG, library: { ...CONFIG.library, workDir: join(cluster.root, 'lib-small'), maxUploadBytes: 64 * 1024, jobs: 1, queueMax: 0 } } }),
    });
  });

  after(async () => {
    await Promise.all([lib?.close(), small?.close()]);
    await cluster.close();
  });

  it('serves the upload page, health and metrics', async () => {
    const page = await fetch(lib.url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const html = await page.text();
    for (const name of ['media', 'title', 'artist', 'language', 'genre', 'vocalTrack', 'backingTrack', 'vocalChannel', 'adminToken']) {
      assert.match(html, new RegExp(`name="${name}"`), `form field ${name}`);
    }
    assert.match(html, /歌名/);
    for (const asset of ['app.js', 'style.css']) assert.equal((await fetch(new URL(asset, lib.url))).status, 200, asset);
    const health = (await (await fetch(new URL('/health', lib.url))).json()) as { ok: boolean; role: string };
    assert.deepEqual([health.ok, health.role], [true, 'library']);
  });

  it('checks the admin token before reading the body', async () => {
    const file = { data: Buffer.from('x'.repeat(1000)), name: 'a.mp4' };
    await refused(lib, () => upload(lib.url, BASE_FIELDS, file, {}), 401, /admin token/);
    await refused(lib, () => upload(lib.url, BASE_FIELDS, file, { authorization: 'Bearer wrong-token-wrong-token' }), 403, /wrong admin token/);
    const jobs = await fetch(new URL('/api/v1/jobs/abcdefgh', lib.url));
    assert.equal(jobs.status, 401);
  });

  let songId = '';

  it('ingests an upload: 201, manifest with 3 renditions on 2 replicas each, progress done', async () => {
    const jobId = `job-${randomBytes(8).toString('hex')}`;
    const answer = await upload(lib.url, { ...BASE_FIELDS, genre: 'pop' }, song, { authorization: `Bearer ${ADMIN}`, 'x-ktv-job': jobId });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    songId = answer.body.id as string;
    assert.match(songId, /^s[0-9a-f]{20}$/);
    assert.equal(answer.body.existing, false);
    assert.equal(answer.body.title, BASE_FIELDS.title);
    assert.ok(Math.abs((answer.body.durationS as number) - 8) < 0.5, `durationS ${answer.body.durationS}`);
    assert.ok(answer.body.videoMode === 'remux' || answer.body.videoMode === 'transcode');
    assert.deepEqual(leftovers(lib), []);

    const manifest = await rpc<SongManifest>(cluster.trackerUrl, `/api/v1/songs/${songId}`, { timeoutMs: 3000 });
    assert.equal(manifest.title, BASE_FIELDS.title);
    assert.equal(manifest.artist, BASE_FIELDS.artist);
    assert.equal(manifest.sourceName, song.name);
    assert.equal(manifest.renditions.length, 3);
    assert.deepEqual(manifest.renditions.map((r) => r.role).sort(), ['backing', 'video', 'vocal']);
    for (const r of manifest.renditions) {
      assert.ok(r.playlistBlob, `${r.role} has a playlist blob`);
      for (const blob of [r.blob, r.playlistBlob]) {
        const located = await waitFor(`2 replicas of ${blob}`, async () => {
          const l = await cluster.locate(blob);
          return l.replicas.length >= 2 ? l : undefined;
        });
        assert.equal(located.replicas.length, 2, `blob ${blob} replicas`);
        assert.equal(new Set(located.replicas.map((x) => x.nodeId)).size, 2, 'on two distinct nodes');
      }
    }

    const job = await fetch(new URL(`/api/v1/jobs/${jobId}`, lib.url), { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(job.status, 200);
    const state = (await job.json()) as { stage: string; fraction?: number; result?: { id: string } };
    assert.equal(state.stage, 'done');
    assert.equal(state.result?.id, songId);
    // A job id is single-use, and an unknown one is a 404.
    const tiny = { data: Buffer.from('x'), name: 'x.mp4' };
    await refused(lib, () => upload(lib.url, BASE_FIELDS, tiny, { authorization: `Bearer ${ADMIN}`, 'x-ktv-job': jobId }), 409);
    const unknown = await fetch(new URL('/api/v1/jobs/no-such-job-123', lib.url), { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(unknown.status, 404);
    assert.equal((await fetch(new URL('/api/v1/jobs/bad!', lib.url), { headers: { authorization: `Bearer ${ADMIN}` } })).status, 400);
  });

  it('answers 200 existing:true for the same file again and stores nothing new', async () => {
    assert.ok(songId, 'needs the first upload');
    const blobsBefore = await blobCount();
    const answer = await upload(lib.url, BASE_FIELDS, song);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.id, songId);
    assert.equal(answer.body.existing, true);
    assert.equal(await blobCount(), blobsBefore);
    assert.deepEqual(leftovers(lib), []);
  });

  it('ingests a legacy left/right .mpg with vocalChannel=left', async () => {
    const answer = await upload(lib.url, { title: 'Old song', artist: 'Someone', language: 'en', vocalChannel: 'left' }, legacy);
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const manifest = await rpc<SongManifest>(cluster.trackerUrl, `/api/v1/songs/${answer.body.id as string}`, { timeoutMs: 3000 });
    assert.equal(manifest.audio?.mapping, 'vocal-channel');
    assert.equal(manifest.renditions.length, 3);
    assert.deepEqual(leftovers(lib), []);
  });

  it('refuses bad fields with 400 naming the field', async () => {
    await refused(lib, () => upload(lib.url, { artist: 'a', language: 'zh' }, song), 400, /title is required/);
    await refused(lib, () => upload(lib.url, { ...BASE_FIELDS, title: '   ' }, song), 400, /title is required/);
    await refused(lib, () => upload(lib.url, { ...BASE_FIELDS, vocalChannel: 'middle' }, legacy), 400, /vocalChannel/);
    await refused(lib, () => upload(lib.url, { ...BASE_FIELDS, vocalTrack: '-1' }, song), 400, /vocalTrack/);
    await refused(lib, () => upload(lib.url, { ...BASE_FIELDS, colour: 'red' }, song), 400, /unknown field "colour"/);
    await refused(lib, () => upload(lib.url, BASE_FIELDS, undefined), 400, /no media file/);
    await refused(lib, async () => {
      const form = new FormData();
      for (const [k, v] of Object.entries(BASE_FIELDS)) form.append(k, v);
      form.append('video', new Blob([new Uint8Array(song.data)]), 'x.mp4');
      const res = await fetch(new URL('/api/v1/songs', lib.url), { method: 'POST', body: form, headers: { authorization: `Bearer ${ADMIN}` } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    }, 400, /"video"/);
  });

  it('refuses what is not a song: 415 for text, 422 for a truncated file, 422 for one stereo stream without vocalChannel', async () => {
    const text = { data: Buffer.from('this is not a video, just words\n'.repeat(200)), name: 'notes.mp4' };
    await refused(lib, () => upload(lib.url, BASE_FIELDS, text), 415);
    // The first half of an MP4 whose index (moov) is at the end: recognised but cut short.
    const half = { data: song.data.subarray(0, Math.floor(song.data.length / 2)), name: 'half.mp4' };
    const truncated = await refused(lib, () => upload(lib.url, BASE_FIELDS, half), 422);
    assert.ok((truncated.body.error as string).length < 400, 'a short message');
    await refused(lib, () => upload(lib.url, { title: 'Old song', artist: 'Someone', language: 'en' }, legacy), 422, /vocalChannel/);
  });

  it('refuses an oversize upload with 413 and removes the partial file', async () => {
    // Past the file limit but within the framing slack: multer stops writing and deletes.
    const big = { data: randomBytes(64 * 1024 + 50_000), name: 'big.mp4' };
    await refused(small, () => upload(small.url, BASE_FIELDS, big), 413, /limit/);
    // Declared far over the limit: refused on the headers, before any body byte.
    const { req, response } = rawUpload(lib.url, 10 * 1024 ** 4, 'b0undary');
    const answer = await response;
    req.destroy();
    assert.equal(answer.status, 413);
    assert.match((JSON.parse(answer.body) as { error: string }).error, /limit/);
  });

  it('removes the partial file when the client disconnects mid-upload', async () => {
    const boundary = 'x-boundary-1234';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="media"; filename="a.mp4"\r\nContent-Type: video/mp4\r\n\r\n`);
    const { req, response } = rawUpload(lib.url, 50 * 1024 * 1024, boundary);
    response.catch(() => undefined);
    req.on('error', () => undefined);
    req.write(head);
    req.write(randomBytes(256 * 1024));
    await waitFor('a partial upload on disk', () => readdirSync(join(lib.workDir, 'uploads')).length === 1);
    req.destroy();
    await waitFor('the partial upload removed', () => leftovers(lib).length === 0);
  });

  it('answers 503 library busy when the queue is full', async () => {
    // `small` has one slot and no queue: a slow upload holds it.
    const boundary = 'x-boundary-5678';
    const { req, response } = rawUpload(small.url, 60 * 1024, boundary);
    response.catch(() => undefined);
    req.on('error', () => undefined);
    req.write(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="media"; filename="a.mp4"\r\n\r\n`));
    req.write(randomBytes(16 * 1024));
    await waitFor('the slow upload admitted', () => readdirSync(join(small.workDir, 'uploads')).length === 1);
    const busy = await upload(small.url, BASE_FIELDS, { data: Buffer.from('x'), name: 'x.mp4' });
    assertOneLineError(busy, 503, /library busy/);
    req.destroy();
    await waitFor('the slow upload cleaned up', () => leftovers(small).length === 0);
    // The place is free again: the next refusal is about the file, not the queue.
    await refused(small, () => upload(small.url, BASE_FIELDS, { data: Buffer.from('not a video'), name: 'x.mp4' }), 415);
  });

  it('close() cancels a running ingest and leaves nothing behind', async () => {
    const workDir = join(cluster.root, 'lib-closing');
    const closing = await startLibrary({
      host: '127.0.0.1', port: 0, trackers: [cluster.trackerUrl], secret: SECRET, adminToken: ADMIN, log,
      config: loadConfig({ overrides: { ...CONFIG, library: { ...CONFIG.library, workDir } } }),
    });
    const songsBefore = await songCount();
    const jobId = `close-${randomBytes(6).toString('hex')}`;
    const pending = upload(closing.url, { ...BASE_FIELDS, title: 'Long' }, long, { authorization: `Bearer ${ADMIN}`, 'x-ktv-job': jobId }).catch((e: Error) => e);
    await waitFor('the ingest under way', async () => {
      const res = await fetch(new URL(`/api/v1/jobs/${jobId}`, closing.url), { headers: { authorization: `Bearer ${ADMIN}` } });
      const state = res.ok ? ((await res.json()) as { stage: string }) : undefined;
      return state && ['loudness', 'packaging'].includes(state.stage);
    }, 30_000, 20);
    await closing.close();
    const outcome = await pending;
    // The connection is closed under the request: a network error, or the 499 if it got out first.
    assert.ok(outcome instanceof Error || outcome.status === 499, `outcome ${JSON.stringify(outcome instanceof Error ? outcome.message : outcome)}`);
    assert.deepEqual(readdirSync(workDir), [], 'uploads and packaging folders removed');
    assert.equal(await songCount(), songsBefore);
  });

  it('exports upload metrics', async () => {
    const text = await (await fetch(new URL('/metrics', lib.url))).text();
    assert.match(text, /ktv_library_uploads_total\{status="201"\} [1-9]/);
    assert.match(text, /ktv_library_uploads_total\{status="401"\} 1/);
    assert.match(text, /ktv_library_upload_received_bytes_total [1-9]/);
    assert.match(text, /ktv_library_ingest_seconds_count [1-9]/);
    assert.match(text, /ktv_library_queue_length 0/);
    assert.match(text, /ktv_library_jobs_running 0/);
  });
});

describe('library units', () => {
  it('JobSlots: runs `slots` at once, queues up to queueMax, refuses beyond', async () => {
    const slots = new JobSlots(1, 1);
    const a = slots.tryAdmit()!;
    const b = slots.tryAdmit()!;
    assert.equal(slots.tryAdmit(), undefined, 'full');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const order: string[] = [];
    const ra = a.run(async () => {
      order.push('a');
      await gate;
    });
    const rb = b.run(async () => {
      order.push('b');
    });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ['a'], 'b waits for the slot');
    assert.equal(slots.runningCount, 1);
    assert.equal(slots.queuedCount, 1);
    release();
    await Promise.all([ra, rb]);
    assert.deepEqual(order, ['a', 'b']);
    assert.equal(slots.runningCount + slots.queuedCount, 0);
    const c = slots.tryAdmit()!;
    c.release();
    c.release();
    assert.equal(slots.queuedCount, 0, 'release is idempotent');
  });

  it('JobBoard: expires by age and bounds its size', () => {
    let now = 0;
    const board = new JobBoard(1000, 3, () => now);
    for (const id of ['j1', 'j2', 'j3', 'j4']) board.set(id, { stage: 'queued' });
    assert.equal(board.size, 3);
    assert.equal(board.get('j1'), undefined, 'oldest evicted');
    now = 500;
    board.set('j2', { stage: 'packaging', fraction: 0.5 });
    now = 1200;
    assert.equal(board.get('j3'), undefined, 'expired');
    assert.deepEqual(board.get('j2'), { stage: 'packaging', fraction: 0.5 });
  });

  it('parseUploadFields: empty optional fields are absent, numbers are parsed', () => {
    assert.deepEqual(parseUploadFields({ title: ' A ', artist: 'B', language: 'zh', genre: '', vocalTrack: '1', backingTrack: '0', vocalChannel: '' }), {
      title: 'A',
      artist: 'B',
      language: 'zh',
      vocalTrack: 1,
      backingTrack: 0,
    });
    assert.throws(() => parseUploadFields({ title: 'A', artist: 'B' }), /language is required/);
    assert.throws(() => parseUploadFields({ title: ['a', 'b'], artist: 'B', language: 'zh' }), /title must be text/);
  });
});
