// The lean HTTP/1.1 client (common/raw-http.ts) used by the streamer's replica reads and the
// load generator, against servers we control byte for byte: bodies land in the caller's buffer,
// connections are reused and bounded, and every malformed answer is a clear error.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseHead, RawHttpError, RawHttpPool, type BodySink } from '../common/raw-http.js';

function collect(): BodySink & { body: () => Buffer; head?: { status: number } } {
  let buf = Buffer.alloc(0);
  let at = 0;
  const sink = {
    head: undefined as { status: number } | undefined,
    onHead(h: { status: number; contentLength: number }) {
      sink.head = h;
      buf = Buffer.alloc(h.contentLength);
    },
    target: (max: number) => buf.subarray(at, at + max),
    written: (n: number) => {
      at += n;
    },
    body: () => buf.subarray(0, at),
  };
  return sink;
}

describe('raw HTTP client against a Node http server', () => {
  let server: http.Server;
  let base = '';
  const data = Buffer.alloc(5 * 1024 * 1024 + 7);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  let connections = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (req.url === '/slow') {
        setTimeout(() => res.writeHead(200, { 'content-length': '2' }).end('ok'), 300);
        return;
      }
      if (req.url === '/chunked') {
        res.write('a');
        res.end('b');
        return;
      }
      if (!m) {
        res.writeHead(200, { 'content-length': data.length }).end(data);
        return;
      }
      const s = Number(m[1]);
      const e = Number(m[2]);
      res.writeHead(206, { 'content-length': e - s + 1, 'content-range': `bytes ${s}-${e}/${data.length}` }).end(data.subarray(s, e + 1));
    });
    server.on('connection', () => {
      connections += 1;
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  test('a whole body and ranges arrive byte-exact in the sink; the connection is reused', async () => {
    const pool = new RawHttpPool({ maxSocketsPerHost: 4, idleTimeoutMs: 2000 });
    try {
      const c0 = connections;
      const whole = collect();
      const h = await pool.request(new URL('/file', base), {}, whole).head;
      assert.equal(h.status, 200);
      assert.ok(whole.body().equals(data));
      for (const [s, e] of [[0, 0], [1, 1_000_000], [data.length - 10, data.length - 1]] as const) {
        const part = collect();
        const r = await pool.request(new URL('/file', base), { range: `bytes=${s}-${e}` }, part).head;
        assert.equal(r.status, 206);
        assert.equal(r.headers.get('content-range'), `bytes ${s}-${e}/${data.length}`);
        assert.ok(part.body().equals(data.subarray(s, e + 1)));
      }
      assert.equal(connections - c0, 1, 'four requests in a row share one keep-alive connection');
    } finally {
      pool.destroy();
    }
  });

  test('no more than maxSocketsPerHost connections, whatever the concurrency', async () => {
    const pool = new RawHttpPool({ maxSocketsPerHost: 3, idleTimeoutMs: 2000 });
    try {
      const c0 = connections;
      const all = await Promise.all(Array.from({ length: 12 }, async () => {
        const s = collect();
        await pool.request(new URL('/slow', base), {}, s).head;
        return s.body().toString();
      }));
      assert.deepEqual(all, new Array(12).fill('ok'));
      assert.ok(connections - c0 <= 3, `at most 3 connections opened (saw ${connections - c0})`);
    } finally {
      pool.destroy();
    }
  });

  test('a chunked answer is refused with a clear error, not misread', async () => {
    const pool = new RawHttpPool({ maxSocketsPerHost: 2, idleTimeoutMs: 2000 });
    try {
      await assert.rejects(pool.request(new URL('/chunked', base), {}, collect()).head, (e: unknown) => e instanceof RawHttpError && e.code === 'protocol' && /transfer-encoding chunked/.test(e.message));
    } finally {
      pool.destroy();
    }
  });

  test('abort fails the request and frees its slot; an aborted signal never sends', async () => {
    const pool = new RawHttpPool({ maxSocketsPerHost: 1, idleTimeoutMs: 2000 });
    try {
      const r = pool.request(new URL('/slow', base), {}, collect());
      setTimeout(() => r.abort('given up'), 50);
      await assert.rejects(r.head, (e: unknown) => e instanceof RawHttpError && e.code === 'aborted' && e.message === 'given up');
      const again = collect();
      await pool.request(new URL('/slow', base), {}, again).head;
      assert.equal(again.body().toString(), 'ok', 'the one slot was released');
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(pool.request(new URL('/slow', base), {}, collect(), { signal: ac.signal }).head, RawHttpError);
    } finally {
      pool.destroy();
    }
  });

  test('a refused head (the sink throws) drops the connection with the sink\'s reason', async () => {
    const pool = new RawHttpPool({ maxSocketsPerHost: 2, idleTimeoutMs: 2000 });
    try {
      const sink = { ...collect(), onHead: () => { throw new Error('not the range I asked for'); } };
      await assert.rejects(pool.request(new URL('/file', base), {}, sink).head, /not the range I asked for/);
    } finally {
      pool.destroy();
    }
  });

  test('header values with line breaks are refused before anything is sent', async () => {
    const pool = new RawHttpPool({ maxSocketsPerHost: 2, idleTimeoutMs: 2000 });
    try {
      await assert.rejects(pool.request(new URL('/file', base), { range: 'bytes=0-1\r\nX-Evil: 1' }, collect()).head, /line break/);
    } finally {
      pool.destroy();
    }
  });
});

