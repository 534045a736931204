// The media pipeline's public surface: probe → plan → loudness → package. Pure functions of
// files and plain data; no HTTP, no cluster. See each module for the why.
export { mediaConfig, mediaConfigSchema, defaultMediaConfig, type MediaConfig, type MediaConfigInput } from './config.js';
export { MediaError, MEDIA_ERROR_CODES, isMediaError, type MediaErrorCode } from './errors.js';
export type { RunContext } from './proc.js';
export { probeMedia, ACCEPTED_AUDIO_CODECS, ACCEPTED_VIDEO_CODECS, type ProbeResult, type ProbeStream } from './probe.js';
export {
  planIngest,
  switchToTranscode,
  keyframeGridProblem,
  classifyAudioStream,
  fitVideoSize,
  toBcp47,
  type IngestPlan,
  type IngestOptions,
  type AudioSource,
  type VideoPlan,
  type AudioRole,
  type VocalChannel,
} from './plan.js';
export { measureSongLoudness, measureR128, computeGainDb, loudnessForManifest, type LoudnessResult, type R128Measurement } from './loudness.js';
export { packageHls, ROLE_NAMES, MASTER_PLAYLIST_NAME, type PackageResult, type RenditionResult, type PackageOptions } from './package.js';
export {
  parseMediaPlaylist,
  writeMediaPlaylist,
  mergeLastSegment,
  writeMasterPlaylist,
  type MediaPlaylist,
  type MediaSegment,
  type MasterPlaylistSpec,
} from './playlist.js';
export { makeDemoSong, type DemoSongOptions, type DemoSong } from './demo.js';
export { dominantFrequencyHz, meanVolumeDb, decodePcmMono, dominantFrequencyOfPcm } from './tones.js';
