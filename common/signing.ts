// Cluster-internal request signing (trust zone 1). A request carries the time, a nonce and an
// HMAC-SHA256 over method, path+query, time, nonce and the SHA-256 of the body. Blob bodies are
// not hashed into the signature: their path names the SHA-256 the receiver verifies anyway.
// The receiver refuses a signature outside the time window and a nonce it has already seen.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const HEADER_DATE = 'x-ktv-date';
export const HEADER_NONCE = 'x-ktv-nonce';
export const HEADER_SIGNATURE = 'x-ktv-signature';
export const HEADER_BODY_HASH = 'x-ktv-body-sha256';

/** Marks a body that is not covered by the signature (blob bytes, verified by their id). */
export const UNSIGNED_BODY = 'UNSIGNED-BLOB';
const EMPTY_BODY_HASH = createHash('sha256').update('').digest('hex');

export function bodyHash(body: string | Buffer | undefined): string {
  if (body === undefined || body.length === 0) return EMPTY_BODY_HASH;
  return createHash('sha256').update(body).digest('hex');
}

function mac(secret: string, method: string, pathAndQuery: string, dateMs: string, nonce: string, bodySha: string): string {
  return createHmac('sha256', secret)
    .update(`${method.toUpperCase()}\n${pathAndQuery}\n${dateMs}\n${nonce}\n${bodySha}`)
    .digest('hex');
}

/** Headers to add to a request. `body` is the exact bytes sent, or UNSIGNED_BODY for blob data. */
export function signRequest(
  secret: string,
  method: string,
  pathAndQuery: string,
  body: string | Buffer | typeof UNSIGNED_BODY | undefined,
  nowMs = Date.now(),
): Record<string, string> {
  const dateMs = String(nowMs);
  const nonce = randomBytes(12).toString('hex');
  const bodySha = body === UNSIGNED_BODY ? UNSIGNED_BODY : bodyHash(body);
  return {
    [HEADER_DATE]: dateMs,
    [HEADER_NONCE]: nonce,
    [HEADER_BODY_HASH]: bodySha,
    [HEADER_SIGNATURE]: mac(secret, method, pathAndQuery, dateMs, nonce, bodySha),
  };
}

/** Remembers nonces for the replay window; bounded, oldest forgotten first. */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  constructor(private readonly maxEntries: number, private readonly windowMs: number) {}

  /** Returns false when the nonce was already used. */
  remember(nonce: string, nowMs: number): boolean {
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, nowMs);
    // Drop expired entries from the front (insertion order is time order), and bound the size.
    for (const [key, atMs] of this.seen) {
      if (this.seen.size <= this.maxEntries && nowMs - atMs <= 2 * this.windowMs) break;
      this.seen.delete(key);
    }
    return true;
  }
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export interface SignedRequestParts {
  method: string;
  pathAndQuery: string;
  headers: Record<string, string | string[] | undefined>;
  /** Exact body bytes when the request has a signed body; undefined for blob bodies. */
  body?: Buffer;
  /** The route carries blob bytes verified by their id; UNSIGNED_BODY is accepted. */
  blobBody?: boolean;
}

function header(headers: SignedRequestParts['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function verifyRequest(
  secret: string,
  req: SignedRequestParts,
  nonces: NonceCache,
  windowMs: number,
  nowMs = Date.now(),
): VerifyResult {
  const dateMs = header(req.headers, HEADER_DATE);
  const nonce = header(req.headers, HEADER_NONCE);
  const signature = header(req.headers, HEADER_SIGNATURE);
  const bodySha = header(req.headers, HEADER_BODY_HASH);
  if (!dateMs || !nonce || !signature || !bodySha) return { ok: false, reason: 'request is not signed' };
  if (!/^\d{1,15}$/.test(dateMs) || !/^[0-9a-f]{8,64}$/.test(nonce) || !/^[0-9a-f]{64}$/.test(signature)) {
    return { ok: false, reason: 'malformed signature headers' };
  }
  if (Math.abs(nowMs - Number(dateMs)) > windowMs) return { ok: false, reason: 'signature expired (outside the replay window)' };
  if (bodySha === UNSIGNED_BODY) {
    if (!req.blobBody) return { ok: false, reason: 'body must be signed' };
  } else if (bodySha !== bodyHash(req.body)) {
    return { ok: false, reason: 'body does not match its signed hash' };
  }
  const expected = Buffer.from(mac(secret, req.method, req.pathAndQuery, dateMs, nonce, bodySha), 'hex');
  const given = Buffer.from(signature, 'hex');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'bad signature' };
  if (!nonces.remember(nonce, nowMs)) return { ok: false, reason: 'replayed request (nonce already used)' };
  return { ok: true };
}

/** Constant-time comparison for bearer tokens (admin token, trust zone 2). */
export function tokenEquals(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}
