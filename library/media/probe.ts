// probeMedia: what is in an uploaded file, and whether we take it. Refusals are MediaErrors with
// a one-line reason. Order matters for cost: stat (free) → ffprobe (headers, deadline) → policy
// (pure) → a short sanity decode (deadline), so a refused file costs as little as possible.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { MediaConfig } from './config.js';
import { MediaError, lastLine, oneLine } from './errors.js';
import { runFfprobe, type FfprobeFormat, type ProbeStream } from './ffprobe.js';
import type { RunContext } from './proc.js';
import { sanityDecode } from './sanity.js';
import { SNIFF_NAMES, readHead, sniffBytes } from './sniff.js';

export type { ProbeStream } from './ffprobe.js';

/** Video codecs we take (remuxed when H.264, transcoded otherwise). */
export const ACCEPTED_VIDEO_CODECS = ['h264', 'hevc', 'mpeg2video', 'mpeg1video', 'mpeg4'] as const;
/** Audio codecs we take (always transcoded to AAC-LC). pcm_* is matched by prefix. */
export const ACCEPTED_AUDIO_CODECS = ['aac', 'mp3', 'mp2', 'ac3', 'eac3', 'flac', 'opus', 'vorbis'] as const;

export function isAcceptedVideoCodec(codec: string): boolean {
  return (ACCEPTED_VIDEO_CODECS as readonly string[]).includes(codec);
}
export function isAcceptedAudioCodec(codec: string): boolean {
  return codec.startsWith('pcm_') || (ACCEPTED_AUDIO_CODECS as readonly string[]).includes(codec);
}

export interface ProbeResult {
  file: string;
  sizeBytes: number;
  format: FfprobeFormat;
  /** Song duration: the container's, else the video stream's. */
  durationS: number;
  /** Every stream, in file order. */
  streams: ProbeStream[];
  /** The picture of the song: the first video stream that is not cover art. */
  video: ProbeStream;
  /**
   * Audio streams in file order. Position in this array is the "audio ordinal" that
   * `--vocal-track N` / `--backing-track M` and ffmpeg's `0:a:N` use.
   */
  audio: ProbeStream[];
  /** Decode problems that did not stop the file (damaged frames, odd timestamps). */
  warnings: string[];
}

function formatDuration(s: number): string {
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  return `${m}:${String(rest).padStart(2, '0')}`;
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** Turns an ffprobe failure into the refusal an operator can act on. */
async function refuseUnreadable(file: string, stderrTail: string[]): Promise<MediaError> {
  const text = stderrTail.join('\n');
  const notAllowed = /\[([\w,]+) @ [^\]]+\] Format not on whitelist/.exec(text);
  if (notAllowed) {
    return new MediaError('not-media', `not an accepted video container (${notAllowed[1]})`, { stderrTail });
  }
  const kind = sniffBytes(await readHead(file));
  const why = lastLine(stderrTail).replace(/^file:\S*: /, '');
  if (kind === 'text') return new MediaError('not-media', 'not media: this is a text file', { stderrTail });
  if (kind === 'mp4' && text.includes('moov atom not found')) {
    return new MediaError('truncated', 'MP4 index (moov) is missing: the file is truncated or was not fully copied', { stderrTail });
  }
  if (kind === 'unknown' || kind === 'empty') {
    return new MediaError('not-media', oneLine(`not a media file ffprobe can read (${why || 'no reason given'})`), { stderrTail });
  }
  return new MediaError('corrupt', oneLine(`looks like ${SNIFF_NAMES[kind]} but cannot be read: ${why || 'no reason given'}`), { stderrTail });
}

/**
 * Probes an untrusted source. Throws MediaError: 'too-big', 'not-media', 'truncated',
 * 'corrupt', 'no-video', 'no-audio', 'too-long', 'too-short', 'unsupported-video-codec',
 * 'unsupported-audio-codec' (no audio stream we can decode), 'timeout'.
 */
export async function probeMedia(file: string, limits: MediaConfig, ctx: RunContext = {}): Promise<ProbeResult> {
  const absolute = path.resolve(file);
  let sizeBytes: number;
  try {
    const st = await stat(absolute);
    if (!st.isFile()) throw new MediaError('not-media', 'not a regular file');
    sizeBytes = st.size;
  } catch (err) {
    if (err instanceof MediaError) throw err;
    throw new MediaError('io', oneLine(`cannot stat the source: ${(err as Error).message}`), { cause: err });
  }
  if (sizeBytes === 0) throw new MediaError('not-media', 'the file is empty');
  if (sizeBytes > limits.maxSourceBytes) {
    throw new MediaError('too-big', `too big: ${formatBytes(sizeBytes)} (limit ${formatBytes(limits.maxSourceBytes)})`);
  }

  const run = await runFfprobe(absolute, limits, ctx);
  if (!run.ok || !run.output) throw await refuseUnreadable(absolute, run.stderrTail);
  const { format, streams } = run.output;
  if (streams.length === 0) throw new MediaError('not-media', 'no audio or video streams in the file');

  const video = streams.find((s) => s.type === 'video' && !s.isAttachedPicture);
  if (!video) {
    const coverOnly = streams.some((s) => s.type === 'video');
    throw new MediaError('no-video', coverOnly ? 'no video: only a cover picture (audio-only file)' : 'no video stream (audio-only file)');
  }
  if (!isAcceptedVideoCodec(video.codec)) {
    throw new MediaError(
      'unsupported-video-codec',
      `unsupported video codec '${video.codec || 'unknown'}' (accepted: ${ACCEPTED_VIDEO_CODECS.join(', ')})`,
    );
  }
  const audio = streams.filter((s) => s.type === 'audio');
  if (audio.length === 0) throw new MediaError('no-audio', 'no audio stream: a song needs 原唱 and 伴唱 audio');
  // A stream we cannot decode only matters if it is chosen for a role (plan.ts checks that);
  // a file whose every audio stream is unusable is refused here.
  if (!audio.some((s) => isAcceptedAudioCodec(s.codec))) {
    throw new MediaError(
      'unsupported-audio-codec',
      `unsupported audio codec(s) ${audio.map((s) => `'${s.codec || 'unknown'}'`).join(', ')} (accepted: ${ACCEPTED_AUDIO_CODECS.join(', ')}, pcm_*)`,
    );
  }

  const durationS = format.durationS ?? video.durationS;
  if (durationS === undefined || durationS <= 0) throw new MediaError('corrupt', 'duration unknown: the container has no usable timing');
  if (durationS > limits.maxDurationS) {
    throw new MediaError('too-long', `too long: ${formatDuration(durationS)} (limit ${formatDuration(limits.maxDurationS)})`);
  }
  if (durationS < limits.minDurationS) {
    throw new MediaError('too-short', `too short: ${durationS.toFixed(1)} s (minimum ${limits.minDurationS} s)`);
  }

  const warnings = await sanityDecode(absolute, video.index, durationS, limits, ctx);
  return { file: absolute, sizeBytes, format, durationS, streams, video, audio, warnings };
}
