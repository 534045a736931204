// planIngest: from a probe result and the operator's options to what packaging will do. PURE —
// no ffmpeg, no file system — so every decision (which stream is 原唱, remux or transcode, output
// size) is unit-tested on plain objects. Ambiguity is refused, never guessed: the mapping ends up
// in the manifest and is never re-derived from stream order at play time (DESIGN.md).
import { defaultMediaConfig, type MediaConfig } from './config.js';
import { MediaError } from './errors.js';
import type { ProbeStream } from './ffprobe.js';
import { isAcceptedAudioCodec, type ProbeResult } from './probe.js';

export type AudioRole = 'vocal' | 'backing';
export type VocalChannel = 'left' | 'right';

export interface IngestOptions {
  /**
   * Audio ordinal (0-based, counting audio streams only, in file order; ffmpeg's `0:a:N`) of the
   * 原唱 stream. This is exactly what the CLI's `--vocal-track N` passes. With `vocalChannel`, the
   * stream whose channels are split (defaults to the only audio stream).
   */
  vocalTrack?: number;
  /** Audio ordinal of the 伴唱 stream (`--backing-track M`). */
  backingTrack?: number;
  /** Legacy sources: 原唱 is this channel of one stereo stream, 伴唱 the other (`--vocal-channel`). */
  vocalChannel?: VocalChannel;
}

export interface AudioSource {
  role: AudioRole;
  /** Absolute stream index (`0:N`). */
  streamIndex: number;
  /** Position among audio streams (`0:a:N`, `--vocal-track N`). */
  audioOrdinal: number;
  /** 'both' = the stream as is (downmixed to stereo); left/right = that channel on both sides. */
  channel: 'both' | VocalChannel;
  codec: string;
  title?: string;
}

export interface VideoPlan {
  streamIndex: number;
  sourceCodec: string;
  mode: 'remux' | 'transcode';
  /** Why the video is transcoded (empty for remux). */
  reasons: string[];
  sourceWidth: number;
  sourceHeight: number;
  outWidth: number;
  outHeight: number;
  frameRate: number;
  /** Deinterlace (yadif) before encoding: interlaced MPEG-2 is common in old KTV libraries. */
  deinterlace: boolean;
  /** Video start relative to the file's start: audio is aligned to it so segments line up. */
  startOffsetS: number;
  /** Source pixel aspect, so a later switch to transcode still produces square pixels. */
  sourceSampleAspect?: { num: number; den: number };
}

export interface IngestPlan {
  /** Media duration packaged: the video's; audio is padded/trimmed to it. */
  durationS: number;
  segmentDurationS: number;
  video: VideoPlan;
  audioLayout: 'two-streams' | 'channel-split';
  /** How the roles were decided: options, stream titles, or --vocal-channel. Goes to the manifest. */
  audioMapping: 'explicit' | 'titles' | 'vocal-channel';
  vocal: AudioSource;
  backing: AudioSource;
  /** BCP 47 language of the vocal stream when its tag says one (for the master playlist). */
  language?: string;
  /** Decisions in words, for logs and the ingest report. */
  notes: string[];
}

// ---- audio roles ---------------------------------------------------------------------------

// Backing words are checked first: "off vocal", "no vocals", "instrumental" mention the voice
// only to say it is absent.
const BACKING_RE =
  /伴唱|伴奏|消音|无人声|無人聲|纯音乐|純音樂|卡拉\s*ok|karaoke|instrumental|backing|accompaniment|minus\s*one|off\s*-?\s*vocals?|no\s+vocals?|without\s+vocals?|\binst\b/i;
const VOCAL_RE = /原唱|人声|人聲|导唱|導唱|vocals?|original|\bguide\b/i;

/** What a stream's title/handler name/disposition says it is; undefined when it says nothing. */
export function classifyAudioStream(stream: ProbeStream): AudioRole | undefined {
  if (stream.isKaraoke) return 'backing';
  for (const text of [stream.title, stream.handlerName]) {
    if (!text) continue;
    if (BACKING_RE.test(text)) return 'backing';
    if (VOCAL_RE.test(text)) return 'vocal';
  }
  return undefined;
}

function describeAudio(audio: readonly ProbeStream[]): string {
  return audio
    .map((s, i) => {
      const label = s.title ?? s.handlerName;
      const parts = [`#${i} ${s.codec || '?'}`, s.channels ? `${s.channels}ch` : '', s.language && s.language !== 'und' ? s.language : ''];
      return parts.filter(Boolean).join(' ') + (label ? ` "${label}"` : '');
    })
    .join(', ');
}

