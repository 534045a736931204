// Messages between the load-test controller (loadtest/run.ts) and its worker processes
// (loadtest/worker.ts), parsed with a schema on each side: they cross a process boundary.
import { z } from 'zod';

export const SongRef = z.object({ id: z.string().min(1).max(64), durationS: z.number().positive() });
export type SongRef = z.infer<typeof SongRef>;

export const StartMessage = z.object({
  type: z.literal('start'),
  /** Base URL of the HLS server (our streamer or any server with the same layout). */
  target: z.string().url(),
  /** Songs by popularity rank (index 0 is the hit). */
  songs: z.array(SongRef).min(1),
  zipfExponent: z.number().min(0),
  /** Share of songs in which the room toggles 原唱/伴唱 once, mid-song. */
  toggleFraction: z.number().min(0).max(1),
  /** Share of songs the guests skip (切歌) part-way. */
  skipFraction: z.number().min(0).max(1),
  seed: z.number().int(),
  maxBufferS: z.number().positive(),
  startupSegments: z.number().int().positive(),
  requestTimeoutMs: z.number().int().positive(),
  tickMs: z.number().int().positive(),
});
export type StartMessage = z.infer<typeof StartMessage>;

/** The global room numbers this worker runs from now on (new ones start over `rampMs`). */
export const RoomsMessage = z.object({ type: z.literal('rooms'), rooms: z.array(z.number().int().nonnegative()), rampMs: z.number().nonnegative() });
export const StopMessage = z.object({ type: z.literal('stop') });
export const ToWorker = z.discriminatedUnion('type', [StartMessage, RoomsMessage, StopMessage]);
export type ToWorker = z.infer<typeof ToWorker>;

/** Cumulative counters of one worker (monotonic), plus what happened since its previous tick. */
export const TickMessage = z.object({
  type: z.literal('tick'),
  final: z.boolean(),
  rooms: z.number().int(),
  /** Rooms whose playhead is moving or waiting in a song (not between songs, not starting up). */
  playing: z.number().int(),
  /** Rooms waiting on a segment right now. */
  stalledNow: z.number().int(),
  bytes: z.number(),
  /** Stall episodes so far, counting one still in progress. */
  stalls: z.number().int(),
  stallMs: z.number(),
  errors: z.number().int(),
  gaveUp: z.number().int(),
  songsStarted: z.number().int(),
  songsDone: z.number().int(),
  toggles: z.number().int(),
  /** Microseconds of CPU (user + system) the worker process has used. */
  cpuMicros: z.number(),
  /** Since the previous tick: segment download ms and the segment's duration ms, pairwise. */
  segmentDownloadMs: z.array(z.number()),
  segmentDurationMs: z.array(z.number()),
  startupMs: z.array(z.number()),
  errorSamples: z.array(z.string()),
});
export type TickMessage = z.infer<typeof TickMessage>;

export const FromWorker = z.discriminatedUnion('type', [TickMessage, z.object({ type: z.literal('fatal'), error: z.string() })]);
export type FromWorker = z.infer<typeof FromWorker>;
