// A lean HTTP/1.1 GET client for the byte-moving paths (the streamer's replica reads, the load
// generator's rooms), where Node's http client costs more CPU than the bytes: measured here,
// receiving 22 MB ranges from nginx over 50 keep-alive connections, http.get with 'data' events
// took 0.26 cores per Gbit/s; a net.Socket with `onread` into 1 MiB buffers took 0.06 (4.4×
// less), because the kernel copies straight into our buffer in large reads and no stream or
// IncomingMessage machinery runs per 64 KiB chunk.
//
// Scope, on purpose: GET/HEAD, keep-alive, Content-Length bodies (our storage nodes, streamers
// and nginx always send one for these answers); a chunked or length-less body is refused as a
// protocol error. Body bytes go where the caller's sink says, so a segment read lands directly in
// the segment's buffer (no copy in user space) and a load test counts bytes in a scratch buffer.
// Every connection per host is bounded; idle ones close after idleTimeoutMs.
import net from 'node:net';

export type RawHttpErrorCode = 'connect' | 'reset' | 'protocol' | 'aborted';

export class RawHttpError extends Error {
  constructor(
    message: string,
    readonly code: RawHttpErrorCode,
    /** The request went out on a kept-alive socket (a reset there may be the server's idle close). */
    readonly reusedSocket: boolean,
    /** Not one byte of an answer had arrived: a GET may be sent again safely. */
    readonly beforeAnswer = false,
  ) {
    super(message);
  }
}

export interface RawHead {
  status: number;
  /** Lower-case header names. */
  headers: Map<string, string>;
  contentLength: number;
}

/** Where a response body goes. */
export interface BodySink {
  /** Called once the head is in; throw to refuse the answer (the connection is dropped). */
  onHead(head: RawHead): void;
  /** A buffer for up to `maxBytes` more body bytes (it may be shorter, never empty). */
  target(maxBytes: number): Buffer;
  /** `bytes` were written at the start of the buffer `target` returned last. */
  written(bytes: number): void;
}

const MAX_HEAD_BYTES = 64 * 1024;
/** Largest single read: big enough that a 22 MB segment is ~25 reads, small enough to share. */
const MAX_READ_BYTES = 1024 * 1024;
const HEAD_SCRATCH_BYTES = 64 * 1024;

interface Exchange {
  sink: BodySink;
  head?: RawHead;
  left: number;
  lastTarget?: Buffer;
  headText: string;
  resolve: (head: RawHead) => void;
  reject: (error: RawHttpError) => void;
  reused: boolean;
  headOnly: boolean;
}

class RawConnection {
  readonly socket: net.Socket;
  private exchange?: Exchange;
  private readonly scratch = Buffer.allocUnsafe(HEAD_SCRATCH_BYTES);
  completed = 0;
  closed = false;
  private keepAlive = true;
  readonly connected: Promise<void>;

