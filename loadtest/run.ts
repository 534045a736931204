// The load-test controller: forks worker processes (loadtest/worker.ts), hands each its share of
// rooms, sums their counters, prints live progress, and measures levels: a fixed `--streams N`
// run, or `--find-max`, which ramps up and bisects to the largest N that holds with zero stalls
// for a whole window. Every figure comes from the rooms' own accounting (loadtest/clock.ts).
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, machineBusySeconds } from './proc-cpu.js';
import { FromWorker, SongRef, type StartMessage, type TickMessage, type ToWorker } from './protocol.js';
import { formatRate, levelResult, type LevelResult, type WindowCounters } from './report.js';

export interface LoadOptions {
  /** Base URL of the HLS server: our streamer, or any server with its /hls/{id}/… layout. */
  target: string;
  /** Songs by popularity rank; default: the target's GET /api/v1/songs?limit=200 (&q=query), by title. */
  songs?: SongRef[];
  query?: string;
  /** The nominal stream rate (--bitrate), for "streams' worth" figures and a library check. */
  bitrateBitsPerS: number;
  workers?: number;
  zipfExponent?: number;
  toggleFraction?: number;
  skipFraction?: number;
  seed?: number;
  maxBufferS?: number;
  startupSegments?: number;
  requestTimeoutMs?: number;
  /** Local server processes whose CPU is measured with each level (Linux /proc). */
  serverPids?: number[];
  /** A progress line every progressEveryMs (default 2 s). */
  progress?: (line: string) => void;
  progressEveryMs?: number;
}

export interface FixedRun {
  streams: number;
  durationS: number;
  /** Rooms start spread over this many seconds (all of it inside the measured run). */
  rampS: number;
}

export interface FindMaxRun {
  startStreams: number;
  stepStreams: number;
  maxStreams: number;
  /** Each level must hold this long with zero stalls. */
  holdS: number;
  /** After the room count changes: new rooms start over this period, which is not measured. */
  settleS: number;
  /** Bisection stops when the gap between the best clean and the first failed level is this small. */
  resolutionStreams: number;
}

export interface LoadReport {
  tool: 'ktv loadtest';
  target: string;
  mode: 'fixed' | 'find-max';
  bitrateBitsPerS: number;
  /** The library's own BANDWIDTH (the first song's master playlist). */
  libraryBitsPerS: number | null;
  songs: number;
  zipfExponent: number;
  toggleFraction: number;
  skipFraction: number;
  workers: number;
  levels: LevelResult[];
  /** find-max: the largest level that held with zero stalls (0: none did). */
  maxStallFreeStreams?: number;
  songsStarted: number;
  toggles: number;
  at: string;
}

const WORKER_FILE = fileURLToPath(new URL('./worker.js', import.meta.url));

interface WorkerHandle {
  proc: ChildProcess;
  last?: TickMessage;
  exited: Promise<void>;
}

interface Samples {
  downloadMs: number[];
  durationMs: number[];
  startupMs: number[];
  errors: string[];
}

const MAX_SAMPLES = 2_000_000;

