// packageHls: one ffmpeg run writes the three renditions (video, 原唱, 伴唱) as single-file fMP4
// HLS with byte-range segments; then we read everything back and assert what must be true
// (playlists in our subset, ranges covering each file exactly, AAC-LC 48 kHz stereo, H.264 ≤ the
// box, the same segment boundaries everywhere) before writing the master playlist ourselves.
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MediaConfig } from './config.js';
import { MediaError, oneLine } from './errors.js';
import { deadlineMs, inputUrl, runFfmpeg, untrustedInputOptions } from './ffmpeg.js';
import { probeOutput, type ProbeStream } from './ffprobe.js';
import { RENDITION_NAMES, buildPackageCommand, type RenditionName } from './filters.js';
import { scanKeyframeTimesS } from './keyframes.js';
import type { LoudnessResult } from './loudness.js';
import { avcCodecString, readRange } from './mp4.js';
import { keyframeGridProblem, switchToTranscode, type IngestPlan } from './plan.js';
import { mergeLastSegment, parseMediaPlaylist, writeMasterPlaylist, writeMediaPlaylist, type MediaPlaylist } from './playlist.js';
import type { RunContext } from './proc.js';

export const MASTER_PLAYLIST_NAME = 'master.m3u8';
export const AUDIO_GROUP_ID = 'aud';
export const ROLE_NAMES = { vocal: '原唱 Vocal', backing: '伴唱 Backing' } as const;
/** AAC-LC, the only audio codec we emit. */
export const AAC_LC_CODECS = 'mp4a.40.2';
/** An init segment is a few KiB; more is not ours. */
const MAX_INIT_BYTES = 1024 * 1024;
/** ffmpeg's %v pattern and the filter graph must not see anything unusual in the folder name. */
const SAFE_DIR_RE = /^[A-Za-z0-9/._+-]+$/;

export interface RenditionResult {
  role: RenditionName;
  /** Absolute paths of the media file and its playlist. */
  file: string;
  playlistFile: string;
  sizeBytes: number;
  playlistSizeBytes: number;
  /** RFC 6381 codec string: avc1.PPCCLL for video, mp4a.40.2 for audio. */
  codecs: string;
  /** Peak segment bit rate of this rendition alone. */
  bandwidthBitsPerS: number;
  averageBandwidthBitsPerS: number;
  width?: number;
  height?: number;
  frameRate?: number;
  sampleRateHz?: number;
  channels?: number;
  /** Sum of EXTINF durations. */
  durationS: number;
  segmentCount: number;
  /** Media time of the first sample (segment boundaries are this plus the EXTINF sums). */
  startS: number;
  playlist: MediaPlaylist;
}

export interface PackageResult {
  /** The plan as executed: a remux plan may have become a transcode (reason in plan.video.reasons). */
  plan: IngestPlan;
  loudness: LoudnessResult;
  renditions: Record<RenditionName, RenditionResult>;
  masterFile: string;
  masterText: string;
  /** Largest distance between corresponding segment boundaries across renditions. */
  maxBoundarySkewS: number;
  notes: string[];
}

export interface PackageOptions extends RunContext {
  /** BCP 47 language for the audio renditions (defaults to the plan's, from the source tag). */
  language?: string;
}

function outputFiles(outDir: string): string[] {
  return [...RENDITION_NAMES.flatMap((n) => [`${n}.mp4`, `${n}.m3u8`]), MASTER_PLAYLIST_NAME].map((f) => path.join(outDir, f));
}

async function removeOutputs(outDir: string): Promise<void> {
  await Promise.all(outputFiles(outDir).map((f) => rm(f, { force: true })));
}

async function checkOutDir(outDir: string): Promise<string> {
  const dir = path.resolve(outDir);
  if (!SAFE_DIR_RE.test(dir)) throw new MediaError('bad-option', `output folder ${JSON.stringify(dir)} has characters ffmpeg would interpret`);
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new MediaError('bad-option', `output folder ${dir} does not exist`);
  return dir;
}