  constructor(
    /** host:port, the pool's key. */
    readonly key: string,
    host: string,
    port: number,
    private readonly onFree: (c: RawConnection) => void,
    private readonly onGone: (c: RawConnection) => void,
  ) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: () => this.nextBuffer(), callback: (n: number, buf: Buffer) => this.onData(n, buf) },
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.connected.catch(() => {});
    this.socket.on('error', (error: NodeJS.ErrnoException) =>
      this.fail(new RawHttpError(`${error.code ?? ''} ${error.message}`.trim(), this.completed === 0 && !this.socket.bytesWritten ? 'connect' : 'reset', this.exchange?.reused ?? false, this.exchange !== undefined && this.exchange.headText === '')),
    );
    this.socket.on('close', () => this.fail(new RawHttpError('connection closed by the server', 'reset', this.exchange?.reused ?? false, this.exchange !== undefined && this.exchange.headText === '')));
    this.socket.on('end', () => this.socket.destroy());
    this.socket.on('timeout', () => {
      // Only armed while idle: a kept-alive socket nobody needs.
      if (!this.exchange) this.socket.destroy();
    });
  }

  private nextBuffer(): Buffer {
    const x = this.exchange;
    if (x?.head && x.left > 0) {
      const t = x.sink.target(Math.min(x.left, MAX_READ_BYTES));
      x.lastTarget = t;
      return t;
    }
    return this.scratch;
  }

  send(path: string, hostHeader: string, headers: Record<string, string>, sink: BodySink, headOnly: boolean): Promise<RawHead> {
    return new Promise((resolve, reject) => {
      this.exchange = { sink, left: 0, headText: '', resolve, reject, reused: this.completed > 0, headOnly };
      this.socket.setTimeout(0);
      let text = `${headOnly ? 'HEAD' : 'GET'} ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\n`;
      for (const [k, v] of Object.entries(headers)) {
        if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) {
          this.exchange = undefined;
          reject(new RawHttpError(`header ${k} holds a line break`, 'protocol', false));
          return;
        }
        text += `${k}: ${v}\r\n`;
      }
      this.socket.write(text + '\r\n', 'latin1');
    });
  }

  private onData(n: number, buf: Buffer): boolean {
    const x = this.exchange;
    if (!x) {
      this.fail(new RawHttpError('the server sent bytes nobody asked for', 'protocol', false));
      return false;
    }
    if (x.head) {
      // Read straight into the sink's buffer (nextBuffer gave it out).
      if (buf !== x.lastTarget) {
        this.deliverCopy(x, buf.subarray(0, n));
      } else {
        x.left -= n;
        x.sink.written(n);
      }
    } else {
      x.headText += buf.toString('latin1', 0, n);
      const end = x.headText.indexOf('\r\n\r\n');
      if (end < 0) {
        if (x.headText.length > MAX_HEAD_BYTES) this.fail(new RawHttpError('response head over 64 KiB', 'protocol', x.reused));
        return true;
      }
      const head = parseHead(x.headText.slice(0, end), x.headOnly);
      if (typeof head === 'string') {
        this.fail(new RawHttpError(head, 'protocol', x.reused));
        return false;
      }
      x.head = head;
      x.left = head.contentLength;
      if (head.headers.get('connection')?.toLowerCase() === 'close') this.keepAlive = false;
      try {
        x.sink.onHead(head);
      } catch (error) {
        this.fail(new RawHttpError((error as Error).message, 'aborted', x.reused));
        return false;
      }
      // Body bytes that came with the head: the head is latin1 text, so its length in
      // characters is its length in bytes.
      const bodyStart = end + 4 - (x.headText.length - n);
      if (bodyStart < n) this.deliverCopy(x, buf.subarray(bodyStart, n));
    }
    if (this.exchange === x && x.head && x.left === 0) this.finish(x);
    return true;
  }

  private deliverCopy(x: Exchange, src: Buffer): void {
    if (src.length > x.left) {
      this.fail(new RawHttpError(`the server sent more than the ${x.head!.contentLength} bytes it announced`, 'protocol', x.reused));
      return;
    }
    let rest = src;
    while (rest.length > 0) {
      const t = x.sink.target(rest.length);
      const k = rest.copy(t, 0, 0, Math.min(t.length, rest.length));
      x.left -= k;
      x.sink.written(k);
      rest = rest.subarray(k);
    }
  }

  private finish(x: Exchange): void {
    this.exchange = undefined;
    this.completed += 1;
    x.resolve(x.head!);
    if (this.keepAlive && !this.closed) this.onFree(this);
    else this.destroy();
  }

  /** Drops the connection; the request on it (if any) fails with `error`. */
  fail(error: RawHttpError): void {
    const x = this.exchange;
    this.exchange = undefined;
    this.destroy();
    x?.reject(error);
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.onGone(this);
  }

  idle(timeoutMs: number): void {
    this.socket.setTimeout(timeoutMs);
  }
}

/** Status line and headers → RawHead, or a reason it is not an answer we can use. */
export function parseHead(text: string, headOnly = false): RawHead | string {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) return `not an HTTP/1.x answer: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`;
  const status = Number(m[1]);
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return `malformed header line ${JSON.stringify(line.slice(0, 80))}`;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  if (headers.has('transfer-encoding')) return `transfer-encoding ${headers.get('transfer-encoding')} bodies are not supported here (a Content-Length is expected)`;
  let contentLength = 0;
  const cl = headers.get('content-length');
  if (headOnly || status === 204 || status === 304 || (status >= 100 && status < 200)) contentLength = 0;
  else if (cl === undefined || !/^\d{1,15}$/.test(cl)) return `answer ${status} without a usable Content-Length (${cl ?? 'none'})`;
  else contentLength = Number(cl);
  return { status, headers, contentLength };
}

export interface RawPoolOptions {
  maxSocketsPerHost: number;
  idleTimeoutMs: number;
}

export interface RawRequest {
  /** Settles when the request has gone out on a connection (after any wait for a free one). */
  sent: Promise<void>;
  head: Promise<RawHead>;
  /** Fails the request (and drops its connection) with this reason. */
  abort(reason: string): void;
}

