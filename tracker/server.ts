// The tracker's HTTP layer: parse, authenticate, call the core, answer JSON. No decisions here.
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { changeReport, diskOperatorCommand, heartbeatRequest, safeId, inventoryBatch, isBlobId, placementRequest, readFailureReport, streamerHeartbeat, type PlacementResponse } from '../common/contracts.js';
import { createSignatureContext, HttpError, installErrorHandlers, parseOr400, requireAdmin, requireSigned, route, rpc, RpcError } from '../common/http.js';
import type { Logger } from '../common/log.js';
import type { Config } from '../config/schema.js';
import type { SearchParams } from './catalog/search.js';
import { NodeUnreachableError, UnknownTargetError, type TrackerCore } from './core.js';
import { TooManyLocationsError } from './topology/registry.js';
import { ReportTooLargeError, UnknownNodeError } from './topology/reports.js';

/** Marks a write a standby forwarded to the leader: it is never forwarded twice (no loops). */
const FORWARDED_HEADER = 'x-ktv-forwarded-by';

const SONG_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** Longest value of the artist/language filters (manifest fields are at most 300 characters). */
const FILTER_MAX_CHARS = 300;

/** `ktv node drain|undrain` bodies: only an optional note. */
const nodeOperatorBody = z.strictObject({ note: z.string().max(200).default('') });

export function createTrackerApp(core: TrackerCore, config: Config, secret: string, log: Logger, adminToken: string): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const signed = requireSigned(
    createSignatureContext(secret, config.security.signatureWindowMs, config.security.nonceCacheEntries),
    { maxBodyBytes: config.tracker.maxJsonBodyBytes },
  );

  // Request counts by route pattern (never by raw path: that would be unbounded label values).
  app.use((req: Request, res: Response, next: NextFunction) => {
    res.on('finish', () => {
      const pattern = (req.route as { path?: string } | undefined)?.path;
      core.metrics.httpRequests.inc({ route: typeof pattern === 'string' ? pattern : 'other', status: String(res.statusCode) });
    });
    next();
  });

  app.get('/health', (_req, res) => {
    res.json({ ok: true, role: 'tracker', leader: core.leadership.leader, epoch: core.leadership.epoch, ...(core.leadership.view ? { ha: core.leadership.view() } : {}) });
  });

  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(core.metrics.registry.render());
  });

  // ---- storage nodes (trust zone 1: signed) --------------------------------------------------

  app.post('/internal/v1/heartbeat', signed, route((req, res) => {
    res.json(core.heartbeat(parseOr400(heartbeatRequest, req.signedJson)));
  }));

  app.post('/internal/v1/inventory', signed, route((req, res) => {
    const batch = parseOr400(inventoryBatch, req.signedJson);
    try {
      res.json(core.inventory(batch));
    } catch (error) {
      throw mapTopologyError(error);
    }
  }));

  app.post('/internal/v1/changes', signed, route((req, res) => {
    try {
      res.json(core.changes(parseOr400(changeReport, req.signedJson)));
    } catch (error) {
      throw mapTopologyError(error);
    }
  }));

  // The id is checked before the signature: a malformed id is a 400 whoever asks.
  app.get('/internal/v1/blobs/:id', checkBlobId, signed, route((req, res) => {
    const answer = core.locate(req.params.id as string);
    if (!answer) throw new HttpError(404, 'unknown blob');
    res.json(answer);
  }));

  app.post('/internal/v1/placement', signed, route(async (req, res) => {
    const body = parseOr400(placementRequest, req.signedJson);
    if (!core.leadership.leader) {
      // HA standby: placement is a mutation, so the leader answers it; clients need not know who leads.
      res.json(await forwardToLeader(req, '/internal/v1/placement', body));
      return;
    }
    const placed = core.place(body.size, body.excludeNodes);
    if (!placed.ok) throw new HttpError(503, placed.reason);
    const answer: PlacementResponse = { epoch: core.leadership.epoch, targets: placed.targets };
    res.json(answer);
  }));

  // ---- streamers (trust zone 1: signed) -------------------------------------------------------

  app.post('/internal/v1/streamers/heartbeat', signed, route((req, res) => {
    core.streamerHeartbeat(parseOr400(streamerHeartbeat, req.signedJson));
    res.json({ ok: true, leader: core.leadership.leader, epoch: core.leadership.epoch });
  }));

  app.post('/internal/v1/read-failures', signed, route((req, res) => {
    core.readFailure(parseOr400(readFailureReport, req.signedJson));
    res.status(202).json({ accepted: true });
  }));

  // ---- operators (trust zone 2: admin token); any tracker forwards, the node decides ----------

  const admin = requireAdmin(adminToken);
  const adminJson = express.json({ limit: 16 * 1024 });

  app.post('/api/v1/admin/disks/:node/:disk', admin, adminJson, route(async (req, res) => {
    const node = parseOr400(safeId, req.params.node, 'node id');
    const disk = parseOr400(safeId, req.params.disk, 'disk id');
    const command = parseOr400(diskOperatorCommand, req.body ?? {});
    res.json(await operatorCall(() => core.diskOperator(node, disk, command)));
  }));

  app.post('/api/v1/admin/nodes/:node/:action', admin, adminJson, route(async (req, res) => {
    const node = parseOr400(safeId, req.params.node, 'node id');
    const action = req.params.action;
    if (action !== 'drain' && action !== 'undrain') throw new HttpError(404, 'node actions are drain and undrain');
    const { note } = parseOr400(nodeOperatorBody, req.body ?? {});
    // Undrain is 'unmask' on the node: it clears the operator's setting, whatever it was.
    res.json(await operatorCall(() => core.diskOperator(node, undefined, { action: action === 'drain' ? 'drain' : 'unmask', note })));
  }));

  // ---- open, read-only (rooms, operators) ----------------------------------------------------

  app.get('/api/v1/streamers', (_req, res) => {
    res.json({ streamers: core.listStreamers() });
  });

  app.get('/api/v1/cluster', (_req, res) => {
    res.json({ ...core.clusterView(), ...(core.leadership.view ? { ha: core.leadership.view() } : {}) });
  });

  app.get('/api/v1/songs', route((req, res) => {
    res.json({ songs: core.search(parseSearch(req.query, config)) });
  }));

  app.get('/api/v1/songs/:id', route((req, res) => {
    const id = req.params.id as string;
    if (!SONG_ID_RE.test(id)) throw new HttpError(400, 'song id must be 1-64 characters of A-Z a-z 0-9 _ -');
    const json = core.catalog.manifestJson(id);
    if (json === undefined) throw new HttpError(404, 'unknown song');
    res.type('application/json').send(json);
  }));

  /** A signed write received by a standby, re-signed and sent to the leader; its answer is ours. */
  async function forwardToLeader(req: Request, path: string, body: unknown): Promise<unknown> {
    const leaderUrl = core.leadership.leaderUrl?.();
    if (!leaderUrl || req.headers[FORWARDED_HEADER] !== undefined) throw new HttpError(503, 'this tracker is not the leader and knows no leader to forward to');
    try {
      return await rpc(leaderUrl, path, { body, secret, timeoutMs: config.rpcTimeoutMs, headers: { [FORWARDED_HEADER]: core.leadership.view ? 'standby' : 'tracker' } });
    } catch (error) {
      const e = error as RpcError;
      // The leader's own 4xx is the answer; anything else: this standby cannot help, try another tracker.
      if (e instanceof RpcError && e.status >= 400 && e.status < 500) throw new HttpError(e.status, e.message);
      throw new HttpError(503, `not the leader; forwarding to ${leaderUrl} failed: ${e.message}`);
    }
  }

  installErrorHandlers(app, log);
  return app;
}

