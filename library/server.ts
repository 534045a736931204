// The library's HTTP layer: operators (trust zone 2, admin token) upload a song with its metadata;
// multer streams the file to disk, then the ingest pipeline (library/ingest) packages and stores
// it. Everything here is about the wire: order of checks, limits, status codes, cleanup.
//
// Order on POST /api/v1/songs, cheapest refusal first and nothing written before it:
//   admin token → multipart + Content-Length within the limit → job id → a place in the queue
//   → body to disk (multer, bounded) → field schema → packaging slot → ingest → answer.
// The uploaded file is removed when the request ends, whatever happened.
//
// Answers: 201 + IngestResult for a new song (CONTRACT.md: `{"id"}` plus existing, title,
// durationS, videoMode, version, blobs, storedBytes, loudnessGainDb, notes); 200 + the same
// shape with `existing: true` when the source (by SHA-256) is already in the library, nothing
// stored. Refusals `{"error"}`: 400 fields/multipart, 401/403 token, 409 job id reused,
// 411 no Content-Length, 413 too big, 415 not media, 422 unusable media, 503 queue full or
// cluster down, 507 library disk full. A client that leaves during packaging does not cancel
// it (the song is worth having; a retry of the same file then gets 200 existing).
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response } from 'express';
import multer from 'multer';
import { z } from 'zod';
import { HttpError, installErrorHandlers, requireAdmin, route } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/schema.js';
import { toIngestError, type IngestProgress, type IngestRequest, type IngestResult } from './ingest/ingest.js';
import { JOB_ID_RE, type Admission, type JobBoard, type JobSlots } from './jobs.js';
import type { LibraryMetrics } from './metrics.js';

export interface LibraryAppDeps {
  config: Config;
  adminToken: string;
  log: Logger;
  /** Where multer writes uploads (random names, never the client's). */
  uploadsDir: string;
  /** Static upload page (index.html, app.js, style.css). */
  webDir: string;
  slots: JobSlots;
  board: JobBoard;
  metrics: LibraryMetrics;
  /** One song through the pipeline; the HTTP layer knows nothing of how. */
  ingest: (req: IngestRequest, onProgress: (p: IngestProgress) => void) => Promise<IngestResult>;
  health: () => unknown;
}

export const JOB_HEADER = 'x-ktv-job';
/** Text fields per upload and bytes per field value: metadata is short. */
const MAX_FIELDS = 20;
const MAX_FIELD_BYTES = 4096;
/** Multipart framing around the file and fields (boundaries, part headers). */
const FRAMING_BYTES = 64 * 1024;
/** A refused body this small is read and dropped to keep the connection; larger ones close it. */
const DRAIN_LIMIT_BYTES = 1024 * 1024;

// ---- fields ---------------------------------------------------------------------------------

const requiredText = (name: string, maxChars: number) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? `${name} is required` : `${name} must be text`) })
    .trim()
    .min(1, { error: `${name} is required` })
    .max(maxChars, { error: `${name} is longer than ${maxChars} characters` });

const trackNumber = (name: string) =>
  z
    .string({ error: `${name} must be a whole number ≥ 0` })
    .regex(/^\d{1,3}$/, { error: `${name} must be a whole number ≥ 0 (an audio stream, counting from 0)` })
    .transform(Number)
    .optional();