/** Keep-alive connections per host:port, reused most-recent first, bounded per host. */
export class RawHttpPool {
  private readonly free = new Map<string, RawConnection[]>();
  private readonly count = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();
  private destroyed = false;

  constructor(private readonly options: RawPoolOptions) {}

  /** GET (or HEAD) `url`; the promise settles when the whole body is in the sink. */
  request(url: URL, headers: Record<string, string>, sink: BodySink, opts: { head?: boolean; signal?: AbortSignal } = {}): RawRequest {
    let conn: RawConnection | undefined;
    let abortedWith: string | undefined;
    const key = `${url.hostname}:${url.port || 80}`;
    let markSent: () => void = () => {};
    let failSent: (e: unknown) => void = () => {};
    const sent = new Promise<void>((resolve, reject) => {
      markSent = resolve;
      failSent = reject;
    });
    sent.catch(() => {});
    // An abort settles the request at once, even while it waits for a free connection.
    let rejectAborted: (e: RawHttpError) => void = () => {};
    const aborted = new Promise<never>((_, reject) => {
      rejectAborted = reject;
    });
    aborted.catch(() => {});
    const once = async (fresh: boolean): Promise<RawHead> => {
      conn = await this.acquire(key, url, fresh);
      if (abortedWith !== undefined) {
        this.release(conn);
        throw new RawHttpError(abortedWith, 'aborted', false);
      }
      await conn.connected.catch((error: NodeJS.ErrnoException) => {
        conn!.destroy();
        throw new RawHttpError(`${error.code ?? ''} ${error.message}`.trim(), 'connect', false);
      });
      if (abortedWith !== undefined) {
        conn.destroy();
        throw new RawHttpError(abortedWith, 'aborted', false);
      }
      const answer = conn.send(url.pathname + url.search, url.host, headers, sink, opts.head === true);
      markSent();
      return answer;
    };
    // A kept-alive socket the server closed just as we reused it (its idle timeout racing ours):
    // no answer had started, so the GET goes once more on a new connection, as browsers do.
    const attempt = once(false).catch((error: unknown) => {
      if (error instanceof RawHttpError && error.code === 'reset' && error.reusedSocket && error.beforeAnswer && abortedWith === undefined) return once(true);
      throw error;
    });
    const head = Promise.race([attempt, aborted]);
    head.catch((e: unknown) => failSent(e));
    const abort = (reason: string): void => {
      if (abortedWith !== undefined) return;
      abortedWith = reason;
      const error = new RawHttpError(reason, 'aborted', (conn?.completed ?? 0) > 0);
      conn?.fail(error);
      rejectAborted(error);
    };
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = (): void => abort('aborted by the caller');
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        head.then(() => signal.removeEventListener('abort', onAbort), () => signal.removeEventListener('abort', onAbort));
      }
    }
    return { sent, head, abort };
  }

  private async acquire(key: string, url: URL, fresh = false): Promise<RawConnection> {
    for (;;) {
      if (this.destroyed) throw new RawHttpError('the client is closed', 'aborted', false);
      const list = this.free.get(key);
      const c = fresh ? undefined : list?.pop();
      if (c) {
        if (!c.closed) return c;
        continue;
      }
      const n = this.count.get(key) ?? 0;
      if (n < this.options.maxSocketsPerHost) {
        this.count.set(key, n + 1);
        return new RawConnection(key, url.hostname, Number(url.port || 80), (x) => this.release(x), (x) => this.gone(x));
      }
      await new Promise<void>((resolve) => {
        const q = this.waiting.get(key) ?? [];
        q.push(resolve);
        this.waiting.set(key, q);
      });
    }
  }

  private release(c: RawConnection): void {
    if (c.closed || this.destroyed) {
      c.destroy();
      return;
    }
    const key = c.key;
    c.idle(this.options.idleTimeoutMs);
    const list = this.free.get(key) ?? [];
    list.push(c);
    this.free.set(key, list);
    this.wake(key);
  }

  private gone(c: RawConnection): void {
    const key = c.key;
    this.count.set(key, Math.max(0, (this.count.get(key) ?? 1) - 1));
    const list = this.free.get(key);
    if (list) this.free.set(key, list.filter((x) => !x.closed));
    this.wake(key);
  }

  private wake(key: string): void {
    const q = this.waiting.get(key);
    const next = q?.shift();
    if (next) next();
  }

  destroy(): void {
    this.destroyed = true;
    for (const list of this.free.values()) for (const c of list) c.destroy();
    this.free.clear();
    for (const q of this.waiting.values()) for (const w of q.splice(0)) w();
  }
}