function checkOrdinal(name: string, value: number | undefined, count: number): MediaError | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0 || value >= count) {
    return new MediaError('bad-option', `${name} ${value} is out of range: the file has ${count} audio stream(s), numbered 0-${count - 1}`);
  }
  return undefined;
}

function source(role: AudioRole, audio: readonly ProbeStream[], ordinal: number, channel: AudioSource['channel']): AudioSource | MediaError {
  const s = audio[ordinal]!;
  if (!isAcceptedAudioCodec(s.codec)) {
    return new MediaError('unsupported-audio-codec', `audio stream #${ordinal} (${role === 'vocal' ? '原唱' : '伴唱'}) has unsupported codec '${s.codec || 'unknown'}'`);
  }
  const out: AudioSource = { role, streamIndex: s.index, audioOrdinal: ordinal, channel, codec: s.codec };
  if (s.title) out.title = s.title;
  return out;
}

type AudioDecision = Pick<IngestPlan, 'audioLayout' | 'audioMapping' | 'vocal' | 'backing'> & { note: string };

function planChannelSplit(audio: readonly ProbeStream[], options: IngestOptions, vocalChannel: VocalChannel): AudioDecision | MediaError {
  if (options.backingTrack !== undefined && options.backingTrack !== options.vocalTrack) {
    return new MediaError('bad-option', '--vocal-channel splits one stream; --backing-track must be omitted or name the same stream');
  }
  let ordinal = options.vocalTrack;
  if (ordinal === undefined) {
    if (audio.length !== 1) {
      return new MediaError(
        'bad-option',
        `--vocal-channel needs one stream to split but the file has ${audio.length} (${describeAudio(audio)}); add --vocal-track N`,
      );
    }
    ordinal = 0;
  }
  const stream = audio[ordinal]!;
  if (stream.channels !== 2) {
    return new MediaError('audio-layout', `audio stream #${ordinal} has ${stream.channels ?? 'unknown'} channel(s); --vocal-channel needs a stereo stream`);
  }
  const other: VocalChannel = vocalChannel === 'left' ? 'right' : 'left';
  const vocal = source('vocal', audio, ordinal, vocalChannel);
  if (vocal instanceof MediaError) return vocal;
  const backing = source('backing', audio, ordinal, other);
  if (backing instanceof MediaError) return backing;
  return {
    audioLayout: 'channel-split',
    audioMapping: 'vocal-channel',
    vocal,
    backing,
    note: `audio stream #${ordinal} split: 原唱 = ${vocalChannel} channel, 伴唱 = ${other} channel`,
  };
}

function planAudio(audio: readonly ProbeStream[], options: IngestOptions): AudioDecision | MediaError {
  if (audio.length === 0) return new MediaError('no-audio', 'no audio stream: a song needs 原唱 and 伴唱 audio');
  const badOption =
    checkOrdinal('--vocal-track', options.vocalTrack, audio.length) ?? checkOrdinal('--backing-track', options.backingTrack, audio.length);
  if (badOption) return badOption;
  if (options.vocalChannel) return planChannelSplit(audio, options, options.vocalChannel);

  if (audio.length === 1) {
    const s = audio[0]!;
    if (s.channels === 2) {
      return new MediaError(
        'needs-vocal-channel',
        'one stereo audio stream: if 原唱 and 伴唱 are its left/right channels, pass --vocal-channel left|right (the channel that holds 原唱)',
      );
    }
    return new MediaError('audio-layout', `one ${s.channels ?? 'unknown'}-channel audio stream cannot hold both 原唱 and 伴唱`);
  }

  let vocalOrdinal = options.vocalTrack;
  let backingOrdinal = options.backingTrack;
  let mapping: AudioDecision['audioMapping'] = 'explicit';
  if (vocalOrdinal === undefined && backingOrdinal !== undefined && audio.length === 2) vocalOrdinal = 1 - backingOrdinal;
  if (backingOrdinal === undefined && vocalOrdinal !== undefined && audio.length === 2) backingOrdinal = 1 - vocalOrdinal;

  if (vocalOrdinal === undefined && backingOrdinal === undefined) {
    const roles = audio.map(classifyAudioStream);
    const vocals = roles.flatMap((r, i) => (r === 'vocal' ? [i] : []));
    const backings = roles.flatMap((r, i) => (r === 'backing' ? [i] : []));
    if (vocals.length === 1 && backings.length === 1) {
      vocalOrdinal = vocals[0]!;
      backingOrdinal = backings[0]!;
      mapping = 'titles';
    }
  }
  if (vocalOrdinal === undefined || backingOrdinal === undefined) {
    return new MediaError(
      'ambiguous-audio',
      `cannot tell 原唱 from 伴唱 among ${audio.length} audio streams (${describeAudio(audio)}); pass --vocal-track N --backing-track M (0-based audio stream numbers)`,
    );
  }
  if (vocalOrdinal === backingOrdinal) {
    return new MediaError(
      'bad-option',
      `--vocal-track and --backing-track both name stream #${vocalOrdinal}; for a left/right source use --vocal-channel left|right`,
    );
  }
  const vocal = source('vocal', audio, vocalOrdinal, 'both');
  if (vocal instanceof MediaError) return vocal;
  const backing = source('backing', audio, backingOrdinal, 'both');
  if (backing instanceof MediaError) return backing;
  const how = mapping === 'titles' ? 'from stream titles' : 'as given';
  return {
    audioLayout: 'two-streams',
    audioMapping: mapping,
    vocal,
    backing,
    note: `原唱 = audio #${vocalOrdinal}, 伴唱 = audio #${backingOrdinal} (${how})`,
  };
}

