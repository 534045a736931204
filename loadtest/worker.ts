// One load-generator process: runs the rooms the controller gives it (loadtest/run.ts), each room
// playing song after song (Zipf choice, some skipped, some with a vocal toggle) through
// loadtest/room.ts, and reports cumulative counters every tick over IPC. Several of these share
// the machine's cores so the generator is not what limits a run.
import { setMaxListeners } from 'node:events';
import { RawHttpPool } from '../common/raw-http.js';
import type { PlaybackClock } from './clock.js';
import { FromWorker, ToWorker, type StartMessage, type TickMessage } from './protocol.js';
import { playSong } from './room.js';
import { seededRandom, Zipf } from './zipf.js';

interface Room {
  index: number;
  abort: AbortController;
  clock?: PlaybackClock;
  done: Promise<void>;
}

const MAX_ERROR_SAMPLES = 5;

function send(message: FromWorker): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

class Worker {
  private readonly rooms = new Map<number, Room>();
  private readonly client: RawHttpPool;
  private readonly zipf: Zipf;
  private readonly totals = { bytes: 0, stalls: 0, stallMs: 0, errors: 0, gaveUp: 0, songsStarted: 0, songsDone: 0, toggles: 0 };
  private segmentDownloadMs: number[] = [];
  private segmentDurationMs: number[] = [];
  private startupMs: number[] = [];
  private errorSamples: string[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly cfg: StartMessage) {
    // Two connections per room (video and audio in parallel), kept alive like a browser's.
    this.client = new RawHttpPool({ maxSocketsPerHost: 100_000, idleTimeoutMs: 30_000 });
    this.zipf = new Zipf(cfg.songs.length, cfg.zipfExponent);
    this.timer = setInterval(() => void send(this.tick(false)), cfg.tickMs);
  }

  setRooms(indices: number[], rampMs: number): void {
    const want = new Set(indices);
    for (const [index, room] of this.rooms) {
      if (!want.has(index)) {
        room.abort.abort();
        this.rooms.delete(index);
      }
    }
    for (const index of want) {
      if (this.rooms.has(index)) continue;
      const abort = new AbortController();
      setMaxListeners(0, abort.signal);
      const room: Room = { index, abort, done: Promise.resolve() };
      room.done = this.runRoom(room, Math.random() * rampMs);
      this.rooms.set(index, room);
    }
  }

  private noteError(message: string): void {
    this.totals.errors += 1;
    if (this.errorSamples.length < MAX_ERROR_SAMPLES) this.errorSamples.push(message.slice(0, 200));
  }

  private async runRoom(room: Room, delayMs: number): Promise<void> {
    const { cfg } = this;
    const signal = room.abort.signal;
    // Each room its own seeded sequence: the same rooms choose the same songs in every run.
    const rand = seededRandom((cfg.seed ^ Math.imul(room.index + 1, 0x9e3779b1)) >>> 0);
    await sleep(delayMs, signal);
    let first = true;
    while (!signal.aborted) {
      const song = cfg.songs[this.zipf.sample(rand())]!;
      const role = rand() < 0.5 ? 'vocal' : 'backing';
      const toggleAtS = rand() < cfg.toggleFraction ? song.durationS * (0.1 + 0.6 * rand()) : undefined;
      // The first song stops at a random point so rooms are not in step; later some are skipped.
      const skip = rand() < cfg.skipFraction;
      const playS = first ? Math.max(4, song.durationS * rand()) : skip ? song.durationS * (0.2 + 0.6 * rand()) : undefined;
      first = false;
      this.totals.songsStarted += 1;
      try {
        const r = await playSong({
          base: cfg.target,
          songId: song.id,
          client: this.client,
          role,
          startupSegments: cfg.startupSegments,
          maxBufferS: cfg.maxBufferS,
          toggleAtS,
          playS,
          requestTimeoutMs: cfg.requestTimeoutMs,
          signal,
          onBytes: (n) => {
            this.totals.bytes += n;
          },
          onStart: (ms) => this.startupMs.push(Math.round(ms)),
          onSegment: (t) => {
            this.segmentDownloadMs.push(Math.round(t.downloadMs));
            this.segmentDurationMs.push(Math.round(t.durationS * 1000));
          },
          onError: (m) => this.noteError(m),
          onToggle: () => {
            this.totals.toggles += 1;
          },
          onClock: (c) => {
            room.clock = c;
          },
        });
        // Move the song's stalls from "live" to the totals in one step (no tick in between).
        this.totals.stalls += r.stalls.length + (r.stalledAtEnd ? 1 : 0);
        this.totals.stallMs += r.stallMs;
        if (r.errors.some((e) => e.startsWith('gave up'))) this.totals.gaveUp += 1;
        this.totals.songsDone += 1;
      } catch (error) {
        // No playable master: counted, and the room tries another song after a pause.
        this.noteError(`song ${song.id}: ${(error as Error).message}`);
        this.totals.gaveUp += 1;
      } finally {
        room.clock = undefined;
      }
      // The queue moves on: a short pause between songs.
      await sleep(200 + rand() * 800, signal);
    }
  }

  tick(final: boolean): TickMessage {
    const now = performance.now();
    let stalls = this.totals.stalls;
    let stallMs = this.totals.stallMs;
    let playing = 0;
    let stalledNow = 0;
    for (const room of this.rooms.values()) {
      const c = room.clock;
      if (!c || !c.started) continue;
      const s = c.at(now);
      if (s.ended) continue;
      playing += 1;
      stalls += c.stalls.length + (s.stalled ? 1 : 0);
      stallMs += s.stallMs;
      if (s.stalled) stalledNow += 1;
    }
    const cpu = process.cpuUsage();
    const message: TickMessage = {
      type: 'tick',
      final,
      rooms: this.rooms.size,
      playing,
      stalledNow,
      ...this.totals,
      stalls,
      stallMs,
      cpuMicros: cpu.user + cpu.system,
      segmentDownloadMs: this.segmentDownloadMs,
      segmentDurationMs: this.segmentDurationMs,
      startupMs: this.startupMs,
      errorSamples: this.errorSamples,
    };
    this.segmentDownloadMs = [];
    this.segmentDurationMs = [];
    this.startupMs = [];
    this.errorSamples = [];
    return message;
  }

  async stop(): Promise<void> {
    const rooms = [...this.rooms.values()];
    // The final tick counts stalls in progress at the stop, before the rooms are aborted.
    const final = this.tick(true);
    for (const room of rooms) room.abort.abort();
    await Promise.all(rooms.map((r) => r.done));
    clearInterval(this.timer);
    this.client.destroy();
    await send(final);
  }
}

let worker: Worker | undefined;
process.on('message', (raw: unknown) => {
  const parsed = ToWorker.safeParse(raw);
  if (!parsed.success) {
    void send({ type: 'fatal', error: `bad message from the controller: ${parsed.error.message.slice(0, 300)}` }).then(() => process.exit(1));
    return;
  }
  const m = parsed.data;
  if (m.type === 'start') {
    worker ??= new Worker(m);
  } else if (m.type === 'rooms') {
    worker?.setRooms(m.rooms, m.rampMs);
  } else {
    const w = worker;
    void (async () => {
      await w?.stop();
      process.exit(0);
    })();
  }
});
process.on('disconnect', () => {
  // The controller is gone: never keep loading a server on our own.
  process.exit(0);
});
