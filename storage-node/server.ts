// The storage node's HTTP layer: parse and check the request, call the store, map its errors to
// statuses. Everything under /internal/v1 is signed with the cluster secret (trust zone 1).
import express, { type Express, type Request, type Response } from 'express';
import {
  BLOB_KINDS,
  deleteCommand,
  diskOperatorCommand,
  fetchCommand,
  HEADER_EPOCH,
  HEADER_KIND,
  ID_RE,
  isBlobId,
  type BlobKind,
} from '../common/contracts.js';
import { drained, HttpError, installErrorHandlers, parseOr400, requireSigned, route, type SignatureContext } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { ReplicaCopier } from './copy/replica-copy.js';
import type { EpochFence } from './epoch.js';
import type { NodeMetrics } from './metrics.js';
import { parseRange } from './range.js';
import type { BlobStore } from './store/blob-store.js';
import { StoreError, type StoreErrorCode } from './store/errors.js';

export interface ServerDeps {
  store: BlobStore;
  fence: EpochFence;
  copier: ReplicaCopier;
  signatures: SignatureContext;
  metrics: NodeMetrics;
  log: Logger;
  /** The body of GET /health. */
  health: () => unknown;
}

const STATUS_OF: Record<StoreErrorCode, number> = {
  'not-found': 404,
  'too-large': 413,
  'hash-mismatch': 422,
  'no-space': 507,
  corrupt: 500,
  'disk-failed': 500,
  'idle-timeout': 408,
  'body-failed': 400,
  busy: 503,
  'stale-epoch': 409,
  'copy-failed': 502,
};

/** A body left unread past this is not worth reading just to keep the connection alive. */
const DRAIN_LIMIT_BYTES = 1024 * 1024;

const IMMUTABLE = 'public, max-age=31536000, immutable';

function asHttp(error: unknown): unknown {
  return error instanceof StoreError ? new HttpError(STATUS_OF[error.code], error.message) : error;
}

function blobIdParam(req: Request): string {
  const id = req.params.id;
  if (!isBlobId(id)) throw new HttpError(400, 'blob id must be 64 lowercase hex characters (its SHA-256)');
  return id;
}

function kindHeader(req: Request): BlobKind {
  const value = req.headers[HEADER_KIND];
  if (value === undefined) return 'data';
  if (typeof value === 'string' && (BLOB_KINDS as readonly string[]).includes(value)) return value as BlobKind;
  throw new HttpError(400, `${HEADER_KIND} must be one of ${BLOB_KINDS.join(', ')}`);
}

function epochHeader(req: Request): number | undefined {
  const value = req.headers[HEADER_EPOCH];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) throw new HttpError(400, `${HEADER_EPOCH} must be a non-negative integer`);
  return Number(value);
}

function contentLength(req: Request): number | undefined {
  const value = req.headers['content-length'];
  return value === undefined ? undefined : Number(value);
}

function diskQuery(req: Request): string | undefined {
  const value = req.query.disk;
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !ID_RE.test(value)) throw new HttpError(400, 'disk must be a disk id');
  return value;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    return tag === etag || tag === '*';
  });
}