/** Songs from the target's catalog, sorted by title (rank 1 is the first title). */
export async function listSongs(target: string, query: string | undefined, timeoutMs = 10_000): Promise<SongRef[]> {
  const url = new URL('/api/v1/songs', target);
  url.searchParams.set('limit', '200');
  if (query) url.searchParams.set('q', query);
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url.href}: HTTP ${res.status}`);
  const body = (await res.json()) as { songs?: Array<{ id: string; title?: string; durationS?: number }> };
  const rows = (body.songs ?? []).filter((s) => typeof s.id === 'string' && typeof s.durationS === 'number' && s.durationS > 0);
  rows.sort((a, b) => (a.title ?? '').localeCompare(b.title ?? '') || a.id.localeCompare(b.id));
  return rows.map((s) => SongRef.parse({ id: s.id, durationS: s.durationS }));
}

/** The BANDWIDTH of the first variant of a song's master playlist (null if none). */
export async function libraryBitrate(target: string, songId: string): Promise<number | null> {
  const res = await fetch(new URL(`/hls/${songId}/master.m3u8`, target), { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`master playlist of ${songId}: HTTP ${res.status}`);
  const m = /#EXT-X-STREAM-INF:[^\n]*\bBANDWIDTH=(\d+)/.exec(await res.text());
  return m ? Number(m[1]) : null;
}

export class LoadController {
  private workers: WorkerHandle[] = [];
  private samples: Samples = { downloadMs: [], durationMs: [], startupMs: [], errors: [] };
  private streams = 0;
  private readonly startedAtMs = performance.now();
  private cpuAtStart = process.cpuUsage();
  private progressTimer?: NodeJS.Timeout;
  private lastProgress = { atMs: performance.now(), bytes: 0 };
  private failure?: Error;
  /** Room-seconds of playback, integrated at each tick from the workers' "playing" counts. */
  private playingRoomSeconds = 0;
  private lastIntegrationMs = performance.now();

  private constructor(
    readonly options: LoadOptions,
    readonly songs: SongRef[],
    readonly workerCount: number,
  ) {}

  static async start(options: LoadOptions): Promise<LoadController> {
    const songs = options.songs ?? (await listSongs(options.target, options.query));
    if (songs.length === 0) throw new Error(`${options.target} lists no songs${options.query ? ` matching "${options.query}"` : ''}`);
    const workerCount = Math.max(1, Math.floor(options.workers ?? availableParallelism()));
    const c = new LoadController(options, songs, workerCount);
    const start: StartMessage = {
      type: 'start',
      target: options.target,
      songs,
      zipfExponent: options.zipfExponent ?? 1,
      toggleFraction: options.toggleFraction ?? 0.3,
      skipFraction: options.skipFraction ?? 0.2,
      seed: options.seed ?? 1,
      maxBufferS: options.maxBufferS ?? 30,
      startupSegments: options.startupSegments ?? 1,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      tickMs: 500,
    };
    for (let w = 0; w < workerCount; w++) c.workers.push(c.spawn(start));
    c.progressTimer = setInterval(() => c.printProgress(), options.progressEveryMs ?? 2000);
    return c;
  }

  private spawn(start: StartMessage): WorkerHandle {
    const proc = fork(WORKER_FILE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'advanced' });
    const handle: WorkerHandle = {
      proc,
      exited: new Promise((resolve) => proc.once('exit', (code, signal) => {
        if (!this.stopping && (code !== 0 || signal)) this.failure ??= new Error(`load worker ${proc.pid} exited (${signal ?? code})`);
        resolve();
      })),
    };
    proc.on('message', (raw: unknown) => {
      const parsed = FromWorker.safeParse(raw);
      if (!parsed.success) {
        this.failure ??= new Error(`bad message from load worker ${proc.pid}`);
        return;
      }
      const m = parsed.data;
      if (m.type === 'fatal') {
        this.failure ??= new Error(`load worker ${proc.pid}: ${m.error}`);
        return;
      }
      this.integrate();
      handle.last = m;
      if (this.samples.downloadMs.length < MAX_SAMPLES) {
        this.samples.downloadMs.push(...m.segmentDownloadMs);
        this.samples.durationMs.push(...m.segmentDurationMs);
      }
      this.samples.startupMs.push(...m.startupMs);
      if (this.samples.errors.length < 50) this.samples.errors.push(...m.errorSamples);
    });
    proc.send({ ...start } satisfies ToWorker);
    return handle;
  }

  private stopping = false;

  /** Playing room-seconds accumulate between messages at the last known "playing" count. */
  private integrate(): void {
    const now = performance.now();
    const playing = this.workers.reduce((n, w) => n + (w.last?.playing ?? 0), 0);
    this.playingRoomSeconds += (playing * (now - this.lastIntegrationMs)) / 1000;
    this.lastIntegrationMs = now;
  }

  private send(w: WorkerHandle, m: ToWorker): void {
    if (w.proc.connected) w.proc.send(m);
  }

  /** Holds `streams` rooms from now on: rooms 0..N-1, round-robin over the workers. */
  setStreams(streams: number, rampMs: number): void {
    this.streams = streams;
    this.workers.forEach((w, i) => {
      const rooms: number[] = [];
      for (let r = i; r < streams; r += this.workers.length) rooms.push(r);
      this.send(w, { type: 'rooms', rooms, rampMs });
    });
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** The cumulative counters of every worker (and this process's CPU) right now. */
  counters(): WindowCounters & { rooms: number; playing: number; stalledNow: number; toggles: number } {
    this.integrate();
    const sum = (f: (t: TickMessage) => number): number => this.workers.reduce((n, w) => n + (w.last ? f(w.last) : 0), 0);
    const own = process.cpuUsage(this.cpuAtStart);
    const pids = this.options.serverPids;
    const machine = machineBusySeconds();
    return {
      machineBusyS: machine.busyS,
      machineCores: machine.cores,
      bytes: sum((t) => t.bytes),
      stalls: sum((t) => t.stalls),
      stallMs: sum((t) => t.stallMs),
      errors: sum((t) => t.errors),
      gaveUp: sum((t) => t.gaveUp),
      songsStarted: sum((t) => t.songsStarted),
      playingRoomSeconds: this.playingRoomSeconds,
      generatorCpuS: sum((t) => t.cpuMicros) / 1e6 + (own.user + own.system) / 1e6,
      ...(pids && pids.length > 0 ? { serverCpuS: pids.reduce((n, pid) => n + (cpuSeconds(pid) || 0), 0) } : {}),
      rooms: sum((t) => t.rooms),
      playing: sum((t) => t.playing),
      stalledNow: sum((t) => t.stalledNow),
      toggles: sum((t) => t.toggles),
    };
  }

  private takeSamples(): Samples {
    const s = this.samples;
    this.samples = { downloadMs: [], durationMs: [], startupMs: [], errors: [] };
    return s;
  }

  private printProgress(): void {
    const p = this.options.progress;
    if (!p) return;
    const now = performance.now();
    const c = this.counters();
    const rate = ((c.bytes - this.lastProgress.bytes) / (now - this.lastProgress.atMs)) * 1000;
    this.lastProgress = { atMs: now, bytes: c.bytes };
    const t = Math.round((now - this.startedAtMs) / 1000);
    p(
      `[${String(t).padStart(4)} s] ${this.streams} streams: ${c.rooms} rooms, ${c.playing} playing, ${c.stalledNow} stalled now · ${formatRate(rate)} (${((rate * 8) / this.options.bitrateBitsPerS).toFixed(0)} streams' worth) · stalls ${c.stalls} (${(c.stallMs / 1000).toFixed(1)} s) · errors ${c.errors + c.gaveUp}`,
    );
  }

  /**
   * Measures a window of `windowS` seconds at the current room count. With `stopAtStall`, the
   * window ends early (failed) at the first stall or error in it.
   */
  async measure(windowS: number, stopAtStall: boolean): Promise<LevelResult> {
    const c0 = this.counters();
    this.takeSamples();
    const t0 = performance.now();
    let endedEarly = false;
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      if (this.failure) throw this.failure;
      const elapsedS = (performance.now() - t0) / 1000;
      if (elapsedS >= windowS) break;
      if (stopAtStall) {
        const c = this.counters();
        if (c.stalls > c0.stalls || c.errors > c0.errors || c.gaveUp > c0.gaveUp) {
          endedEarly = true;
          break;
        }
      }
    }
    // One more tick from each worker so the window's last half second is in the counters.
    await new Promise((r) => setTimeout(r, 600));
    const c1 = this.counters();
    const windowS1 = (performance.now() - t0) / 1000;
    const d: WindowCounters = {
      bytes: c1.bytes - c0.bytes,
      stalls: c1.stalls - c0.stalls,
      stallMs: c1.stallMs - c0.stallMs,
      errors: c1.errors - c0.errors,
      gaveUp: c1.gaveUp - c0.gaveUp,
      songsStarted: c1.songsStarted - c0.songsStarted,
      playingRoomSeconds: c1.playingRoomSeconds - c0.playingRoomSeconds,
      generatorCpuS: c1.generatorCpuS - c0.generatorCpuS,
      machineBusyS: c1.machineBusyS - c0.machineBusyS,
      machineCores: c1.machineCores,
      ...(c1.serverCpuS !== undefined && c0.serverCpuS !== undefined ? { serverCpuS: c1.serverCpuS - c0.serverCpuS } : {}),
    };
    return levelResult(this.streams, windowS1, d, this.takeSamples(), this.options.bitrateBitsPerS, endedEarly);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.progressTimer);
    for (const w of this.workers) this.send(w, { type: 'stop' });
    const all = Promise.all(this.workers.map((w) => w.exited));
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000).unref());
    if ((await Promise.race([all, timeout])) === 'timeout') {
      for (const w of this.workers) w.proc.kill('SIGKILL');
      await all;
    }
  }
}