/** Segment-end boundaries in media time. */
function boundaries(startS: number, playlist: MediaPlaylist): number[] {
  return playlist.segments.map((s) => startS + s.startS + s.durationS);
}

/** Largest distance between corresponding boundaries, or why they cannot be compared. */
export function boundarySkewS(videoEnds: readonly number[], audioEnds: readonly number[]): number | string {
  if (audioEnds.length !== videoEnds.length) return `${audioEnds.length} audio segments vs ${videoEnds.length} video segments`;
  let skew = 0;
  for (let i = 0; i < audioEnds.length; i++) skew = Math.max(skew, Math.abs(audioEnds[i]! - videoEnds[i]!));
  return skew;
}

/**
 * AAC priming (1024 samples) shifts the audio packets 21 ms early, so when the song length is a
 * multiple of the segment duration the audio muxer cuts once more, leaving a ~30 ms last audio
 * segment the video does not have. Merge it into the previous one (and rewrite the playlist) so
 * all renditions have the same segments; nothing is lost, unlike trimming.
 */
async function mergeTinyTail(r: RenditionResult, videoSegments: number, toleranceS: number): Promise<RenditionResult> {
  const segments = r.playlist.segments;
  if (segments.length !== videoSegments + 1 || segments[segments.length - 1]!.durationS > toleranceS) return r;
  const text = writeMediaPlaylist(mergeLastSegment(r.playlist));
  const playlist = parseMediaPlaylist(text); // what we write must be in our own subset
  await writeFile(r.playlistFile, text);
  const bw = bandwidths(playlist);
  return {
    ...r,
    playlist,
    playlistSizeBytes: Buffer.byteLength(text),
    segmentCount: playlist.segments.length,
    bandwidthBitsPerS: bw.peak,
    averageBandwidthBitsPerS: bw.average,
  };
}

function bandwidths(playlist: MediaPlaylist): { peak: number; average: number } {
  let peak = 0;
  let bytes = 0;
  for (const s of playlist.segments) {
    peak = Math.max(peak, Math.ceil((s.lengthBytes * 8) / s.durationS));
    bytes += s.lengthBytes;
  }
  return { peak, average: Math.ceil((bytes * 8) / playlist.totalDurationS) };
}

async function readPlaylist(file: string, limits: MediaConfig): Promise<{ playlist: MediaPlaylist; sizeBytes: number }> {
  const st = await stat(file);
  if (st.size > limits.maxPlaylistBytes) throw new MediaError('bad-playlist', `${path.basename(file)} is ${st.size} bytes (limit ${limits.maxPlaylistBytes})`);
  return { playlist: parseMediaPlaylist(await readFile(file, 'utf8')), sizeBytes: st.size };
}

function fail(why: string): never {
  throw new MediaError('ffmpeg-failed', oneLine(`packaging produced a bad rendition: ${why}`));
}