async function operatorCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof UnknownTargetError) throw new HttpError(404, error.message);
    if (error instanceof NodeUnreachableError) throw new HttpError(502, error.message);
    throw error;
  }
}

function checkBlobId(req: Request, _res: Response, next: NextFunction): void {
  next(isBlobId(req.params.id) ? undefined : new HttpError(400, 'blob id must be 64 lowercase hex characters (SHA-256)'));
}

function mapTopologyError(error: unknown): unknown {
  if (error instanceof UnknownNodeError) return new HttpError(409, error.message);
  if (error instanceof ReportTooLargeError) return new HttpError(413, error.message);
  if (error instanceof TooManyLocationsError) return new HttpError(503, error.message);
  return error;
}

/** Query string → SearchParams, or a 400 naming the bad parameter. */
export function parseSearch(query: Request['query'], config: Config): SearchParams {
  const one = (name: string, maxChars: number): string | undefined => {
    const v = query[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new HttpError(400, `${name} must be given once`);
    if (v.length > maxChars) throw new HttpError(400, `${name} is longer than ${maxChars} characters`);
    return v;
  };
  const max = config.tracker.searchMaxLimit;
  const limitText = one('limit', 10);
  let limit = Math.min(50, max);
  if (limitText !== undefined) {
    if (!/^\d+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > max) {
      throw new HttpError(400, `limit must be an integer from 1 to ${max}`);
    }
    limit = Number(limitText);
  }
  const sort = one('sort', 20);
  if (sort !== undefined && sort !== 'new' && sort !== 'relevance') throw new HttpError(400, "sort must be 'new' or 'relevance'");
  return {
    q: one('q', config.tracker.searchMaxQueryChars) ?? '',
    limit,
    language: one('language', FILTER_MAX_CHARS) || undefined,
    artist: one('artist', FILTER_MAX_CHARS) || undefined,
    sort: sort === 'new' ? 'new' : 'relevance',
  };
}
