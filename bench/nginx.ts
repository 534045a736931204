// nginx as the baseline for the stream load benchmark: the same packaged HLS files, served as
// static files with the very URL layout of our streamer (`/hls/{songId}/master.m3u8`, the
// rendition playlists and media files, `/api/v1/songs`).
//
// exportHlsTree() writes a docroot whose playlists and media files are symlinks to the blob files
// on a storage node's disk (node1's first, so both servers read the same page-cached files, and
// nothing is copied); the master playlist and the song list are small files written out.
// startNginx() runs /usr/sbin/nginx (Debian nginx-light or nginx) in the foreground as our child,
// with every path (pid, logs, temp dirs) under its work dir.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SongManifest, SongSummary } from '../common/contracts.js';
import { rpc } from '../common/http.js';
import { blobPath } from '../storage-node/store/layout.js';
import { freePort, type Procs, waitFor } from '../test/helpers/procs.js';

export const NGINX_BIN = '/usr/sbin/nginx';

/** The blob's file on the first disk (node order as given) that holds it. */
function findBlobFile(nodeDisks: Array<{ nodeId: string; dirs: string[] }>, id: string): string {
  for (const n of nodeDisks) {
    for (const dir of n.dirs) {
      const p = blobPath(resolve(dir), 'data', id);
      if (existsSync(p)) return p;
    }
  }
  throw new Error(`blob ${id} is on none of the disks ${nodeDisks.flatMap((n) => n.dirs).join(', ')}`);
}

export async function exportHlsTree(o: { trackerUrl: string; songIds: string[]; nodeDisks: Array<{ nodeId: string; dirs: string[] }>; outDir: string }): Promise<void> {
  const outDir = resolve(o.outDir);
  // node1 first: every blob is read from the same disk by both servers.
  const disks = [...o.nodeDisks].sort((a, b) => (a.nodeId === 'node1' ? -1 : b.nodeId === 'node1' ? 1 : 0));
  rmSync(join(outDir, 'hls'), { recursive: true, force: true });
  rmSync(join(outDir, 'api'), { recursive: true, force: true });
  mkdirSync(join(outDir, 'api', 'v1'), { recursive: true });

  const manifests: SongManifest[] = [];
  for (const id of o.songIds) {
    const m = await rpc<SongManifest>(o.trackerUrl, `/api/v1/songs/${id}`, { timeoutMs: 10_000 });
    if (!m.masterPlaylist) throw new Error(`song ${id} has no master playlist`);
    const dir = join(outDir, 'hls', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'master.m3u8'), m.masterPlaylist);
    for (const r of m.renditions) {
      if (!r.playlistBlob) throw new Error(`song ${id}: the ${r.role} rendition has no playlist blob`);
      const media = findBlobFile(disks, r.blob);
      const size = statSync(media).size;
      if (size !== r.sizeBytes) throw new Error(`song ${id}: ${media} is ${size} bytes; the manifest says ${r.sizeBytes}`);
      symlinkSync(media, join(dir, r.name ?? `${r.role}.mp4`));
      symlinkSync(findBlobFile(disks, r.playlistBlob), join(dir, r.playlistName ?? `${r.role}.m3u8`));
    }
    manifests.push(m);
  }

  // The song list the load test reads (`GET /api/v1/songs?limit=200`: nginx ignores the query).
  const fromTracker = await rpc<{ songs: SongSummary[] }>(o.trackerUrl, '/api/v1/songs?q=Load&limit=200', { timeoutMs: 10_000 });
  const byId = new Map(fromTracker.songs.map((s) => [s.id, s]));
  const songs: SongSummary[] = manifests.map(
    (m) => byId.get(m.id) ?? { id: m.id, title: m.title, artist: m.artist, language: m.language, initials: m.initials, durationS: m.durationS, genre: m.genre, version: m.version },
  );
  writeFileSync(join(outDir, 'api', 'v1', 'songs'), JSON.stringify({ songs }));
}

