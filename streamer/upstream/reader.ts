// Byte ranges from storage nodes: signed GET with Range over keep-alive sockets, a deadline on
// every read, failover to the next replica inside the same client request.
//
// Failover resumes: blobs are immutable and content-addressed, so when a replica fails after
// sending part of a range, the next replica is asked for the rest (from the byte reached) and the
// client sees one uninterrupted body. Only when every replica has failed does a client see an
// error: a 502 before the first byte, a cut connection after it (HTTP has no other way to say
// "the rest is not coming"; hls.js retries the segment).
//
// Deadlines (streamer.upstreamTimeoutMs, default 1.5 s, well inside a 4 s segment): time to the
// first byte, and the longest wait for any next chunk. A buffered read (a cacheable segment) must
// also finish within upstreamTimeoutMs + length / upstreamMinBytesPerS. A streamed-through read
// has no total deadline: the client's own pace sets it, and only waits for upstream bytes count.
import http from 'node:http';
import type { ReplicaInfo } from '../../common/contracts.js';
import type { ReadFailureReason } from '../../common/contracts.js';
import { HttpError, signedBlobHeaders } from '../../common/http.js';
import { RawHttpError, RawHttpPool, type RawHead } from '../../common/raw-http.js';
import type { Logger } from '../../common/log.js';
import type { LocationResolver } from '../resolve/locations.js';
import type { StreamerMetrics } from '../metrics.js';
import type { FailureReporter } from './failure-reporter.js';
import type { ReplicaScores } from './scores.js';

export interface UpstreamOptions {
  secret: string;
  timeoutMs: number;
  minBytesPerS: number;
  maxAttempts: number;
  maxSocketsPerNode: number;
  streamerId: string;
}

export class UpstreamError extends Error {
  constructor(readonly reason: ReadFailureReason, message: string, readonly retrySameReplica = false) {
    super(message);
  }
}

/** A read waits at most this many upstreamTimeoutMs for a free connection to its node. */
const QUEUE_TIMEOUT_FACTOR = 4;

/** Idle keep-alive sockets are closed before the storage node's 5 s keep-alive timeout would. */
const FREE_SOCKET_TIMEOUT_MS = 4000;

export class UpstreamReader {
  /** Streamed-through ranges (rare: over cacheMaxEntryBytes or the in-flight budget). */
  readonly agent: http.Agent;
  /** Buffered segment reads, the hot path: bytes land straight in the segment's buffer. */
  readonly pool: RawHttpPool;