describe('raw HTTP client against hostile raw servers', () => {
  let server: net.Server;
  let port = 0;
  /** What the next connection's server side does with a request. */
  let behave: (socket: net.Socket) => void = () => {};
  const serverSockets = new Set<net.Socket>();

  before(async () => {
    server = net.createServer((socket) => {
      serverSockets.add(socket);
      socket.on('close', () => serverSockets.delete(socket));
      socket.once('data', () => behave(socket));
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise((r) => server.close(r)));

  const run = async (b: (socket: net.Socket) => void): Promise<unknown> => {
    behave = b;
    const pool = new RawHttpPool({ maxSocketsPerHost: 1, idleTimeoutMs: 1000 });
    try {
      await pool.request(new URL(`http://127.0.0.1:${port}/x`), {}, collect()).head;
      return undefined;
    } catch (error) {
      return error;
    } finally {
      pool.destroy();
    }
  };

  test('more body than Content-Length announced', async () => {
    const e = await run((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef'));
    assert.ok(e instanceof RawHttpError && e.code === 'protocol' && /more than the 3 bytes/.test(e.message), String(e));
  });

  test('a body cut short by the server closing', async () => {
    const e = await run((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    assert.ok(e instanceof RawHttpError && e.code === 'reset', String(e));
  });

  test('no Content-Length, garbage status line, oversize head', async () => {
    const e1 = await run((s) => s.write('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nabc'));
    assert.ok(e1 instanceof RawHttpError && /without a usable Content-Length/.test(e1.message), String(e1));
    const e2 = await run((s) => s.write('SSH-2.0-OpenSSH\r\n\r\n'));
    assert.ok(e2 instanceof RawHttpError && /not an HTTP\/1\.x answer/.test(e2.message), String(e2));
    const e3 = await run((s) => s.write('HTTP/1.1 200 OK\r\n' + 'X-Pad: ' + 'a'.repeat(70 * 1024)));
    assert.ok(e3 instanceof RawHttpError && /over 64 KiB/.test(e3.message), String(e3));
  });

  test('nothing listening: a connect error', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const p = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const pool = new RawHttpPool({ maxSocketsPerHost: 1, idleTimeoutMs: 1000 });
    try {
      await assert.rejects(pool.request(new URL(`http://127.0.0.1:${p}/`), {}, collect()).head, (e: unknown) => e instanceof RawHttpError && e.code === 'connect' && /ECONNREFUSED/.test(e.message));
    } finally {
      pool.destroy();
    }
  });

  test('a kept-alive socket closed by the server just before reuse: the GET goes again on a new one', async () => {
    let n = 0;
    behave = (s) => {
      n += 1;
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    };
    const pool = new RawHttpPool({ maxSocketsPerHost: 1, idleTimeoutMs: 5000 });
    try {
      await pool.request(new URL(`http://127.0.0.1:${port}/a`), {}, collect()).head;
      // The server side's idle close racing the next request: simulated by closing every server
      // socket now, before the pool notices.
      const second = collect();
      const conns = await new Promise<number>((r) => server.getConnections((_e, c) => r(c)));
      assert.equal(conns, 1);
      for (const s of serverSockets) s.destroy();
      const h = await pool.request(new URL(`http://127.0.0.1:${port}/b`), {}, second).head;
      assert.equal(h.status, 200);
      assert.equal(second.body().toString(), 'ok');
      assert.equal(n, 2);
    } finally {
      pool.destroy();
    }
  });

  test('the head parser', () => {
    const h = parseHead('HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2');
    assert.ok(typeof h !== 'string');
    assert.equal(h.contentLength, 5);
    assert.equal(h.headers.get('x-a'), '1, 2');
    assert.equal((parseHead('HTTP/1.1 304 Not Modified') as { contentLength: number }).contentLength, 0);
    assert.match(String(parseHead('HTTP/1.1 200 OK\r\nContent-Length: -1')), /usable Content-Length/);
    assert.match(String(parseHead('HTTP/1.1 200 OK\r\nbroken line')), /malformed header/);
  });
});