function baseReport(c: LoadController, mode: LoadReport['mode'], libraryBitsPerS: number | null): Omit<LoadReport, 'levels' | 'songsStarted' | 'toggles' | 'at'> {
  const o = c.options;
  return {
    tool: 'ktv loadtest',
    target: o.target,
    mode,
    bitrateBitsPerS: o.bitrateBitsPerS,
    libraryBitsPerS,
    songs: c.songs.length,
    zipfExponent: o.zipfExponent ?? 1,
    toggleFraction: o.toggleFraction ?? 0.3,
    skipFraction: o.skipFraction ?? 0.2,
    workers: c.workerCount,
  };
}

async function withController(options: LoadOptions, body: (c: LoadController, libraryBitsPerS: number | null) => Promise<Omit<LoadReport, 'songsStarted' | 'toggles' | 'at'>>): Promise<LoadReport> {
  const c = await LoadController.start(options);
  try {
    const libraryBitsPerS = await libraryBitrate(options.target, c.songs[0]!.id);
    if (libraryBitsPerS !== null && Math.abs(libraryBitsPerS - options.bitrateBitsPerS) > 0.25 * options.bitrateBitsPerS) {
      options.progress?.(`note: the library streams at ${(libraryBitsPerS / 1e6).toFixed(1)} Mbit/s (BANDWIDTH), not the ${(options.bitrateBitsPerS / 1e6).toFixed(1)} Mbit/s of --bitrate; "streams' worth" figures use --bitrate`);
    }
    const report = await body(c, libraryBitsPerS);
    const end = c.counters();
    return { ...report, songsStarted: end.songsStarted, toggles: end.toggles, at: new Date().toISOString() };
  } finally {
    await c.stop();
  }
}

