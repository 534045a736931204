// The room player's files (player/, built by the player role) and hls.js, served read-only.
// Paths were checked by the router (only [A-Za-z0-9_.-] segments, no `..`); here they are also
// resolved and required to stay inside their folder, and only regular files are served.
import { createReadStream, existsSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpError } from '../common/http.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** A player file larger than this is not one (the player is a small web app). */
const MAX_STATIC_BYTES = 16 * 1024 * 1024;

/** player/ in the source tree: dist/streamer/static.js → ../../player. */
export function playerDirectory(): string {
  return fileURLToPath(new URL('../../player/', import.meta.url));
}

/** hls.js's browser build, from node_modules (a dependency of the project). */
export function hlsScriptPath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js');
  } catch {
    return undefined;
  }
}

export class StaticFiles {
  private readonly root: string;
  private readonly vendor = new Map<string, string>();

  constructor(playerDir: string) {
    this.root = resolve(playerDir);
    const hls = hlsScriptPath();
    if (hls) {
      this.vendor.set('hls.min.js', hls);
      if (existsSync(`${hls}.map`)) this.vendor.set('hls.min.js.map', `${hls}.map`);
    }
  }

  /** A file of the player, by its path relative to player/ ('' = index.html). */
  async player(relative: string, res: ServerResponse, head: boolean): Promise<number> {
    const rel = relative === '' ? 'index.html' : relative;
    const missing = relative === '' ? 'the player is not installed (player/index.html is missing)' : 'not found';
    const file = resolve(join(this.root, rel));
    if (!file.startsWith(this.root + sep)) throw new HttpError(404, 'not found');
    // A symbolic link inside player/ must not lead out of it.
    const [realFile, realRoot] = await Promise.all([realpath(file).catch(() => ''), realpath(this.root).catch(() => this.root)]);
    if (!realFile.startsWith(realRoot + sep)) throw new HttpError(404, missing);
    return this.send(file, res, head, 'no-cache', missing);
  }

  /** /vendor/NAME: hls.js. */
  async vendorFile(name: string, res: ServerResponse, head: boolean): Promise<number> {
    const file = this.vendor.get(name);
    if (!file) throw new HttpError(404, name === 'hls.min.js' ? 'hls.js is not installed (npm ci)' : 'not found');
    // The installed version changes only with a deploy; revalidate after an hour.
    return this.send(file, res, head, 'public, max-age=3600');
  }

  private async send(file: string, res: ServerResponse, head: boolean, cacheControl: string, missing = 'not found'): Promise<number> {
    let info: Stats;
    try {
      info = await stat(file);
    } catch {
      throw new HttpError(404, missing);
    }
    if (!info.isFile()) throw new HttpError(404, missing);
    if (info.size > MAX_STATIC_BYTES) throw new HttpError(404, 'not found');
    const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    const headers: Record<string, string | number> = {
      'Content-Type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Cache-Control': cacheControl,
      ETag: etag,
      'X-Content-Type-Options': 'nosniff',
    };
    const inm = res.req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim() === etag)) {
      res.writeHead(304, headers).end();
      return 0;
    }
    headers['Content-Length'] = info.size;
    if (head) {
      res.writeHead(200, headers).end();
      return 0;
    }
    return new Promise<number>((done) => {
      const stream = createReadStream(file);
      stream.once('open', () => {
        res.writeHead(200, headers);
        stream.pipe(res);
      });
      stream.once('error', () => {
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: 'could not read the file' }));
        } else {
          res.destroy();
        }
        done(0);
      });
      stream.once('end', () => done(info.size));
      res.once('close', () => stream.destroy());
    });
  }
}