  constructor(
    private readonly options: UpstreamOptions,
    private readonly locations: LocationResolver,
    private readonly scores: ReplicaScores,
    private readonly reporter: FailureReporter,
    private readonly metrics: StreamerMetrics,
    private readonly log: Logger,
  ) {
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets: options.maxSocketsPerNode,
      maxFreeSockets: Math.min(options.maxSocketsPerNode, 32),
      timeout: FREE_SOCKET_TIMEOUT_MS,
      scheduling: 'lifo',
    });
    this.pool = new RawHttpPool({ maxSocketsPerHost: options.maxSocketsPerNode, idleTimeoutMs: FREE_SOCKET_TIMEOUT_MS });
  }

  close(): void {
    this.agent.destroy();
    this.pool.destroy();
  }

  /**
   * Exactly bytes [startByte, endByte] of the blob, in one buffer. The kernel copies the answer
   * straight into it (common/raw-http.ts); after a failure the next replica fills in the rest.
   */
  async readBuffer(blobId: string, startByte: number, endByte: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(endByte - startByte + 1);
    let offset = startByte;
    const failed = new Set<string>();
    const errors: string[] = [];
    let attempts = 0;
    while (offset <= endByte) {
      const replica = await this.nextReplica(blobId, startByte, endByte, offset, failed, attempts, errors);
      attempts += 1;
      if (attempts > 1) this.metrics.failovers.inc();
      try {
        await this.attemptInto(blobId, replica, offset, endByte, out, offset - startByte, (n) => {
          offset += n;
        });
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        failed.add(`${replica.nodeId}/${replica.diskId}`);
        errors.push(`${replica.nodeId}: ${error.message}`);
        this.failure(blobId, replica, error);
      }
    }
    return out;
  }

  /** The best replica not yet failed for this read, or the read's end (502) when none is left. */
  private async nextReplica(blobId: string, startByte: number, endByte: number, offset: number, failed: Set<string>, attempts: number, errors: string[]): Promise<ReplicaInfo> {
    const located = await this.locations.get(blobId);
    if (located.size <= endByte) {
      throw new HttpError(502, `the cluster says this file is ${located.size} bytes; byte ${endByte} was asked for`);
    }
    const candidates = this.scores.order(located.replicas, `${blobId}:${startByte}`).filter((r) => !failed.has(`${r.nodeId}/${r.diskId}`));
    if (candidates.length === 0 || attempts >= this.options.maxAttempts) {
      this.log.warn('no replica could be read', { blob: blobId, startByte, endByte, offset, errors });
      throw new HttpError(502, `no replica of this file could be read (${attempts} tried)`);
    }
    return candidates[0]!;
  }

  /**
   * One signed range read from one replica into `out` at `at`; `progress` hears every byte that
   * landed (a failover resumes after them). Throws UpstreamError for anything but the full range.
   */
  private async attemptInto(blobId: string, replica: ReplicaInfo, startByte: number, endByte: number, out: Buffer, at: number, progress: (bytes: number) => void): Promise<void> {
    const { timeoutMs } = this.options;
    const expected = endByte - startByte + 1;
    const url = new URL(`/internal/v1/blobs/${blobId}`, replica.url);
    const headers = { ...signedBlobHeaders(this.options.secret, 'GET', url), range: `bytes=${startByte}-${endByte}` };
    const startedAt = performance.now();
    const totalMs = timeoutMs + (expected / this.options.minBytesPerS) * 1000;
    this.metrics.upstreamRequests.inc({ node: replica.nodeId });
    let got = 0;
    let firstByteMs = NaN;
    let refused: UpstreamError | undefined;
    let timedOut = '';
    const bytesMetric = this.metrics.upstreamBytes;
    const request = this.pool.request(url, headers, {
      onHead: (head) => {
        firstByteMs = performance.now() - sentAt;
        this.metrics.upstreamFirstByteSeconds.observe(firstByteMs / 1000);
        refused = checkHead(head, startByte, endByte, expected);
        if (refused) throw refused;
      },
      target: (maxBytes) => out.subarray(at + got, at + got + maxBytes),
      written: (n) => {
        got += n;
        progress(n);
        bytesMetric.inc({ node: replica.nodeId }, n);
        stall?.refresh();
      },
    });
    // Waiting for a free connection to this node is our own congestion, not the replica's
    // fault: bounded on its own, a 503 to the room, never a failure reported against the disk.
    let congested = false;
    let sentAt = startedAt;
    const queue = setTimeout(() => {
      congested = true;
      request.abort('no free upstream connection');
    }, QUEUE_TIMEOUT_FACTOR * timeoutMs);
    let stall: NodeJS.Timeout | undefined;
    let total: NodeJS.Timeout | undefined;
    try {
      await request.sent;
      sentAt = performance.now();
      clearTimeout(queue);
      // Deadlines from the moment the request is out: the first byte and every next read
      // within timeoutMs; the whole range within timeoutMs plus its size at minBytesPerS.
      stall = setTimeout(() => {
        timedOut = got === 0 ? `no answer within ${timeoutMs} ms` : `stalled body: no bytes within ${timeoutMs} ms`;
        request.abort(timedOut);
      }, timeoutMs);
      total = setTimeout(() => {
        timedOut = 'range not read within its deadline';
        request.abort(timedOut);
      }, Math.max(1, totalMs));
      await request.head;
    } catch (error) {
      if (congested) throw new HttpError(503, `streamer busy: no connection to ${replica.nodeId} free within ${QUEUE_TIMEOUT_FACTOR * timeoutMs} ms`);
      if (refused) throw refused;
      if (timedOut) throw new UpstreamError('timeout', `${timedOut} (${got} of ${expected} bytes)`);
      if (!(error instanceof RawHttpError)) throw error;
      if (error.code === 'connect' || (got === 0 && Number.isNaN(firstByteMs))) throw new UpstreamError('connect', error.message);
      if (error.code === 'protocol') throw new UpstreamError('bad-answer', error.message);
      throw new UpstreamError('short-body', `body cut after ${got} of ${expected} bytes (${error.message})`);
    } finally {
      clearTimeout(queue);
      clearTimeout(stall);
      clearTimeout(total);
    }
    if (got !== expected) throw new UpstreamError('short-body', `body ended after ${got} of ${expected} bytes`);
    this.scores.success(replica.nodeId, firstByteMs);
  }

  /** The same bytes as a stream of chunks, at the consumer's pace (it may stop early: return()). */
  stream(blobId: string, startByte: number, endByte: number): AsyncGenerator<Buffer> {
    return this.chunks(blobId, startByte, endByte);
  }

  private async *chunks(blobId: string, startByte: number, endByte: number): AsyncGenerator<Buffer> {
    let offset = startByte;
    const failed = new Set<string>();
    const errors: string[] = [];
    let attempts = 0;
    let retriedSame = false;
    while (offset <= endByte) {
      const replica = await this.nextReplica(blobId, startByte, endByte, offset, failed, attempts, errors);
      attempts += 1;
      if (attempts > 1 && !retriedSame) this.metrics.failovers.inc();
      try {
        for await (const chunk of this.attempt(blobId, replica, offset, endByte)) {
          offset += chunk.length;
          yield chunk;
        }
        return;
      } catch (error) {
        if (!(error instanceof UpstreamError)) throw error;
        // A keep-alive socket the node closed just as we reused it: a race, not a node failure.
        if (error.retrySameReplica && !retriedSame) {
          retriedSame = true;
          continue;
        }
        retriedSame = false;
        failed.add(`${replica.nodeId}/${replica.diskId}`);
        errors.push(`${replica.nodeId}: ${error.message}`);
        this.failure(blobId, replica, error);
      }
    }
  }

  private failure(blobId: string, replica: ReplicaInfo, error: UpstreamError): void {
    this.metrics.upstreamErrors.inc({ node: replica.nodeId, reason: error.reason });
    this.scores.failure(replica.nodeId);
    this.locations.invalidate(blobId);
    this.log.warn('replica read failed; trying the next one', { blob: blobId, node: replica.nodeId, disk: replica.diskId, reason: error.reason, error: error.message });
    this.reporter.report({
      blobId, nodeId: replica.nodeId, diskId: replica.diskId, reason: error.reason, detail: error.message.slice(0, 300), streamerId: this.options.streamerId,
    });
  }

  /** One signed range read from one replica; throws UpstreamError for anything but the full range. */
  private async *attempt(blobId: string, replica: ReplicaInfo, startByte: number, endByte: number): AsyncGenerator<Buffer> {
    const { timeoutMs } = this.options;
    const expected = endByte - startByte + 1;
    const url = new URL(`/internal/v1/blobs/${blobId}`, replica.url);
    const headers = { ...signedBlobHeaders(this.options.secret, 'GET', url), range: `bytes=${startByte}-${endByte}` };
    const startedAt = performance.now();
    // Streamed through at the client's pace: no total deadline, only the waits for bytes.
    const deadlineAt = Infinity;
    this.metrics.upstreamRequests.inc({ node: replica.nodeId });
    const req = http.request(url, { agent: this.agent, headers, method: 'GET' });
    // Errors after the answer started surface through the body iterator; never as uncaught.
    req.on('error', ignore);
    let timer: NodeJS.Timeout | undefined;
    let timedOut = '';
    let complete = false;
    const arm = (ms: number, what: string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = `${what} within ${Math.round(ms)} ms`;
        req.destroy(new UpstreamError('timeout', timedOut));
      }, Math.max(1, ms));
    };
    try {
      arm(Math.min(timeoutMs, deadlineAt - startedAt), 'no answer');
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        req.once('response', resolve);
        req.once('error', reject);
        req.end();
      }).catch((error: unknown) => {
        if (timedOut) throw new UpstreamError('timeout', timedOut);
        if (error instanceof UpstreamError) throw error;
        const e = error as NodeJS.ErrnoException;
        throw new UpstreamError('connect', `${e.code ?? ''} ${e.message}`.trim(), req.reusedSocket && e.code === 'ECONNRESET');
      });
      const firstByteMs = performance.now() - startedAt;
      this.metrics.upstreamFirstByteSeconds.observe(firstByteMs / 1000);
      res.on('error', ignore);
      checkAnswer(res, startByte, endByte, expected);
      let got = 0;
      const it = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      for (;;) {
        const leftMs = deadlineAt - performance.now();
        if (leftMs <= 0) throw new UpstreamError('timeout', `range not read within its deadline (${got} of ${expected} bytes)`);
        arm(Math.min(timeoutMs, leftMs), 'stalled body: no bytes');
        let next: IteratorResult<Buffer>;
        try {
          next = await it.next();
        } catch (error) {
          if (timedOut) throw new UpstreamError('timeout', `${timedOut} (${got} of ${expected} bytes)`);
          throw new UpstreamError('short-body', `body cut after ${got} of ${expected} bytes (${(error as Error).message})`);
        }
        clearTimeout(timer);
        if (next.done) break;
        const chunk = next.value;
        if (got + chunk.length > expected) throw new UpstreamError('bad-answer', `node sent more than the ${expected} bytes asked for`);
        got += chunk.length;
        this.metrics.upstreamBytes.inc({ node: replica.nodeId }, chunk.length);
        // No deadline runs while the consumer has the chunk: a slow client is not a slow replica.
        yield chunk;
      }
      if (timedOut) throw new UpstreamError('timeout', `${timedOut} (${got} of ${expected} bytes)`);
      if (got < expected) throw new UpstreamError('short-body', `body ended after ${got} of ${expected} bytes`);
      complete = true;
      this.scores.success(replica.nodeId, firstByteMs);
    } finally {
      clearTimeout(timer);
      // Anything but a fully read body (failure, or the consumer stopped): drop the socket.
      if (!complete) req.destroy();
    }
  }
}