/** Reads one rendition back and checks it is what we asked ffmpeg for. */
async function inspectRendition(outDir: string, role: RenditionName, plan: IngestPlan, limits: MediaConfig, ctx: RunContext): Promise<RenditionResult> {
  const file = path.join(outDir, `${role}.mp4`);
  const playlistFile = path.join(outDir, `${role}.m3u8`);
  const { playlist, sizeBytes: playlistSizeBytes } = await readPlaylist(playlistFile, limits);
  const sizeBytes = (await stat(file)).size;
  if (playlist.map.uri !== `${role}.mp4` || playlist.map.offsetBytes !== 0) fail(`${role}.m3u8 does not map ${role}.mp4 from byte 0`);
  const last = playlist.segments[playlist.segments.length - 1]!;
  if (last.offsetBytes + last.lengthBytes !== sizeBytes) fail(`${role}.m3u8 ranges end at ${last.offsetBytes + last.lengthBytes}, file has ${sizeBytes} bytes`);

  const probed = await probeOutput(file, limits, ctx);
  const want = role === 'video' ? 'video' : 'audio';
  const streams = probed.streams.filter((s) => s.type === 'video' || s.type === 'audio');
  if (streams.length !== 1 || streams[0]!.type !== want) fail(`${role}.mp4 should hold exactly one ${want} stream`);
  const s: ProbeStream = streams[0]!;
  const bw = bandwidths(playlist);
  const result: RenditionResult = {
    role,
    file,
    playlistFile,
    sizeBytes,
    playlistSizeBytes,
    codecs: '',
    bandwidthBitsPerS: bw.peak,
    averageBandwidthBitsPerS: bw.average,
    durationS: playlist.totalDurationS,
    segmentCount: playlist.segments.length,
    startS: s.startS ?? 0,
    playlist,
  };
  if (role === 'video') {
    if (s.codec !== 'h264' || !s.width || !s.height) fail(`video is ${s.codec}, not H.264 with a size`);
    if (s.width !== plan.video.outWidth || s.height !== plan.video.outHeight) {
      fail(`video is ${s.width}x${s.height}, planned ${plan.video.outWidth}x${plan.video.outHeight}`);
    }
    const codecs = avcCodecString(await readRange(file, 0, playlist.map.lengthBytes, MAX_INIT_BYTES));
    if (!codecs) fail('no avcC box in the video init segment');
    Object.assign(result, { codecs, width: s.width, height: s.height, frameRate: s.frameRate ?? plan.video.frameRate });
  } else {
    if (s.codec !== 'aac' || s.profile !== 'LC' || s.sampleRateHz !== 48_000 || s.channels !== 2) {
      fail(`${role} is ${s.codec} ${s.profile ?? ''} ${s.sampleRateHz ?? '?'} Hz ${s.channels ?? '?'}ch, not AAC-LC 48 kHz stereo`);
    }
    Object.assign(result, { codecs: AAC_LC_CODECS, sampleRateHz: s.sampleRateHz, channels: s.channels });
  }
  return result;
}

async function runPackager(file: string, plan: IngestPlan, loudness: LoudnessResult, outDir: string, limits: MediaConfig, ctx: RunContext): Promise<void> {
  const cmd = buildPackageCommand(plan, loudness.gainDb, outDir, limits);
  await runFfmpeg(
    {
      label: `packaging (${plan.video.mode})`,
      inputs: [{ source: inputUrl(file), options: untrustedInputOptions(limits) }],
      complexFilter: cmd.complexFilter,
      outputOptions: cmd.outputOptions,
      output: cmd.output,
      timeoutMs: deadlineMs(limits, plan.durationS, limits.packageTimeoutMsPerMediaS),
      logLevel: 'error',
    },
    limits,
    ctx,
  );
}

/** Packages once with `plan`; returns the renditions or throws 'segment-mismatch'. */
async function packageOnce(
  file: string,
  plan: IngestPlan,
  loudness: LoudnessResult,
  outDir: string,
  limits: MediaConfig,
  ctx: RunContext,
): Promise<{ renditions: Record<RenditionName, RenditionResult>; maxBoundarySkewS: number }> {
  await removeOutputs(outDir);
  await runPackager(file, plan, loudness, outDir, limits, ctx);
  const [video, vocal, backing] = await Promise.all(RENDITION_NAMES.map((r) => inspectRendition(outDir, r, plan, limits, ctx)));
  const videoSegments = video!.segmentCount;
  const renditions = {
    video: video!,
    vocal: await mergeTinyTail(vocal!, videoSegments, limits.segmentBoundaryToleranceS),
    backing: await mergeTinyTail(backing!, videoSegments, limits.segmentBoundaryToleranceS),
  };
  const videoEnds = boundaries(renditions.video.startS, renditions.video.playlist);
  let maxBoundarySkewS = 0;
  for (const role of ['vocal', 'backing'] as const) {
    const r = renditions[role];
    const skew = boundarySkewS(videoEnds, boundaries(r.startS, r.playlist));
    if (typeof skew === 'string' || skew > limits.segmentBoundaryToleranceS) {
      const what = typeof skew === 'string' ? skew : `boundaries differ by ${skew.toFixed(3)} s`;
      throw new MediaError('segment-mismatch', `${role} and video segments do not line up: ${what}`);
    }
    maxBoundarySkewS = Math.max(maxBoundarySkewS, skew);
  }
  return { renditions, maxBoundarySkewS };
}