export interface Nginx {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Pids whose parent is `pid` (nginx workers of a master). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

/** The temp-path directives this nginx build knows (a light build may lack some modules). */
function tempPathDirectives(workDir: string): string {
  const v = spawnSync(NGINX_BIN, ['-V'], { encoding: 'utf8' });
  const configure = `${v.stdout ?? ''}${v.stderr ?? ''}`;
  const lines = [`client_body_temp_path ${join(workDir, 'client_body')};`];
  for (const m of ['proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    if (!configure.includes(`--without-http_${m}_module`)) lines.push(`${m}_temp_path ${join(workDir, m)};`);
  }
  return lines.map((l) => `    ${l}`).join('\n');
}

/** The first media file of the docroot (for the range self-check), if any. */
function someMediaFile(root: string): string | undefined {
  const hls = join(root, 'hls');
  if (!existsSync(hls)) return undefined;
  for (const song of readdirSync(hls)) {
    const f = readdirSync(join(hls, song)).find((x) => x.endsWith('.mp4'));
    if (f) return `/hls/${song}/${f}`;
  }
  return undefined;
}

/** Procs only starts the ktv binary: nginx is our own child (its output goes to procs.logDir/nginx.log),
 *  stopped by stop() (SIGQUIT, SIGKILL after 5 s) or, if this process exits first, SIGKILLed. */
export async function startNginx(o: { root: string; workDir: string; procs: Procs; workers?: number | 'auto' }): Promise<Nginx> {
  if (!existsSync(NGINX_BIN)) throw new Error(`${NGINX_BIN} not found: apt-get install nginx-light (scripts/setup-system.sh installs it)`);
  const root = resolve(o.root);
  const workDir = resolve(o.workDir);
  mkdirSync(workDir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const errorLog = join(workDir, 'error.log');
  const confFile = join(workDir, 'nginx.conf');
  const conf = `# written by bench/nginx.ts
daemon off;
master_process on;
worker_processes ${o.workers ?? 'auto'};
worker_rlimit_nofile 16384;
pid ${join(workDir, 'nginx.pid')};
error_log ${errorLog} warn;
${process.getuid?.() === 0 ? 'user root;\n' : ''}
events {
    worker_connections 4096;
}

http {
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    access_log off;
    types {
        application/vnd.apple.mpegurl m3u8;
        video/mp4 mp4;
    }
    default_type application/json;
    open_file_cache max=1000 inactive=60s;
${tempPathDirectives(workDir)}

    server {
        listen 127.0.0.1:${port};
        root ${root};
        location / {
            add_header Access-Control-Allow-Origin *;
        }
    }
}
`;
  writeFileSync(confFile, conf);

  // nginx's own stdout/stderr (normally empty: it logs to error.log) next to the cluster's logs.
  const outFile = join(o.procs.logDir, 'nginx.log');
  const child = spawn(NGINX_BIN, ['-p', `${workDir}/`, '-c', confFile, '-e', errorLog], { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  if (child.pid === undefined) throw new Error(`could not start ${NGINX_BIN}`);
  const pid = child.pid;
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((res) =>
    child.once('exit', () => {
      writeFileSync(outFile, output);
      res();
    }),
  );
  const running = (): boolean => child.exitCode === null && child.signalCode === null;

  // A bench process that dies must not leave nginx behind: master and workers by pid.
  const onExit = (): void => {
    if (!running()) return;
    const workers = childPids(pid);
    kill(pid, 'SIGKILL');
    for (const w of workers) kill(w, 'SIGKILL');
  };
  process.once('exit', onExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const workers = childPids(pid);
      if (running()) {
        kill(pid, 'SIGQUIT');
        const timer = setTimeout(() => {
          for (const w of childPids(pid)) kill(w, 'SIGKILL');
          kill(pid, 'SIGKILL');
        }, 5000);
        await exited;
        clearTimeout(timer);
      }
      // Workers normally go with the master; make sure.
      for (const w of workers) if (alive(w)) kill(w, 'SIGKILL');
      await waitFor('nginx workers gone', () => workers.every((w) => !alive(w)), 5000, 50);
      process.removeListener('exit', onExit);
    })();
    return stopping;
  };

  try {
    await waitFor('nginx answering', async () => {
      if (!running()) throw new Error(`nginx exited: ${output.trim()} ${existsSync(errorLog) ? readFileSync(errorLog, 'utf8').slice(-2000) : ''}`);
      const res = await fetch(`${url}/api/v1/songs`);
      await res.arrayBuffer();
      return res.status === 200;
    }, 10_000, 50);
    const media = someMediaFile(root);
    if (media) {
      const res = await fetch(`${url}${media}`, { headers: { range: 'bytes=0-99' } });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 206 || body.length !== 100) throw new Error(`nginx range self-check: GET ${media} bytes=0-99 answered ${res.status} with ${body.length} bytes`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, pid, stop };
}