function ignore(): void {}

/** checkAnswer for the lean client: the reason to refuse the head, or undefined. */
function checkHead(head: RawHead, startByte: number, endByte: number, expected: number): UpstreamError | undefined {
  const { status } = head;
  if (status === 404) return new UpstreamError('not-found', 'replica not on this node (404)');
  if (status !== 206 && status !== 200) return new UpstreamError('status', `node answered ${status}`);
  if (head.contentLength !== expected) return new UpstreamError('bad-answer', `node answered ${head.contentLength} bytes for a ${expected}-byte range`);
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(head.headers.get('content-range') ?? '');
    if (!m || Number(m[1]) !== startByte || Number(m[2]) !== endByte) {
      return new UpstreamError('bad-answer', `node answered range ${head.headers.get('content-range') ?? '(none)'} for ${startByte}-${endByte}`);
    }
  } else if (startByte !== 0) {
    return new UpstreamError('bad-answer', 'node ignored the Range header');
  }
  return undefined;
}

/** The node must answer exactly the range asked for (206, or 200 for a whole blob from 0). */
function checkAnswer(res: http.IncomingMessage, startByte: number, endByte: number, expected: number): void {
  const status = res.statusCode ?? 0;
  if (status === 404) {
    res.resume();
    throw new UpstreamError('not-found', 'replica not on this node (404)');
  }
  if (status !== 206 && status !== 200) {
    res.resume();
    throw new UpstreamError('status', `node answered ${status}`);
  }
  const length = Number(res.headers['content-length']);
  if (length !== expected) {
    res.resume();
    throw new UpstreamError('bad-answer', `node answered ${length} bytes for a ${expected}-byte range`);
  }
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
    if (!m || Number(m[1]) !== startByte || Number(m[2]) !== endByte) {
      res.resume();
      throw new UpstreamError('bad-answer', `node answered range ${res.headers['content-range'] ?? '(none)'} for ${startByte}-${endByte}`);
    }
  } else if (startByte !== 0) {
    res.resume();
    throw new UpstreamError('bad-answer', 'node ignored the Range header');
  }
}