export function createApp(deps: ServerDeps): Express {
  const { store, fence, copier, signatures, metrics, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((req, res, next) => {
    res.on('close', () => {
      const path = (req.route as { path?: unknown } | undefined)?.path;
      metrics.request(typeof path === 'string' ? path : 'other', req.method, res.writableFinished ? res.statusCode : 'aborted');
    });
    next();
  });

  app.get('/health', (_req, res) => {
    res.json(deps.health());
  });

  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(metrics.registry.render());
  });

  /** The epoch fence, counted and logged when it refuses (the evidence that fencing worked). */
  const admit = (command: 'write' | 'copy' | 'delete', epoch: number | undefined): void => {
    try {
      fence.admit(epoch);
    } catch (error) {
      metrics.staleEpoch(command);
      log.warn('command refused: stale leader epoch', { command, epoch, highestSeen: fence.highestSeen });
      throw error;
    }
  };

  const signedBlob = requireSigned(signatures, { blobBody: true });
  const signedJson = requireSigned(signatures, { maxBodyBytes: 64 * 1024 });

  app.put(
    '/internal/v1/blobs/:id',
    signedBlob,
    route(async (req, res) => {
      const declared = contentLength(req);
      try {
        const id = blobIdParam(req);
        const kind = kindHeader(req);
        admit('write', epochHeader(req));
        const result = await store.write({ id, kind, body: req, declaredSizeBytes: declared, diskId: diskQuery(req) });
        const body = { id, size: result.sizeBytes, disk: result.diskId, ...(result.existed ? { existed: true } : {}) };
        res.status(result.existed ? 200 : 201).json(body);
      } catch (error) {
        // Refused before the body was read: do not read gigabytes just to keep the connection.
        if (!req.complete && (declared === undefined || declared > DRAIN_LIMIT_BYTES)) res.setHeader('Connection', 'close');
        throw asHttp(error);
      }
    }),
  );

  const getBlob = route(async (req, res) => {
    const id = blobIdParam(req);
    const entry = store.get(id);
    if (!entry) throw new HttpError(404, `blob ${id} is not on this node`);
    const sizeBytes = entry.sizeBytes;
    const etag = `"${id}"`;
    const range = parseRange(req.headers.range, sizeBytes);
    if (range.kind === 'multiple' || range.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${sizeBytes}`);
      throw new HttpError(416, range.kind === 'multiple' ? 'one byte range per request, please (multiple ranges are not served)' : `range not satisfiable for a blob of ${sizeBytes} bytes`);
    }
    const baseHeaders = { ETag: etag, 'Cache-Control': IMMUTABLE, 'Accept-Ranges': 'bytes' };
    if (matchesEtag(req.headers['if-none-match'], etag)) {
      res.writeHead(304, baseHeaders).end();
      return;
    }
    const [startByte, endByte] = range.kind === 'partial' ? [range.startByte, range.endByte] : [0, sizeBytes - 1];
    const status = range.kind === 'partial' ? 206 : 200;
    const headers: Record<string, string | number> = {
      ...baseHeaders,
      'Content-Type': 'application/octet-stream',
      'Content-Length': endByte - startByte + 1,
      ...(status === 206 ? { 'Content-Range': `bytes ${startByte}-${endByte}/${sizeBytes}` } : {}),
    };
    if (req.method === 'HEAD') {
      res.writeHead(status, headers).end();
      return;
    }
    const reader = await store.openReader(id, { pooled: true }).catch((error: unknown) => {
      throw asHttp(error);
    });
    const pieces = reader.range(startByte, endByte);
    try {
      // The first chunk is verified before any header goes out, so a corrupt replica found
      // there gets a clean JSON 500; one found later can only cut the body short.
      let next = await pieces.next();
      res.writeHead(status, headers);
      while (!next.done && !res.destroyed) {
        const piece = next.value;
        // The buffer goes back to the pool once the socket has taken its bytes, not before.
        if (!res.write(piece, () => store.readPool.give(piece))) await drained(res);
        if (res.destroyed) break;
        next = await pieces.next();
      }
      res.end();
    } catch (error) {
      if (res.headersSent) {
        log.warn('read failed after the headers were sent; connection cut', { blob: id, error: (error as Error).message });
        res.destroy();
        return;
      }
      if (error instanceof StoreError || error instanceof HttpError) throw asHttp(error);
      const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
      throw new HttpError(500, `read failed on disk ${reader.diskId} (${code})`);
    } finally {
      await pieces.return(undefined).catch(() => {});
      reader.close();
    }
  });
  // Reads are signed too: replica bytes are cluster-internal; streamers serve rooms. Express
  // routes HEAD to this GET route; the handler answers it with headers only.
  app.get('/internal/v1/blobs/:id', requireSigned(signatures), getBlob);

  app.post(
    '/internal/v1/blobs/:id/fetch',
    signedJson,
    route(async (req, res) => {
      try {
        const id = blobIdParam(req);
        const command = parseOr400(fetchCommand, req.signedJson);
        admit('copy', command.epoch);
        const r = await copier.copy(id, command);
        const body = { id, size: r.sizeBytes, disk: r.diskId, ...(r.existed ? { existed: true } : { source: r.source }) };
        res.status(r.existed ? 200 : 201).json(body);
      } catch (error) {
        throw asHttp(error);
      }
    }),
  );

  app.delete(
    '/internal/v1/blobs/:id',
    signedJson,
    route(async (req, res) => {
      try {
        const id = blobIdParam(req);
        const command = parseOr400(deleteCommand, req.signedJson);
        admit('delete', command.epoch);
        const deleted = await store.delete(id, command.disk);
        if (deleted > 0) metrics.deleted(deleted);
        res.json({ deleted });
      } catch (error) {
        throw asHttp(error);
      }
    }),
  );

  // The operator's drain|mask|unmask of one disk (the tracker relays `ktv disk …`).
  app.post(
    '/internal/v1/disks/:disk/operator',
    signedJson,
    route(async (req, res) => {
      const diskId = req.params.disk;
      const disk = typeof diskId === 'string' && ID_RE.test(diskId) ? store.diskById(diskId) : undefined;
      if (!disk) throw new HttpError(404, `disk ${String(diskId).slice(0, 80)} is not on this node`);
      const command = parseOr400(diskOperatorCommand, req.signedJson);
      const { status, persisted } = await store.operatorCommand(disk, command.action, command.note);
      if (!persisted) res.setHeader('x-ktv-warning', 'setting not saved on the disk; it holds until the node restarts');
      res.json(status);
    }),
  );

  installErrorHandlers(app, log);
  return app;
}
