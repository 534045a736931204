// The library role: the upload API and page (server.ts) over the ingest pipeline (ingest/),
// with a bounded queue of packaging jobs (jobs.ts). `ktv library` and `ktv up` call
// startLibrary; tests start it in-process on port 0.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeServer, listen } from '../common/http.js';
import type { Logger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import type { Config } from '../config/schema.js';
import { IngestError, ingestSong } from './ingest/ingest.js';
import { JobBoard, JobSlots } from './jobs.js';
import { createLibraryMetrics } from './metrics.js';
import { createLibraryApp } from './server.js';

export interface LibraryOptions {
  config: Config;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Tracker base URLs; calls fail over between them. */
  trackers: string[];
  /** The cluster secret (trust zone 1): blob writes to storage nodes are signed with it. */
  secret: string;
  /** Operators' token (trust zone 2): uploads and job progress need it. */
  adminToken: string;
  log: Logger;
}

export interface LibraryHandle {
  /** Base URL with a trailing slash; the upload page is at `/`. */
  url: string;
  /** Uploads go to `${workDir}/uploads`, packaging output to `${workDir}/packaging`. */
  workDir: string;
  close(): Promise<void>;
}

/** On close, running ingests are cancelled (ffmpeg killed) and waited for this long at most. */
const CLOSE_WAIT_MS = 10_000;

/**
 * The static page lives in the source tree (tsc does not copy it): from dist/library/index.js
 * that is ../../library/web; a build that copies it next to this file works too.
 */
export function webDirectory(): string {
  const candidates = [new URL('../../library/web/', import.meta.url), new URL('./web/', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found) throw new Error(`upload page not found (looked in ${candidates.join(', ')})`);
  return found;
}

export async function startLibrary(opts: LibraryOptions): Promise<LibraryHandle> {
  const { config, log } = opts;
  const lib = config.library;
  if (opts.adminToken.length < 16) throw new Error('the admin token must be at least 16 characters');
  const webDir = webDirectory();
  const ownWorkDir = !lib.workDir;
  const workDir = lib.workDir ? resolve(lib.workDir) : await mkdtemp(join(tmpdir(), 'ktv-library-'));
  const uploadsDir = join(workDir, 'uploads');
  const packagingDir = join(workDir, 'packaging');
  // A crash leaves partial uploads and packaging output behind. One library process per
  // workDir (documented in the config), so whatever is there now is garbage.
  await rm(uploadsDir, { recursive: true, force: true });
  await rm(packagingDir, { recursive: true, force: true });
  await mkdir(uploadsDir, { recursive: true });
  await mkdir(packagingDir, { recursive: true });

  const tracker = new TrackerClient(opts.trackers, opts.secret, config.rpcTimeoutMs);
  // Several songs at once share the CPU: each ffmpeg gets its part of the cores.
  const threads = Math.max(1, Math.floor(availableParallelism() / lib.jobs));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const shutdown = new AbortController();
  const slots = new JobSlots(lib.jobs, lib.queueMax);
  const board = new JobBoard(lib.jobProgressTtlMs, lib.jobProgressMaxEntries);
  const metrics = createLibraryMetrics(slots);
  const inflight = new Set<Promise<unknown>>();

  const app = createLibraryApp({
    config,
    adminToken: opts.adminToken,
    log,
    uploadsDir,
    webDir,
    slots,
    board,
    metrics,
    ingest: (req, onProgress) => {
      // Queued uploads that get their slot during close(): no point hashing a 4 GiB file first.
      if (shutdown.signal.aborted) return Promise.reject(new IngestError(503, 'the library is shutting down', 'aborted'));
      const run = ingestSong(req, { tracker, secret: opts.secret, config, log, workDir: packagingDir, onProgress, signal: shutdown.signal, threads, agent });
      const tracked = run.catch(() => undefined);
      inflight.add(tracked);
      void tracked.finally(() => inflight.delete(tracked));
      return run;
    },
    health: () => ({ ok: true, role: 'library', running: slots.runningCount, queued: slots.queuedCount, trackers: opts.trackers }),
  });

  let server: http.Server;
  try {
    server = await listen(app, opts.host, opts.port);
  } catch (error) {
    agent.destroy();
    if (ownWorkDir) await rm(workDir, { recursive: true, force: true });
    throw error;
  }
  // Node's default 5-minute whole-request deadline would cut a 4 GiB upload on a slow link; the
  // upload route has an idle deadline (library.uploadIdleTimeoutMs) instead.
  server.requestTimeout = 0;
  const address = server.address() as AddressInfo;
  const bound = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const url = `http://${bound.includes(':') ? `[${bound}]` : bound}:${address.port}/`;
  log.info('library started', { url, workDir, jobs: lib.jobs, queueMax: lib.queueMax, threadsPerJob: threads, maxUploadBytes: lib.maxUploadBytes });

  let closing: Promise<void> | undefined;
  return {
    url,
    workDir,
    close: () => {
      closing ??= (async () => {
        shutdown.abort();
        await closeServer(server);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all([...inflight]),
          new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS))),
        ]);
        clearTimeout(timer);
        agent.destroy();
        // Cancelled uploads may not have reached their own cleanup yet; nothing here outlives
        // the process (a start clears these folders anyway).
        await rm(ownWorkDir ? workDir : uploadsDir, { recursive: true, force: true });
        if (!ownWorkDir) await rm(packagingDir, { recursive: true, force: true });
        log.info('library stopped');
      })();
      return closing;
    },
  };
}
