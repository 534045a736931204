// ffprobe's JSON, parsed with a schema (it crosses a process boundary, and describes an untrusted
// file) and turned into plain typed streams. No policy here: probe.ts decides what to refuse.
import { z } from 'zod';
import type { MediaConfig } from './config.js';
import { MediaError, lastLine, oneLine } from './errors.js';
import { inputUrl, untrustedInputOptions } from './ffmpeg.js';
import { runProcess, type RunContext } from './proc.js';

const numeric = z.union([z.string(), z.number()]).optional();

const rawStreamSchema = z.object({
  index: z.number().int().nonnegative(),
  codec_name: z.string().optional(),
  codec_type: z.string().optional(),
  profile: z.string().optional(),
  level: z.number().optional(),
  width: z.number().int().optional(),
  height: z.number().int().optional(),
  pix_fmt: z.string().optional(),
  field_order: z.string().optional(),
  sample_aspect_ratio: z.string().optional(),
  r_frame_rate: z.string().optional(),
  avg_frame_rate: z.string().optional(),
  channels: z.number().int().optional(),
  channel_layout: z.string().optional(),
  sample_rate: numeric,
  bit_rate: numeric,
  start_time: numeric,
  duration: numeric,
  disposition: z.record(z.string(), z.number()).optional(),
  tags: z.record(z.string(), z.string()).optional(),
});

const rawProbeSchema = z.object({
  streams: z.array(rawStreamSchema).max(256).default([]),
  format: z
    .object({
      format_name: z.string().optional(),
      format_long_name: z.string().optional(),
      duration: numeric,
      start_time: numeric,
      size: numeric,
      bit_rate: numeric,
    })
    .optional(),
});

export type StreamType = 'video' | 'audio' | 'subtitle' | 'data' | 'attachment' | 'unknown';

export interface ProbeStream {
  /** ffmpeg's absolute stream index (`0:N`). */
  index: number;
  type: StreamType;
  /** ffmpeg codec name ('h264', 'aac', 'pcm_s16le', …); '' when ffprobe does not know it. */
  codec: string;
  profile?: string;
  /** ffprobe's level (H.264: 41 means 4.1). */
  level?: number;
  width?: number;
  height?: number;
  pixFmt?: string;
  /** 'progressive', 'tt', 'bb', 'tb', 'bt' or undefined when unknown. */
  fieldOrder?: string;
  /** Sample (pixel) aspect ratio, when ffprobe knows it and it is not 0:1. */
  sampleAspect?: { num: number; den: number };
  frameRate?: number;
  channels?: number;
  channelLayout?: string;
  sampleRateHz?: number;
  bitRateBitsPerS?: number;
  startS?: number;
  durationS?: number;
  title?: string;
  language?: string;
  handlerName?: string;
  /** Cover art stored as a video stream: never the song's picture. */
  isAttachedPicture: boolean;
  /** Matroska's "karaoke" disposition marks an accompaniment track. */
  isKaraoke: boolean;
}

export interface FfprobeFormat {
  /** Demuxer name(s), e.g. 'mov,mp4,m4a,3gp,3g2,mj2' or 'mpeg'. */
  name: string;
  longName?: string;
  durationS?: number;
  startS?: number;
  bitRateBitsPerS?: number;
}

export interface FfprobeOutput {
  format: FfprobeFormat;
  streams: ProbeStream[];
}