// ---- video ---------------------------------------------------------------------------------

/** H.264 profiles every browser decoder takes (8-bit 4:2:0). */
const REMUXABLE_H264_PROFILES = ['Baseline', 'Constrained Baseline', 'Main', 'High'];
const INTERLACED_FIELD_ORDERS = ['tt', 'bb', 'tb', 'bt'];

/** Output size for a transcode: square pixels, fit in the box (either orientation), even, never upscaled. */
export function fitVideoSize(
  width: number,
  height: number,
  sampleAspect: { num: number; den: number } | undefined,
  maxWidthPx: number,
  maxHeightPx: number,
): { width: number; height: number } {
  const displayWidth = sampleAspect ? (width * sampleAspect.num) / sampleAspect.den : width;
  const [boxW, boxH] = displayWidth >= height ? [maxWidthPx, maxHeightPx] : [maxHeightPx, maxWidthPx];
  const scale = Math.min(1, boxW / displayWidth, boxH / height);
  const even = (x: number): number => Math.max(2, 2 * Math.round(x / 2));
  return { width: even(displayWidth * scale), height: even(height * scale) };
}

function transcodeReasons(v: ProbeStream, width: number, height: number, limits: MediaConfig): string[] {
  const reasons: string[] = [];
  if (v.codec !== 'h264') reasons.push(`video codec ${v.codec} is not H.264`);
  if (v.pixFmt !== 'yuv420p') reasons.push(`pixel format ${v.pixFmt ?? 'unknown'} is not yuv420p`);
  if (v.codec === 'h264' && !REMUXABLE_H264_PROFILES.includes(v.profile ?? '')) reasons.push(`H.264 profile ${v.profile ?? 'unknown'} is not 8-bit 4:2:0`);
  const [boxW, boxH] = width >= height ? [limits.maxVideoWidthPx, limits.maxVideoHeightPx] : [limits.maxVideoHeightPx, limits.maxVideoWidthPx];
  if (width > boxW || height > boxH) reasons.push(`${width}x${height} is larger than ${limits.maxVideoWidthPx}x${limits.maxVideoHeightPx}`);
  if (v.fieldOrder && INTERLACED_FIELD_ORDERS.includes(v.fieldOrder)) reasons.push(`interlaced video (${v.fieldOrder}) is deinterlaced`);
  return reasons;
}

function planVideo(probe: ProbeResult, limits: MediaConfig): VideoPlan | MediaError {
  const v = probe.video;
  if (!v.width || !v.height) return new MediaError('corrupt', 'the video stream has no picture size');
  const reasons = transcodeReasons(v, v.width, v.height, limits);
  const frameRate = v.frameRate && v.frameRate <= 240 ? v.frameRate : 25;
  const plan: VideoPlan = {
    streamIndex: v.index,
    sourceCodec: v.codec,
    mode: 'remux',
    reasons: [],
    sourceWidth: v.width,
    sourceHeight: v.height,
    outWidth: v.width,
    outHeight: v.height,
    frameRate,
    deinterlace: v.fieldOrder !== undefined && INTERLACED_FIELD_ORDERS.includes(v.fieldOrder),
    startOffsetS: Math.max(0, (v.startS ?? 0) - (probe.format.startS ?? 0)),
  };
  if (v.sampleAspect) plan.sourceSampleAspect = v.sampleAspect;
  return reasons.length ? toTranscode(plan, reasons, limits) : plan;
}

