// ffmpeg filter and option strings, built from a plan. Pure, so the exact command is unit-tested,
// and shared by the loudness pass and packaging so the loudness is measured on exactly the signal
// the vocal rendition carries.
import type { MediaConfig } from './config.js';
import type { AudioSource, IngestPlan } from './plan.js';

export const AUDIO_SAMPLE_RATE_HZ = 48_000;

/**
 * The role's signal as stereo: a split channel goes to both sides (a singer on one channel
 * should not play from one speaker), anything else is down/up-mixed to stereo.
 */
export function roleChannelFilter(channel: AudioSource['channel']): string {
  switch (channel) {
    case 'left':
      return 'pan=stereo|c0=c0|c1=c0';
    case 'right':
      return 'pan=stereo|c0=c1|c1=c1';
    case 'both':
      return 'aformat=channel_layouts=stereo';
  }
}

/** Seconds for ffmpeg option values: fixed decimals, never exponent notation. */
export function secondsArg(s: number): string {
  return Math.max(0, s).toFixed(6);
}

/**
 * One audio role, ready for the AAC encoder:
 * - aresample async=1 + first_pts: fill timestamp gaps with silence and start exactly where the
 *   video starts (padding or trimming the head), so A/V sync survives and segment grids agree;
 * - the channel pick, 48 kHz fltp stereo, the loudness gain;
 * - apad + atrim: exactly the video's duration, so no tiny trailing audio segment appears and a
 *   short audio track does not end the rendition early.
 */
export function audioRoleChain(src: AudioSource, plan: IngestPlan, gainDb: number, label: string): string {
  const startS = plan.video.startOffsetS;
  const endS = startS + plan.durationS;
  const firstPts = Math.round(startS * AUDIO_SAMPLE_RATE_HZ);
  return (
    `[0:${src.streamIndex}]` +
    [
      `aresample=${AUDIO_SAMPLE_RATE_HZ}:async=1:first_pts=${firstPts}`,
      roleChannelFilter(src.channel),
      `aformat=sample_fmts=fltp:sample_rates=${AUDIO_SAMPLE_RATE_HZ}:channel_layouts=stereo`,
      `volume=${gainDb.toFixed(2)}dB`,
      `apad=whole_dur=${secondsArg(endS)}`,
      `atrim=start=${secondsArg(startS)}:end=${secondsArg(endS)}`,
    ].join(',') +
    `[${label}]`
  );
}

/** Video filters for the transcode path: deinterlace, fit, square pixels, 4:2:0. */
export function videoTranscodeChain(plan: IngestPlan, label: string): string {
  const v = plan.video;
  const filters: string[] = [];
  if (v.deinterlace) filters.push('yadif=mode=send_frame:deint=interlaced');
  filters.push(`scale=${v.outWidth}:${v.outHeight}:flags=bicubic`, 'setsar=1', 'format=yuv420p');
  return `[0:${v.streamIndex}]${filters.join(',')}[${label}]`;
}

export interface PackageCommand {
  complexFilter: string;
  outputOptions: string[];
  /** The playlist pattern (ffmpeg expands %v to the variant name). */
  output: string;
}

export const RENDITION_NAMES = ['video', 'vocal', 'backing'] as const;
export type RenditionName = (typeof RENDITION_NAMES)[number];

/**
 * The single ffmpeg run that writes all three renditions: HLS, fMP4, one file per rendition with
 * byte-range segments, VOD playlists, named variants. We write the master playlist ourselves.
 */
export function buildPackageCommand(plan: IngestPlan, gainDb: number, outDir: string, limits: MediaConfig): PackageCommand {
  const seg = plan.segmentDurationS;
  const chains = [audioRoleChain(plan.vocal, plan, gainDb, 'vocal'), audioRoleChain(plan.backing, plan, gainDb, 'backing')];
  const options: string[] = [];
  if (plan.video.mode === 'transcode') {
    chains.unshift(videoTranscodeChain(plan, 'v'));
    options.push(
      '-map', '[v]',
      '-c:v', 'libx264',
      '-preset', limits.x264Preset,
      '-crf', String(limits.x264Crf),
      '-maxrate', String(limits.videoMaxBitsPerS),
      '-bufsize', String(limits.videoBufferBits),
      '-profile:v', 'high',
      '-pix_fmt', 'yuv420p',
      // A keyframe on the first frame at or after every grid point: the muxer cuts exactly there.
      '-force_key_frames', `expr:gte(t,n_forced*${seg})`,
      '-forced-idr', '1',
    );
  } else {
    options.push('-map', `0:${plan.video.streamIndex}`, '-c:v', 'copy');
  }
  options.push(
    '-map', '[vocal]',
    '-map', '[backing]',
    '-c:a', 'aac',
    '-profile:a', 'aac_low',
    '-b:a', String(limits.audioBitsPerS),
    '-ar', String(AUDIO_SAMPLE_RATE_HZ),
    '-ac', '2',
    // Source tags (titles, encoder strings, chapters) are untrusted and have no use downstream.
    '-map_metadata', '-1',
    '-map_chapters', '-1',
    // Bounded queue: filters that delay audio make ffmpeg buffer packets of the other streams.
    '-max_muxing_queue_size', '4096',
    '-f', 'hls',
    '-hls_time', String(seg),
    '-hls_playlist_type', 'vod',
    '-hls_segment_type', 'fmp4',
    '-hls_flags', 'single_file+independent_segments',
    '-var_stream_map', 'v:0,name:video a:0,name:vocal a:1,name:backing',
    '-hls_segment_filename', `${outDir}/%v.mp4`,
  );
  return { complexFilter: chains.join(';'), outputOptions: options, output: `${outDir}/%v.m3u8` };
}
