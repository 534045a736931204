// The wire helpers every role shares: JSON errors (never a stack trace), bounded bodies,
// signed cluster-internal routes, the admin token, and a client with a deadline on every call.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response, Express } from 'express';
import { z } from 'zod';
import { describeZodError } from '../config/load.js';
import { NonceCache, signRequest, tokenEquals, UNSIGNED_BODY, verifyRequest } from './signing.js';
import type { Logger } from './log.js';

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export function sendError(res: Response, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(status).type('application/json').send(JSON.stringify({ error: message }));
}

/** Reads a whole request body up to `limitBytes` (413 past it). */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limitBytes) {
      reject(new HttpError(413, `request body over ${limitBytes} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > limitBytes) {
        reject(new HttpError(413, `request body over ${limitBytes} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Parses `value` with `schema`, or throws a 400 that says which field is wrong. */
export function parseOr400<T extends z.ZodTypeAny>(schema: T, value: unknown, what = 'body'): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, `invalid ${what}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

export interface SignatureContext {
  secret: string;
  windowMs: number;
  nonces: NonceCache;
}

export function createSignatureContext(secret: string, windowMs: number, nonceEntries: number): SignatureContext {
  if (secret.length < 16) throw new Error('the cluster secret must be at least 16 characters');
  return { secret, windowMs, nonces: new NonceCache(nonceEntries, windowMs) };
}

declare module 'express-serve-static-core' {
  interface Request {
    /** The raw body of a signed JSON request, parsed as JSON. */
    signedJson?: unknown;
  }
}

/**
 * Cluster-internal route guard. For JSON routes it reads the body (bounded), checks it against
 * the signature and leaves the parsed JSON in `req.signedJson`. For blob routes
 * (`blobBody: true`) it leaves the body stream unread for the handler.
 */
export function requireSigned(ctx: SignatureContext, options: { blobBody?: boolean; maxBodyBytes?: number } = {}): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const run = async (): Promise<void> => {
      let body: Buffer | undefined;
      const hasJsonBody = !options.blobBody && req.method !== 'GET' && req.method !== 'HEAD';
      if (hasJsonBody) body = await readBody(req, options.maxBodyBytes ?? 1024 * 1024);
      const result = verifyRequest(
        ctx.secret,
        { method: req.method, pathAndQuery: req.originalUrl, headers: req.headers, body, blobBody: options.blobBody },
        ctx.nonces,
        ctx.windowMs,
      );
      if (!result.ok) throw new HttpError(401, result.reason);
      if (hasJsonBody && body && body.length > 0) {
        try {
          req.signedJson = JSON.parse(body.toString('utf8'));
        } catch {
          throw new HttpError(400, 'body is not valid JSON');
        }
      }
    };
    run().then(() => next(), (error: unknown) => {
      // A refused blob upload must not make us read gigabytes: answer, then close the socket.
      if (options.blobBody) res.setHeader('connection', 'close');
      next(error);
    });
  };
}

/** Operator routes (trust zone 2): `Authorization: Bearer <admin token>`. */
export function requireAdmin(adminToken: string): RequestHandler {
  return (req, _res, next) => {
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(auth);
    if (!m) return next(new HttpError(401, 'missing admin token (Authorization: Bearer …)'));
    if (!tokenEquals(m[1]!, adminToken)) return next(new HttpError(403, 'wrong admin token'));
    next();
  };
}

/** Wraps an async handler so a rejection reaches the error handler. */
export function route(handler: (req: Request, res: Response) => Promise<void> | void): RequestHandler {
  return (req, res, next) => {
    try {
      const result = handler(req, res);
      if (result && typeof (result as Promise<void>).then === 'function') (result as Promise<void>).catch(next);
    } catch (error) {
      next(error);
    }
  };
}

/** Last middleware: turns every error into `{"error": "…"}` with a fitting status. */
export function installErrorHandlers(app: Express, log: Logger): void {
  app.use((_req: Request, res: Response) => sendError(res, 404, 'not found'));
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof HttpError) {
      if (error.status >= 500) log.warn('request failed', { path: req.path, status: error.status, error: error.message });
      sendError(res, error.status, error.message);
      return;
    }
    const e = error as { status?: number; type?: string; message?: string };
    if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      sendError(res, e.status, e.type === 'entity.parse.failed' ? 'body is not valid JSON' : (e.message ?? 'bad request'));
      return;
    }
    log.error('unhandled error', { path: req.path, error: e?.message ?? String(error) });
    sendError(res, 500, 'internal error');
  });
}

export function listen(app: Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

// ---- client ---------------------------------------------------------------------------------

export class RpcError extends Error {
  constructor(readonly status: number, message: string, readonly url: string) {
    super(message);
  }
}

export interface RpcOptions {
  method?: string;
  body?: unknown;
  /** Sign with the cluster secret (trust zone 1). */
  secret?: string;
  adminToken?: string;
  timeoutMs: number;
  headers?: Record<string, string>;
}

/** One JSON call with a deadline. Throws RpcError (status 0 for network errors/timeouts). */
export async function rpc<T = unknown>(baseUrl: string, path: string, options: RpcOptions): Promise<T> {
  const method = options.method ?? (options.body === undefined ? 'GET' : 'POST');
  const url = new URL(path, baseUrl);
  const bodyText = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (bodyText !== undefined) headers['content-type'] = 'application/json';
  if (options.secret) Object.assign(headers, signRequest(options.secret, method, url.pathname + url.search, bodyText));
  if (options.adminToken) headers.authorization = `Bearer ${options.adminToken}`;
  let response: globalThis.Response;
  try {
    response = await fetch(url, { method, headers, body: bodyText, signal: AbortSignal.timeout(options.timeoutMs) });
  } catch (error) {
    const e = error as Error;
    const why = e.name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : (e.cause as Error | undefined)?.message ?? e.message;
    throw new RpcError(0, `${method} ${url.href}: ${why}`, url.href);
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) {
    let message = text.slice(0, 300);
    try {
      const parsed = JSON.parse(text) as { error?: string };
      if (parsed.error) message = parsed.error;
    } catch {
      /* not JSON: keep the text */
    }
    throw new RpcError(response.status, `${method} ${url.href}: ${response.status} ${message}`, url.href);
  }
  if (text.length === 0) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RpcError(response.status, `${method} ${url.href}: answer is not JSON`, url.href);
  }
}

/** Signed headers for a blob request whose body (if any) is verified by its id. */
export function signedBlobHeaders(secret: string, method: string, url: URL): Record<string, string> {
  return signRequest(secret, method, url.pathname + url.search, method === 'PUT' ? UNSIGNED_BODY : undefined);
}

/** Resolves when `res` can take more bytes, or has closed (then `res.destroyed`). 'close' may
 * already have fired (client gone while we read), so a destroyed response never waits. */
export function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed || !res.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