function toTranscode(video: VideoPlan, reasons: string[], limits: MediaConfig): VideoPlan {
  const size = fitVideoSize(video.sourceWidth, video.sourceHeight, video.sourceSampleAspect, limits.maxVideoWidthPx, limits.maxVideoHeightPx);
  return { ...video, mode: 'transcode', reasons: [...video.reasons, ...reasons], outWidth: size.width, outHeight: size.height };
}

/**
 * Switches a remux plan to transcode (keyframes off the segment grid, or renditions that did not
 * line up after a remux), keeping the reason.
 */
export function switchToTranscode(plan: IngestPlan, reason: string, limits: MediaConfig): IngestPlan {
  if (plan.video.mode === 'transcode') return plan;
  return { ...plan, video: toTranscode(plan.video, [reason], limits), notes: [...plan.notes, `video transcoded: ${reason}`] };
}

/**
 * Checks that the muxer will cut the video where it cuts audio. The HLS muxer cuts a video
 * rendition at the first keyframe at or after each multiple of the segment duration (counted from
 * the first packet), and an audio rendition at the first packet there; so every grid point before
 * the end needs a keyframe no more than one frame after it. Returns the first problem, or
 * undefined when the keyframes are on the grid.
 */
export function keyframeGridProblem(
  keyframeTimesS: readonly number[],
  durationS: number,
  segmentDurationS: number,
  frameRate: number,
): string | undefined {
  if (keyframeTimesS.length === 0) return 'no keyframes found';
  const times = [...keyframeTimesS].sort((a, b) => a - b);
  const t0 = times[0]!;
  const frameS = 1 / frameRate;
  const epsilonS = 1e-4; // ffprobe prints microseconds; timestamps are exact in their time base
  let i = 0;
  for (let k = 1; k * segmentDurationS < durationS - frameS / 2; k++) {
    const gridS = k * segmentDurationS;
    while (i < times.length && times[i]! - t0 < gridS - epsilonS) i++;
    if (i === times.length) return `no keyframe after ${gridS} s (segments every ${segmentDurationS} s)`;
    const lateS = times[i]! - t0 - gridS;
    if (lateS > frameS + epsilonS) {
      return `first keyframe after ${gridS} s is at ${(times[i]! - t0).toFixed(3)} s, not within one frame (segments every ${segmentDurationS} s)`;
    }
  }
  return undefined;
}

// ---- language --------------------------------------------------------------------------------

const ISO639_2_TO_BCP47: Record<string, string> = {
  chi: 'zh', zho: 'zh', cmn: 'zh', yue: 'yue', nan: 'nan', eng: 'en', jpn: 'ja', kor: 'ko',
  tha: 'th', vie: 'vi', ind: 'id', msa: 'ms', may: 'ms', fil: 'fil', tgl: 'tl', fre: 'fr',
  fra: 'fr', ger: 'de', deu: 'de', spa: 'es', por: 'pt', rus: 'ru', ita: 'it', hin: 'hi',
};

/** A container language tag as a BCP 47 tag for HLS; undefined for 'und' or anything unclear. */
export function toBcp47(tag: string | undefined): string | undefined {
  if (!tag) return undefined;
  const t = tag.trim();
  const mapped = ISO639_2_TO_BCP47[t.toLowerCase()];
  if (mapped) return mapped;
  return /^[a-z]{2}(-[A-Za-z0-9]{2,8})*$/.test(t) ? t : undefined;
}

// ---- the plan --------------------------------------------------------------------------------

/**
 * Decides how a probed source is packaged. Returns a MediaError (not thrown) for refusals: the
 * CLI prints its message, which names the option that resolves it.
 */
export function planIngest(probe: ProbeResult, options: IngestOptions = {}, limits: MediaConfig = defaultMediaConfig): IngestPlan | MediaError {
  const audio = planAudio(probe.audio, options);
  if (audio instanceof MediaError) return audio;
  const video = planVideo(probe, limits);
  if (video instanceof MediaError) return video;
  const notes = [audio.note];
  notes.push(
    video.mode === 'remux'
      ? 'video remuxed (H.264 within limits; keyframes are checked against the segment grid before packaging)'
      : `video transcoded to H.264 ${video.outWidth}x${video.outHeight}: ${video.reasons.join('; ')}`,
  );
  const plan: IngestPlan = {
    durationS: probe.video.durationS ?? probe.durationS,
    segmentDurationS: limits.segmentDurationS,
    video,
    audioLayout: audio.audioLayout,
    audioMapping: audio.audioMapping,
    vocal: audio.vocal,
    backing: audio.backing,
    notes,
  };
  const language = toBcp47(probe.audio[audio.vocal.audioOrdinal]?.language);
  if (language) plan.language = language;
  return plan;
}