/** A finite number from ffprobe's string-or-number fields; undefined for 'N/A' and the like. */
export function num(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** "30000/1001" → 29.97; "0/0" and garbage → undefined. */
export function rational(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const m = /^(\d+)[/:](\d+)$/.exec(value);
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a > 0 && b > 0 ? a / b : undefined;
}

function streamType(codecType: string | undefined): StreamType {
  switch (codecType) {
    case 'video':
    case 'audio':
    case 'subtitle':
    case 'data':
    case 'attachment':
      return codecType;
    default:
      return 'unknown';
  }
}

function toStream(raw: z.infer<typeof rawStreamSchema>): ProbeStream {
  // Tag keys differ in case between containers (Matroska often writes TITLE/LANGUAGE).
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw.tags ?? {})) tags[k.toLowerCase()] = v;
  const sar = /^(\d+):(\d+)$/.exec(raw.sample_aspect_ratio ?? '');
  const sarNum = sar ? Number(sar[1]) : 0;
  const sarDen = sar ? Number(sar[2]) : 0;
  const stream: ProbeStream = {
    index: raw.index,
    type: streamType(raw.codec_type),
    codec: raw.codec_name ?? '',
    isAttachedPicture: raw.disposition?.['attached_pic'] === 1,
    isKaraoke: raw.disposition?.['karaoke'] === 1,
  };
  const set = <K extends keyof ProbeStream>(key: K, value: ProbeStream[K] | undefined): void => {
    if (value !== undefined && value !== '') stream[key] = value;
  };
  set('profile', raw.profile);
  set('level', raw.level !== undefined && raw.level >= 0 ? raw.level : undefined);
  set('width', raw.width && raw.width > 0 ? raw.width : undefined);
  set('height', raw.height && raw.height > 0 ? raw.height : undefined);
  set('pixFmt', raw.pix_fmt);
  set('fieldOrder', raw.field_order && raw.field_order !== 'unknown' ? raw.field_order : undefined);
  set('sampleAspect', sarNum > 0 && sarDen > 0 ? { num: sarNum, den: sarDen } : undefined);
  // avg_frame_rate is the true average; r_frame_rate can be a field rate or a timebase guess.
  set('frameRate', rational(raw.avg_frame_rate) ?? rational(raw.r_frame_rate));
  set('channels', raw.channels && raw.channels > 0 ? raw.channels : undefined);
  set('channelLayout', raw.channel_layout);
  set('sampleRateHz', num(raw.sample_rate));
  set('bitRateBitsPerS', num(raw.bit_rate));
  set('startS', num(raw.start_time));
  set('durationS', num(raw.duration));
  set('title', tags['title']?.trim());
  set('language', tags['language']?.trim());
  set('handlerName', tags['handler_name']?.trim());
  return stream;
}

/** Parses ffprobe `-of json -show_format -show_streams` output; throws MediaError 'not-media'. */
export function parseFfprobeJson(text: string): FfprobeOutput {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MediaError('not-media', 'ffprobe output is not JSON');
  }
  const parsed = rawProbeSchema.safeParse(json);
  if (!parsed.success) throw new MediaError('not-media', `ffprobe output has an unexpected shape: ${parsed.error.issues[0]?.message ?? ''}`);
  const format = parsed.data.format ?? {};
  const out: FfprobeFormat = { name: format.format_name ?? '' };
  if (format.format_long_name) out.longName = format.format_long_name;
  const durationS = num(format.duration);
  if (durationS !== undefined) out.durationS = durationS;
  const startS = num(format.start_time);
  if (startS !== undefined) out.startS = startS;
  const bitRate = num(format.bit_rate);
  if (bitRate !== undefined) out.bitRateBitsPerS = bitRate;
  return { format: out, streams: parsed.data.streams.map(toStream) };
}

export interface FfprobeRun {
  ok: boolean;
  output?: FfprobeOutput;
  stderrTail: string[];
}

/**
 * Runs ffprobe on a file with the untrusted-input options, a deadline and an output cap. A
 * non-zero exit is returned (ok: false) for the caller to classify; a deadline throws 'timeout'.
 */
export async function runFfprobe(file: string, limits: MediaConfig, ctx: RunContext = {}): Promise<FfprobeRun> {
  const outcome = await runProcess(
    {
      label: 'ffprobe',
      command: limits.ffprobePath,
      args: [
        '-v',
        'error',
        '-hide_banner',
        ...untrustedInputOptions(limits),
        '-of',
        'json',
        '-show_format',
        '-show_streams',
        inputUrl(file),
      ],
      timeoutMs: limits.probeTimeoutMs,
      maxStdoutBytes: limits.maxProbeOutputBytes,
      stderrTailLines: limits.stderrTailLines,
    },
    ctx,
  );
  if (outcome.stdoutOverflow) {
    throw new MediaError('not-media', `ffprobe describes more than ${limits.maxProbeOutputBytes} bytes of streams; refusing the file`);
  }
  if (outcome.exitCode !== 0) return { ok: false, stderrTail: outcome.stderrTail };
  return { ok: true, output: parseFfprobeJson(outcome.stdout), stderrTail: outcome.stderrTail };
}

/** ffprobe on one of our own outputs: any failure is a broken invariant, reported with stderr. */
export async function probeOutput(file: string, limits: MediaConfig, ctx: RunContext = {}): Promise<FfprobeOutput> {
  const run = await runFfprobe(file, limits, ctx);
  if (!run.ok || !run.output) {
    throw new MediaError('ffmpeg-failed', oneLine(`ffprobe cannot read our output ${file}: ${lastLine(run.stderrTail)}`), {
      stderrTail: run.stderrTail,
    });
  }
  return run.output;
}
