// Tunables of the media pipeline (probe, plan, loudness, packaging), with documented defaults.
// Part of the config schema as `library.media` (config/schema.ts); every function in
// library/media takes a parsed MediaConfig (called `limits`) so nothing reads globals.
import { z } from 'zod';

const positiveMs = z.number().int().positive();

/**
 * Demuxers ffmpeg/ffprobe may use on an untrusted upload (`-format_whitelist`). Playlist-like
 * formats (hls, concat, …) are left out on purpose: they make ffmpeg open other files or URLs.
 * A demuxer is allowed when any of its names is listed (`mov,mp4,m4a,3gp,3g2,mj2` by `mov`).
 */
export const DEFAULT_ALLOWED_DEMUXERS = ['mov', 'mp4', 'matroska', 'webm', 'mpeg', 'mpegts', 'avi', 'flv'] as const;

export const X264_PRESETS = [
  'ultrafast',
  'superfast',
  'veryfast',
  'faster',
  'fast',
  'medium',
  'slow',
  'slower',
] as const;

export const mediaConfigSchema = z.strictObject({
  /** ffmpeg binary (PATH lookup when not absolute). */
  ffmpegPath: z.string().min(1).default('ffmpeg'),
  /** ffprobe binary (PATH lookup when not absolute). */
  ffprobePath: z.string().min(1).default('ffprobe'),
  /** Largest source file accepted; checked with stat before ffprobe reads a byte. */
  maxSourceBytes: z.number().int().positive().default(8 * 1024 ** 3),
  /** Longest song accepted (15 min): bounds every later deadline and output size. */
  maxDurationS: z.number().positive().default(15 * 60),
  /** Shorter than this is not a song (and would make a one-segment HLS stream). */
  minDurationS: z.number().nonnegative().default(1),
  /** Deadline for one ffprobe run on a source or an output. */
  probeTimeoutMs: positiveMs.default(15_000),
  /** Cap on ffprobe's JSON output; a file that needs more is refused, not parsed. */
  maxProbeOutputBytes: z.number().int().positive().default(4 * 1024 * 1024),
  /** Seconds decoded at the head and at the tail of a source to catch truncated/corrupt files (0 = off). */
  sanityDecodeS: z.number().nonnegative().max(30).default(3),
  /** Deadline for each sanity decode slice. */
  sanityDecodeTimeoutMs: positiveMs.default(30_000),
  /** Deadline for the keyframe scan of a remux candidate (reads packets, no decode). */
  keyframeScanTimeoutMs: positiveMs.default(120_000),
  /** HLS segment duration; every rendition is cut on this grid. */
  segmentDurationS: z.number().int().min(1).max(10).default(4),
  /** Output video box (either orientation): larger sources are scaled down keeping aspect. */
  maxVideoWidthPx: z.number().int().min(16).default(1920),
  maxVideoHeightPx: z.number().int().min(16).default(1080),
  /** libx264 preset for the transcode path; veryfast keeps a 2-core box near real time at 1080p. */
  x264Preset: z.enum(X264_PRESETS).default('veryfast'),
  /** libx264 constant rate factor (lower = better, larger). */
  x264Crf: z.number().int().min(0).max(51).default(20),
  /** VBV cap so a busy scene cannot blow the streamer's per-room budget. */
  videoMaxBitsPerS: z.number().int().positive().default(10_000_000),
  /** VBV buffer (2 s of the cap). */
  videoBufferBits: z.number().int().positive().default(20_000_000),
  /** AAC-LC bitrate per audio role (stereo, 48 kHz). */
  audioBitsPerS: z.number().int().min(32_000).max(512_000).default(192_000),
  /** EBU R128 integrated loudness target of the vocal mix. */
  loudnessTargetLufs: z.number().min(-40).max(-5).default(-16),
  /** The gain is lowered so the measured true peak plus the gain stays at or below this. */
  loudnessMaxTruePeakDbtp: z.number().max(0).default(-1),
  /** Largest gain either way, so a near-silent vocal track is not boosted into noise. */
  loudnessMaxGainDb: z.number().positive().max(40).default(20),
  /** Deadline for the loudness pass: base plus this per second of media. */
  loudnessTimeoutMsPerMediaS: z.number().int().positive().default(1_000),
  /** Deadline base for every ffmpeg run (start-up, probing, finishing the files). */
  ffmpegTimeoutBaseMs: positiveMs.default(60_000),
  /** Packaging deadline per second of media; 4 s covers a 1080p transcode on a slow 2-core box. */
  packageTimeoutMsPerMediaS: z.number().int().positive().default(4_000),
  /** Segment boundaries of video and both audio renditions must agree this closely. */
  segmentBoundaryToleranceS: z.number().positive().max(1).default(0.1),
  /** Largest media playlist read back after packaging. */
  maxPlaylistBytes: z.number().int().positive().default(1024 * 1024),
  /** ffmpeg stderr lines kept for error messages (the tail is what explains a failure). */
  stderrTailLines: z.number().int().min(1).max(1000).default(20),
  allowedDemuxers: z
    .array(z.string().regex(/^[a-z0-9_]+$/))
    .min(1)
    .max(64)
    .default([...DEFAULT_ALLOWED_DEMUXERS]),
});

export type MediaConfig = z.infer<typeof mediaConfigSchema>;
export type MediaConfigInput = z.input<typeof mediaConfigSchema>;

/** Defaults merged with overrides, validated (throws a ZodError naming the bad key). */
export function mediaConfig(overrides: MediaConfigInput = {}): MediaConfig {
  return mediaConfigSchema.parse(overrides);
}

export const defaultMediaConfig: MediaConfig = mediaConfig();