/** `--streams N`: rooms start over rampS, then the whole run (ramp included) is one level. */
export function runFixed(options: LoadOptions, run: FixedRun): Promise<LoadReport> {
  return withController(options, async (c, libraryBitsPerS) => {
    c.setStreams(run.streams, run.rampS * 1000);
    const level = await c.measure(run.rampS + run.durationS, false);
    return { ...baseReport(c, 'fixed', libraryBitsPerS), levels: [level] };
  });
}

/** `--find-max`: step up until a level stalls, then bisect; the best clean level is the answer. */
export function runFindMax(options: LoadOptions, run: FindMaxRun): Promise<LoadReport> {
  return withController(options, async (c, libraryBitsPerS) => {
    const levels: LevelResult[] = [];
    let best = 0;
    let firstBad = Infinity;
    let n = Math.min(run.startStreams, run.maxStreams);
    const say = options.progress ?? (() => {});
    for (;;) {
      c.setStreams(n, run.settleS * 1000);
      say(`level ${n} streams: settling ${run.settleS} s, then holding ${run.holdS} s`);
      await new Promise((r) => setTimeout(r, run.settleS * 1000));
      const level = await c.measure(run.holdS, true);
      levels.push(level);
      say(`level ${n} streams: ${level.clean ? 'held with zero stalls' : `FAILED (${level.stalls} stalls, ${level.errors + level.gaveUp} errors${level.errorSamples[0] ? `: ${level.errorSamples[0]}` : ''})`} · ${formatRate(level.bytesPerS)}`);
      if (level.clean) best = Math.max(best, n);
      else firstBad = Math.min(firstBad, n);
      let next: number;
      if (firstBad === Infinity) {
        if (n >= run.maxStreams) break;
        next = Math.min(run.maxStreams, n + run.stepStreams);
      } else {
        if (firstBad - best <= run.resolutionStreams) break;
        next = Math.floor((best + firstBad) / 2);
        if (next <= 0) break;
      }
      n = next;
    }
    return { ...baseReport(c, 'find-max', libraryBitsPerS), levels, maxStallFreeStreams: best };
  });
}
