// One simulated room box playing one song the way hls.js does: master playlist, the video and the
// chosen audio media playlists, then byte-range segments fetched in order (video and audio in
// parallel, one request at a time each) up to a maximum buffer ahead of a real-time playhead.
// Playback starts after a startup buffer; a stall is the playhead reaching a segment that has not
// fully arrived (loadtest/clock.ts does the accounting). A room may toggle 原唱/伴唱 mid-song:
// from then on the audio comes from the other rendition (hls.js nextAudioTrack keeps what is
// buffered and switches at the next fetch).
//
// Used by `ktv loadtest`, the disk-fault tests and the repair benchmark.
import { RawHttpError, type RawHttpPool } from '../common/raw-http.js';
import { parseAttributes, parseMediaPlaylist, type MediaPlaylist } from '../library/media/playlist.js';
import { PlaybackClock, type StallRecord } from './clock.js';

export interface MasterInfo {
  videoUri: string;
  /** Audio renditions by role ('vocal' | 'backing'), from the NAME of each EXT-X-MEDIA. */
  audio: Map<'vocal' | 'backing', string>;
}

/** The parts of our master playlist a room needs (the streamer writes it, library/media/playlist.ts). */
export function parseMaster(text: string): MasterInfo {
  const lines = text.split(/\r?\n/);
  if (lines[0]?.trim() !== '#EXTM3U') throw new Error('not an HLS playlist (no #EXTM3U)');
  let videoUri = '';
  const audio = new Map<'vocal' | 'backing', string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.startsWith('#EXT-X-MEDIA:')) {
      const a = parseAttributes(line.slice('#EXT-X-MEDIA:'.length), i + 1);
      if (a.get('TYPE') !== 'AUDIO' || !a.get('URI')) continue;
      const name = a.get('NAME') ?? '';
      const role = /伴唱|伴奏|backing|karaoke|instrumental/i.test(name) ? 'backing' : 'vocal';
      if (!audio.has(role)) audio.set(role, a.get('URI')!);
    } else if (line.startsWith('#EXT-X-STREAM-INF:') && !videoUri) {
      const next = lines[i + 1]?.trim() ?? '';
      if (next && !next.startsWith('#')) videoUri = next;
    }
  }
  if (!videoUri) throw new Error('master playlist has no variant (#EXT-X-STREAM-INF)');
  return { videoUri, audio };
}

export interface RoomOptions {
  /** Streamer base URL, e.g. http://127.0.0.1:8080 */
  base: string;
  songId: string;
  /** Keep-alive connections (loadtest runs one pool per worker process). */
  client: RawHttpPool;
  role?: 'vocal' | 'backing';
  /** Segments that must be ready before playback starts (hls.js starts after ~1 segment). */
  startupSegments?: number;
  /** Media seconds fetched ahead of the playhead at most. */
  maxBufferS?: number;
  /** Toggle 原唱/伴唱 when the playhead passes this media time (undefined: never). */
  toggleAtS?: number;
  /** Stop after this much media (a room that skips); undefined: the whole song. */
  playS?: number;
  /** A request with no answer/progress for this long fails and is retried. */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
  /** Called for every chunk of body received (live progress and throughput). */
  onBytes?: (bytes: number) => void;
  /** Playback started (startup buffer ready), with the startup time. */
  onStart?: (startupMs: number) => void;
  /** A whole segment (video and audio parts) arrived. */
  onSegment?: (t: SegmentTiming) => void;
  /** The room switched 原唱/伴唱 (it fetches the other rendition from here on). */
  onToggle?: () => void;
  /** A failed request (retried or not), as the room counts it in `errors`. */
  onError?: (message: string) => void;
  /** The room's playback clock, once the song's playlists are known (a load test polls it live). */
  onClock?: (clock: PlaybackClock) => void;
}

export interface SegmentTiming {
  /** Download time of the whole segment (video and audio parts, the slower one), ms. */
  downloadMs: number;
  durationS: number;
}

