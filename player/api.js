// Talking to streamers: JSON calls with a deadline, and which streamer this room uses. The page's
// own origin comes first; GET /api/v1/streamers names the others. A streamer that fails
// FAILOVER_AFTER_FAILURES times in a row (API calls and media loads both count) is left for the
// next one in the list; with a single streamer the room simply keeps retrying it.
import { toSong } from './format.js';

export const API_TIMEOUT_MS = 5000;
export const FAILOVER_AFTER_FAILURES = 3;
export const STREAMERS_REFRESH_MS = 60_000;
/** Most streamers a room remembers (the list comes from the network: bound it). */
const STREAMERS_MAX = 16;
/** Search answers the views ask for at most (the tracker's searchMaxLimit default is 200). */
export const SEARCH_LIMIT = 60;
export const CATALOG_SCAN_LIMIT = 200;

export class ApiError extends Error {
  /** status 0: no answer (network, timeout); otherwise the HTTP status. */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function normalizeBase(url) {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return u.origin;
  } catch {
    return null;
  }
}

export class Api extends EventTarget {
  constructor(origin) {
    super();
    this.bases = [normalizeBase(origin) ?? origin];
    this.index = 0;
    this.failures = 0;
    this.switches = 0;
    this.lastRefreshMs = 0;
  }

  get base() {
    return this.bases[this.index];
  }

  masterUrl(songId) {
    return `${this.base}/hls/${encodeURIComponent(songId)}/master.m3u8`;
  }

  noteSuccess() {
    this.failures = 0;
  }

  /**
   * One more failure of the current streamer. Returns true when the room moved to another one
   * (the caller reloads its media from `base`).
   */
  noteFailure() {
    this.failures += 1;
    if (this.failures < FAILOVER_AFTER_FAILURES || this.bases.length < 2) return false;
    this.failures = 0;
    this.index = (this.index + 1) % this.bases.length;
    this.switches += 1;
    this.dispatchEvent(new CustomEvent('switched', { detail: { base: this.base } }));
    return true;
  }

  async json(path, { timeoutMs = API_TIMEOUT_MS, signal } = {}) {
    // The current streamer first, then the others for this one call; a network error or a 5xx
    // counts against the current streamer (and may move the room, see noteFailure).
    let lastError = null;
    const start = this.index;
    for (let i = 0; i < this.bases.length; i++) {
      const base = this.bases[(start + i) % this.bases.length];
      try {
        const result = await this.once(base, path, timeoutMs, signal);
        if (i === 0) this.noteSuccess();
        return result;
      } catch (error) {
        if (signal && signal.aborted) throw error;
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
        lastError = error;
        if (i === 0) this.noteFailure();
      }
    }
    throw lastError ?? new ApiError(0, 'no streamer answered');
  }

  async once(base, path, timeoutMs, outerSignal) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new DOMException('timeout', 'TimeoutError')), timeoutMs);
    const onAbort = () => ctl.abort(outerSignal.reason);
    if (outerSignal) outerSignal.addEventListener('abort', onAbort, { once: true });
    let res;
    try {
      res = await fetch(base + path, { signal: ctl.signal, headers: { accept: 'application/json' } });
    } catch (error) {
      if (outerSignal && outerSignal.aborted) throw error;
      throw new ApiError(0, ctl.signal.aborted ? `no answer within ${timeoutMs} ms` : 'network error');
    } finally {
      clearTimeout(timer);
      if (outerSignal) outerSignal.removeEventListener('abort', onAbort);
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    if (!res.ok) throw new ApiError(res.status, (body && typeof body.error === 'string' && body.error) || `HTTP ${res.status}`);
    if (body === null) throw new ApiError(res.status, 'answer is not JSON');
    return body;
  }

  /** GET /api/v1/songs with the given filters → validated song rows. */
  async songs(params, options) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
    if (!qs.has('limit')) qs.set('limit', String(SEARCH_LIMIT));
    const body = await this.json(`/api/v1/songs?${qs}`, options);
    const rows = Array.isArray(body.songs) ? body.songs : [];
    return rows.map(toSong).filter(Boolean);
  }

  /** Learns the other streamers; the current one stays current. Never throws. */
  async refreshStreamers() {
    this.lastRefreshMs = Date.now();
    let body;
    try {
      body = await this.once(this.base, '/api/v1/streamers', API_TIMEOUT_MS);
    } catch {
      return this.bases;
    }
    const list = Array.isArray(body && body.streamers) ? body.streamers : [];
    const usable = [];
    for (const s of list.slice(0, STREAMERS_MAX * 4)) {
      if (!s || typeof s.url !== 'string') continue;
      if (typeof s.state === 'string' && /^(down|dead|draining|stopped)$/i.test(s.state)) continue;
      const b = normalizeBase(s.url);
      if (b && !usable.includes(b)) usable.push(b);
    }
    const current = this.base;
    const merged = [current, ...usable.filter((b) => b !== current)].slice(0, STREAMERS_MAX);
    this.bases = merged;
    this.index = 0;
    return this.bases;
  }
}