/** The form fields of an upload. Empty optional fields (what an HTML form sends) count as absent. */
export const uploadFieldsSchema = z.strictObject(
  {
    title: requiredText('title', 300),
    artist: requiredText('artist', 300),
    language: requiredText('language', 50),
    genre: z.string({ error: 'genre must be text' }).trim().max(100, { error: 'genre is longer than 100 characters' }).optional(),
    vocalTrack: trackNumber('vocalTrack'),
    backingTrack: trackNumber('backingTrack'),
    vocalChannel: z.enum(['left', 'right'], { error: 'vocalChannel must be left or right' }).optional(),
  },
  { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown field ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}` : undefined) },
);
export type UploadFields = z.infer<typeof uploadFieldsSchema>;

const OPTIONAL_FIELDS = new Set(['genre', 'vocalTrack', 'backingTrack', 'vocalChannel']);

export function parseUploadFields(body: unknown): UploadFields {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries((body ?? {}) as Record<string, unknown>)) {
    if (OPTIONAL_FIELDS.has(key) && value === '') continue;
    raw[key] = value;
  }
  const parsed = uploadFieldsSchema.safeParse(raw);
  if (!parsed.success) throw new HttpError(400, parsed.error.issues[0]?.message ?? 'invalid fields');
  return parsed.data;
}

/** The pipeline speaks in CLI flags (its messages go to `ktv ingest` too); the API has fields. */
export function apiWording(message: string): string {
  return message
    .replace(/--vocal-channel/g, 'vocalChannel')
    .replace(/--vocal-track/g, 'vocalTrack')
    .replace(/--backing-track/g, 'backingTrack')
    .replace(/[\r\n]+/g, ' ');
}

/** A client file name is only a label for the manifest: one line, no path, bounded. */
function cleanSourceName(name: string | undefined): string | undefined {
  const base = (name ?? '').split(/[\\/]/).pop()!.replace(/[\u0000-\u001f\u007f]/g, ' ').trim().slice(0, 200);
  return base || undefined;
}

// ---- per-request upload state -----------------------------------------------------------------

interface UploadState {
  admission?: Admission;
  jobId?: string;
  /** Every path multer was told to write for this request (also partial ones). */
  paths: string[];
  /** The handler owns the file (ingest may read it after the client left); it cleans up. */
  owned: boolean;
  /** The job reached a final state (done or failed) on the board. */
  settled: boolean;
}

const states = new WeakMap<Request, UploadState>();
function uploadState(req: Request): UploadState {
  let s = states.get(req);
  if (!s) {
    s = { paths: [], owned: false, settled: false };
    states.set(req, s);
  }
  return s;
}

async function removeUploads(s: UploadState, log: Logger): Promise<void> {
  const paths = s.paths.splice(0);
  await Promise.all(paths.map((p) => rm(p, { force: true }).catch((error: unknown) => log.warn('could not remove upload', { path: p, error }))));
}

/** For a refusal before the body is read: drop a small body, close the connection on a big one. */
function closeIfBig(req: Request, res: Response): void {
  const declared = Number(req.headers['content-length']);
  if (!(declared <= DRAIN_LIMIT_BYTES)) res.setHeader('connection', 'close');
}

function beforeBody(middleware: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const refuse = (error: unknown): void => {
      closeIfBig(req, res);
      next(error);
    };
    try {
      middleware(req, res, (error?: unknown) => (error ? refuse(error) : next()));
    } catch (error) {
      refuse(error);
    }
  };
}

/** Multer/busboy/disk errors as the answer the operator should see. */
function uploadErrorToHttp(error: unknown, maxUploadBytes: number): HttpError {
  if (error instanceof multer.MulterError) {
    const field = error.field ? JSON.stringify(error.field) : '';
    switch (error.code) {
      case 'LIMIT_FILE_SIZE':
        return new HttpError(413, `the media file is over the ${maxUploadBytes}-byte upload limit`);
      case 'LIMIT_UNEXPECTED_FILE':
        return new HttpError(400, `unexpected file field ${field}: send exactly one file, in the field "media"`);
      case 'LIMIT_FILE_COUNT':
        return new HttpError(400, 'send exactly one file, in the field "media"');
      case 'LIMIT_FIELD_VALUE':
        return new HttpError(400, `field ${field} is longer than ${MAX_FIELD_BYTES} bytes`);
      case 'LIMIT_FIELD_COUNT':
      case 'LIMIT_PART_COUNT':
        return new HttpError(400, `too many form fields (at most ${MAX_FIELDS})`);
      default:
        return new HttpError(400, `bad multipart body: ${error.message}`);
    }
  }
  const e = error as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return new HttpError(507, 'the library disk is full');
  if (typeof e?.syscall === 'string') return new HttpError(500, `could not write the upload (${e.code ?? 'error'})`);
  // busboy's parse errors ("Unexpected end of form", …) and a client that went away.
  return new HttpError(400, `bad multipart body: ${e?.message ?? String(error)}`);
}

// ---- app ------------------------------------------------------------------------------------

export function createLibraryApp(deps: LibraryAppDeps): Express {
  const { config, log, slots, board, metrics } = deps;
  const maxUploadBytes = config.library.maxUploadBytes;
  const maxBodyBytes = maxUploadBytes + MAX_FIELDS * MAX_FIELD_BYTES + FRAMING_BYTES;
  const admin = requireAdmin(deps.adminToken);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use((_req, res, next) => {
    // The page is an operator tool holding an admin token: no framing, no foreign scripts.
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'");
    next();
  });

  app.get('/health', (_req, res) => {
    res.json(deps.health());
  });

  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(metrics.registry.render());
  });

  const storage = multer.diskStorage({
    destination: deps.uploadsDir,
    filename: (req, _file, callback) => {
      // Our own random name: no path is ever built from what the client sent.
      const name = `${Date.now()}-${randomBytes(8).toString('hex')}.upload`;
      uploadState(req).paths.push(join(deps.uploadsDir, name));
      callback(null, name);
    },
  });
  const receiveMedia = multer({
    storage,
    limits: {
      fileSize: maxUploadBytes,
      files: 1,
      fields: MAX_FIELDS,
      fieldSize: MAX_FIELD_BYTES,
      fieldNameSize: 100,
      parts: MAX_FIELDS + 1,
      headerPairs: 20,
    },
    // Browsers send UTF-8 file names (歌名.mpg); busboy's default would read them as latin1.
    defParamCharset: 'utf8',
  }).single('media');

  /** Checks that need no body byte, then a place in the queue. */
  const admit: RequestHandler = (req, res, next) => {
    const s = uploadState(req);
    if (!req.is('multipart/form-data')) throw new HttpError(400, 'send the song as multipart/form-data: a "media" file plus title, artist, language');
    const declared = req.headers['content-length'];
    if (declared === undefined) throw new HttpError(411, 'Content-Length is required (the upload size is checked before it is received)');
    if (Number(declared) > maxBodyBytes) throw new HttpError(413, `the upload is over the ${maxUploadBytes}-byte limit`);
    const jobId = req.headers[JOB_HEADER];
    if (jobId !== undefined) {
      if (typeof jobId !== 'string' || !JOB_ID_RE.test(jobId)) throw new HttpError(400, 'X-KTV-Job must be 8-64 characters of A-Z a-z 0-9 _ -');
      if (board.has(jobId)) throw new HttpError(409, 'X-KTV-Job is already in use: pick a new random id per upload');
    }
    const admission = slots.tryAdmit();
    if (!admission) {
      res.setHeader('retry-after', '30');
      throw new HttpError(503, 'library busy: too many uploads waiting, try again shortly');
    }
    s.admission = admission;
    if (typeof jobId === 'string') {
      s.jobId = jobId;
      board.set(jobId, { stage: 'receiving' });
    }
    res.once('close', () => {
      // The answer is out or the client is gone. An ingest still running owns the file and
      // releases its own admission (it goes on: the song is worth having, and a retry of the
      // same file then finds it); otherwise both end here.
      if (s.owned) return;
      admission.release();
      void removeUploads(s, log);
      if (s.jobId && !s.settled) {
        s.settled = true;
        board.set(s.jobId, { stage: 'failed', error: 'upload interrupted', status: 400 });
      }
    });
    next();
  };

  const countOutcome: RequestHandler = (_req, res, next) => {
    res.once('close', () => metrics.uploads.inc({ status: res.writableFinished ? String(res.statusCode) : 'aborted' }));
    next();
  };

  const receive: RequestHandler = (req, _res, next) => {
    // Node's whole-request deadline would cut a long upload on a slow link; an idle deadline
    // (no byte for uploadIdleTimeoutMs) bounds it instead. Cleared once the body is in: the
    // ingest that follows may take minutes with a quiet socket.
    req.setTimeout(config.library.uploadIdleTimeoutMs, () => req.destroy(new Error('upload idle timeout')));
    receiveMedia(req, _res, (error?: unknown) => {
      req.socket?.setTimeout(0);
      if (error) return next(uploadErrorToHttp(error, maxUploadBytes));
      next();
    });
    // After multer has piped the request into busboy, so counting does not start the flow early.
    req.on('data', (chunk: Buffer) => metrics.receivedBytes.inc(undefined, chunk.length));
  };

  const ingestUpload = route(async (req, res) => {
    const s = uploadState(req);
    // From here the handler owns the file: ingest may still read it after the client left.
    s.owned = true;
    const jobId = s.jobId;
    let result: IngestResult;
    try {
      const fields = parseUploadFields(req.body);
      const file = req.file;
      if (!file) throw new HttpError(400, 'no media file: send the song as the file field "media"');
      if (jobId) board.set(jobId, { stage: 'queued' });
      result = await s.admission!.run(async () => {
        const startedMs = Date.now();
        try {
          return await deps.ingest(
            {
              file: file.path,
              sourceName: cleanSourceName(file.originalname),
              title: fields.title,
              artist: fields.artist,
              language: fields.language,
              genre: fields.genre,
              vocalTrack: fields.vocalTrack,
              backingTrack: fields.backingTrack,
              vocalChannel: fields.vocalChannel,
            },
            (p) => {
              if (jobId) board.set(jobId, { stage: p.stage, fraction: p.fraction });
            },
          );
        } catch (error) {
          const ingestError = toIngestError(error);
          if (ingestError.status >= 500) log.warn('ingest failed', { file: file.originalname, status: ingestError.status, error: ingestError.message });
          throw new HttpError(ingestError.status, apiWording(ingestError.message));
        } finally {
          metrics.ingestSeconds.observe((Date.now() - startedMs) / 1000);
        }
      });
    } finally {
      // Before the answer, so a client that sees it finds the uploads folder clean.
      s.admission!.release();
      await removeUploads(s, log);
    }
    if (jobId) board.set(jobId, { stage: 'done', fraction: 1, result });
    s.settled = true;
    // 201 for a new song (CONTRACT.md); 200 when the same source was already in the library.
    res.status(result.existing ? 200 : 201).json(result);
  });

  /** Route-level: the page's progress entry learns the failure the request got. */
  const recordFailure: ErrorRequestHandler = (error, req, _res, next) => {
    const s = uploadState(req);
    if (s.jobId && !s.settled) {
      s.settled = true;
      const status = error instanceof HttpError ? error.status : 500;
      board.set(s.jobId, { stage: 'failed', error: error instanceof HttpError ? error.message : 'internal error', status });
    }
    next(error);
  };

  app.post('/api/v1/songs', countOutcome, beforeBody(admin), beforeBody(admit), receive, ingestUpload, recordFailure);

  app.get('/api/v1/jobs/:jobId', admin, (req, res) => {
    const jobId = String(req.params.jobId);
    if (!JOB_ID_RE.test(jobId)) throw new HttpError(400, 'job id must be 8-64 characters of A-Z a-z 0-9 _ -');
    const state = board.get(jobId);
    if (!state) throw new HttpError(404, 'no such job (unknown, or finished more than a while ago)');
    res.json(state);
  });

  app.use(express.static(deps.webDir, { index: 'index.html', dotfiles: 'ignore', maxAge: 0 }));

  installErrorHandlers(app, log);
  return app;
}