function masterText(renditions: Record<RenditionName, RenditionResult>, language: string | undefined): string {
  const { video, vocal, backing } = renditions;
  const loudestAudio = vocal.bandwidthBitsPerS >= backing.bandwidthBitsPerS ? vocal : backing;
  const audio = (['vocal', 'backing'] as const).map((role) => ({
    groupId: AUDIO_GROUP_ID,
    name: ROLE_NAMES[role],
    ...(language ? { language } : {}),
    isDefault: role === 'vocal',
    autoselect: true,
    channels: 2,
    uri: `${role}.m3u8`,
  }));
  return writeMasterPlaylist({
    audio,
    variants: [
      {
        // RFC 8216: a variant's BANDWIDTH covers its video plus the largest audio rendition.
        bandwidthBitsPerS: video.bandwidthBitsPerS + loudestAudio.bandwidthBitsPerS,
        averageBandwidthBitsPerS: video.averageBandwidthBitsPerS + Math.max(vocal.averageBandwidthBitsPerS, backing.averageBandwidthBitsPerS),
        codecs: `${video.codecs},${AAC_LC_CODECS}`,
        width: video.width!,
        height: video.height!,
        ...(video.frameRate ? { frameRate: video.frameRate } : {}),
        audioGroupId: AUDIO_GROUP_ID,
        uri: 'video.m3u8',
      },
    ],
  });
}

/**
 * Packages a probed and planned source into `outDir` (which must exist): video.mp4/.m3u8,
 * vocal.mp4/.m3u8, backing.mp4/.m3u8 and master.m3u8. A remux plan is checked against the source
 * keyframes first and becomes a transcode when they are off the segment grid; a remux whose
 * renditions still do not line up is redone as a transcode once. On failure nothing is left behind.
 */
export async function packageHls(
  file: string,
  plan: IngestPlan,
  loudness: LoudnessResult,
  outDir: string,
  limits: MediaConfig,
  options: PackageOptions = {},
): Promise<PackageResult> {
  const dir = await checkOutDir(outDir);
  const source = path.resolve(file);
  const ctx: RunContext = {};
  if (options.signal) ctx.signal = options.signal;
  if (options.log) ctx.log = options.log;
  if (options.onProgressS) ctx.onProgressS = options.onProgressS;
  if (options.threads) ctx.threads = options.threads;
  let current = plan;
  try {
    if (current.video.mode === 'remux') {
      const keyframes = await scanKeyframeTimesS(source, current.video.streamIndex, limits, ctx);
      const problem = keyframeGridProblem(keyframes, current.durationS, current.segmentDurationS, current.video.frameRate);
      if (problem) current = switchToTranscode(current, `keyframes off the segment grid: ${problem}`, limits);
    }
    let packaged;
    try {
      packaged = await packageOnce(source, current, loudness, dir, limits, ctx);
    } catch (err) {
      if (!(err instanceof MediaError && err.code === 'segment-mismatch' && current.video.mode === 'remux')) throw err;
      ctx.log?.warn('remux did not line up; transcoding', { reason: err.message });
      current = switchToTranscode(current, `remuxed segments did not line up (${err.message})`, limits);
      packaged = await packageOnce(source, current, loudness, dir, limits, ctx);
    }
    const language = options.language ?? current.language;
    const text = masterText(packaged.renditions, language);
    const masterFile = path.join(dir, MASTER_PLAYLIST_NAME);
    await writeFile(masterFile, text);
    return {
      plan: current,
      loudness,
      renditions: packaged.renditions,
      masterFile,
      masterText: text,
      maxBoundarySkewS: packaged.maxBoundarySkewS,
      notes: [...current.notes, `loudness gain ${loudness.gainDb} dB on both roles (limited by: ${loudness.limitedBy})`],
    };
  } catch (err) {
    await removeOutputs(dir).catch(() => undefined);
    throw err;
  }
}