export interface RoomResult {
  songId: string;
  startupMs: number;
  stalls: StallRecord[];
  stallMs: number;
  /** The room gave up or was stopped while waiting for a segment (a stall not in `stalls`). */
  stalledAtEnd: boolean;
  playedS: number;
  bytes: number;
  segments: SegmentTiming[];
  errors: string[];
  toggled: boolean;
  aborted: boolean;
}

interface GetResult {
  status: number;
  body?: Buffer;
  bytes: number;
}

/** Bytes a room counts but never looks at land here (one buffer per process: reads are synchronous). */
const DISCARD = Buffer.allocUnsafe(1024 * 1024);
/** Playlists are kept; nothing else is. */
const MAX_KEPT_BYTES = 16 * 1024 * 1024;

/**
 * One GET on the room's keep-alive pool; the body is kept only when `keep` (playlists), else
 * counted. A request with no bytes for `timeoutMs` fails.
 */
export async function get(url: string, client: RawHttpPool, opts: { range?: [number, number]; keep?: boolean; timeoutMs: number; signal?: AbortSignal; onBytes?: (n: number) => void }): Promise<GetResult> {
  const headers: Record<string, string> = {};
  if (opts.range) headers.range = `bytes=${opts.range[0]}-${opts.range[0] + opts.range[1] - 1}`;
  let body: Buffer | undefined;
  let bytes = 0;
  const sink = {
    onHead(h: { contentLength: number }): void {
      if (!opts.keep) return;
      if (h.contentLength > MAX_KEPT_BYTES) throw new Error(`a ${h.contentLength}-byte playlist is over ${MAX_KEPT_BYTES} bytes`);
      body = Buffer.allocUnsafe(h.contentLength);
    },
    target(maxBytes: number): Buffer {
      return body ? body.subarray(bytes, bytes + maxBytes) : DISCARD.subarray(0, Math.min(maxBytes, DISCARD.length));
    },
    written(n: number): void {
      bytes += n;
      timer.refresh();
      opts.onBytes?.(n);
    },
  };
  const request = client.request(new URL(url), headers, sink, { signal: opts.signal });
  const timer = setTimeout(() => request.abort(`no progress for ${opts.timeoutMs} ms`), opts.timeoutMs);
  try {
    const head = await request.head;
    return { status: head.status, body, bytes };
  } catch (error) {
    if (error instanceof RawHttpError) throw new Error(error.message);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Plays one song; never throws for the stream's sake (errors are counted), only for a bad master. */
export async function playSong(o: RoomOptions): Promise<RoomResult> {
  const requestedAtMs = performance.now();
  const timeoutMs = o.requestTimeoutMs ?? 10_000;
  const errors: string[] = [];
  const noteError = (message: string): void => {
    errors.push(message);
    o.onError?.(message);
  };
  const url = (name: string): string => `${o.base}/hls/${o.songId}/${name}`;
  const fetchText = async (name: string): Promise<string> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await get(url(name), o.client, { keep: true, timeoutMs, signal: o.signal });
        if (r.status === 200) return r.body!.toString('utf8');
        throw new Error(`${name}: HTTP ${r.status}`);
      } catch (error) {
        noteError((error as Error).message);
        if (o.signal?.aborted || attempt >= 5) throw error;
        await sleep(500 * 2 ** attempt, o.signal);
      }
    }
  };
  const master = parseMaster(await fetchText('master.m3u8'));
  let role = o.role ?? 'vocal';
  const other = role === 'vocal' ? 'backing' : 'vocal';
  const audioUri = master.audio.get(role) ?? master.audio.get(other);
  if (!audioUri) throw new Error('master playlist has no audio rendition');
  const [videoText, audioText] = await Promise.all([fetchText(master.videoUri), fetchText(audioUri)]);
  const video = parseMediaPlaylist(videoText);
  const audios = new Map<string, MediaPlaylist>([[audioUri, parseMediaPlaylist(audioText)]]);
  const otherUri = master.audio.get(other);
  const segments = video.segments.map((s) => ({ startS: s.startS, durationS: s.durationS }));
  const lastS = o.playS === undefined ? Infinity : o.playS;
  let count = segments.findIndex((s) => s.startS >= lastS);
  if (count < 0) count = segments.length;
  const clock = new PlaybackClock(segments.slice(0, count), requestedAtMs, o.startupSegments ?? 1);
  o.onClock?.(clock);
  const maxBufferS = o.maxBufferS ?? 30;
  let bytes = 0;
  const onBytes = (n: number): void => {
    bytes += n;
    o.onBytes?.(n);
  };
  const timings: SegmentTiming[] = [];
  let toggled = false;
  let currentAudio = audioUri;

  /** Downloads one byte range, retrying (like hls.js) until it arrives or the room gives up. */
  const fetchRange = async (file: string, range: [number, number]): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await get(url(file), o.client, { range, timeoutMs, signal: o.signal, onBytes });
        if (r.status === 206 && r.bytes === range[1]) return;
        throw new Error(`${file}@${range[0]}: HTTP ${r.status}, ${r.bytes}/${range[1]} bytes`);
      } catch (error) {
        if (o.signal?.aborted) throw error;
        noteError((error as Error).message);
        if (attempt >= 12) throw error;
        await sleep(Math.min(4000, 250 * 2 ** attempt), o.signal);
      }
    }
  };

  try {
    // Init segments first (hls.js loads them before the first fragment).
    const audio0 = audios.get(currentAudio)!;
    await Promise.all([fetchRange(video.map.uri, [video.map.offsetBytes, video.map.lengthBytes]), fetchRange(audio0.map.uri, [audio0.map.offsetBytes, audio0.map.lengthBytes])]);
    for (let i = 0; i < count; i++) {
      if (o.signal?.aborted) break;
      // Back-pressure: wait while the buffer ahead is full.
      for (;;) {
        const now = performance.now();
        const ahead = clock.started ? segments[i]!.startS - clock.at(now).positionS : 0;
        if (ahead < maxBufferS) break;
        await sleep(Math.min(1000, (ahead - maxBufferS) * 1000 + 5), o.signal);
        if (o.signal?.aborted) break;
      }
      // The vocal toggle: from the playhead's crossing of toggleAtS, fetch the other rendition.
      if (!toggled && o.toggleAtS !== undefined && otherUri && clock.started && clock.at(performance.now()).positionS >= o.toggleAtS) {
        toggled = true;
        role = other;
        o.onToggle?.();
        if (!audios.has(otherUri)) audios.set(otherUri, parseMediaPlaylist(await fetchText(otherUri)));
        currentAudio = otherUri;
        const a = audios.get(currentAudio)!;
        await fetchRange(a.map.uri, [a.map.offsetBytes, a.map.lengthBytes]);
      }
      const a = audios.get(currentAudio)!;
      const vs = video.segments[i]!;
      const as = a.segments[i];
      const t0 = performance.now();
      await Promise.all([fetchRange(vs.uri, [vs.offsetBytes, vs.lengthBytes]), as ? fetchRange(as.uri, [as.offsetBytes, as.lengthBytes]) : Promise.resolve()]);
      const t1 = performance.now();
      const wasStarted = clock.started;
      clock.markReady(i, t1);
      if (!wasStarted && clock.started) o.onStart?.(clock.startupMs);
      const timing = { downloadMs: t1 - t0, durationS: vs.durationS };
      timings.push(timing);
      o.onSegment?.(timing);
    }
    // Play out what is buffered (the song ends on the playback clock, not when the last byte lands).
    if (!o.signal?.aborted && clock.started) {
      for (;;) {
        const now = performance.now();
        const s = clock.at(now);
        if (s.ended || o.signal?.aborted) break;
        await sleep(Math.max(5, Math.min(1000, clock.endAtMs() - now + 5)), o.signal);
      }
    }
  } catch (error) {
    // Stopped from outside (the load test ended) is not the room giving up.
    if (!o.signal?.aborted) noteError(`gave up: ${(error as Error).message}`);
  }
  const end = clock.at(performance.now());
  return {
    songId: o.songId,
    startupMs: clock.startupMs,
    stalls: clock.stalls,
    stallMs: end.stallMs,
    stalledAtEnd: end.stalled,
    playedS: end.positionS,
    bytes,
    segments: timings,
    errors,
    toggled,
    aborted: !!o.signal?.aborted,
  };
}
