// Listening to a rendition without ears: decode a slice to PCM and find its dominant frequency,
// or its mean volume. Tests use this to check that 原唱 carries the vocal tone and 伴唱 the
// backing tone after probing, planning, channel splitting and packaging.
import { PassThrough } from 'node:stream';
import { defaultMediaConfig, type MediaConfig } from './config.js';
import { MediaError } from './errors.js';
import { inputUrl, runFfmpeg } from './ffmpeg.js';
import { secondsArg } from './filters.js';
import type { RunContext } from './proc.js';

const STREAM_SPEC_RE = /^(?:\d{1,3}|a|a:\d{1,3})$/;
export const PCM_SAMPLE_RATE_HZ = 48_000;
/** Longest slice decoded (bounds memory: 60 s of mono float is 11 MiB). */
const MAX_SLICE_S = 60;

function checkSlice(streamSpec: string, atS: number, durS: number): void {
  if (!STREAM_SPEC_RE.test(streamSpec)) throw new MediaError('bad-option', `stream spec ${JSON.stringify(streamSpec)} must look like 'a:0' or '2'`);
  if (!(atS >= 0) || !(durS > 0) || durS > MAX_SLICE_S) throw new MediaError('bad-option', `slice ${atS}+${durS} s is out of range`);
}

/** Decodes `durS` seconds from `atS` of one audio stream as mono float PCM at 48 kHz. */
export async function decodePcmMono(
  file: string,
  streamSpec: string,
  atS: number,
  durS: number,
  limits: MediaConfig = defaultMediaConfig,
  ctx: RunContext = {},
): Promise<Float32Array> {
  checkSlice(streamSpec, atS, durS);
  const maxBytes = Math.ceil((durS + 1) * PCM_SAMPLE_RATE_HZ) * 4;
  const chunks: Buffer[] = [];
  let bytes = 0;
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => {
    if (bytes + chunk.length <= maxBytes) chunks.push(chunk);
    bytes += chunk.length;
  });
  await runFfmpeg(
    {
      label: 'PCM decode',
      inputs: [{ source: inputUrl(file), options: ['-ss', secondsArg(atS), '-t', secondsArg(durS)] }],
      outputOptions: ['-map', `0:${streamSpec}`, '-ac', '1', '-ar', String(PCM_SAMPLE_RATE_HZ), '-f', 'f32le'],
      output: sink,
      timeoutMs: limits.ffmpegTimeoutBaseMs,
    },
    limits,
    ctx,
  );
  const all = Buffer.concat(chunks);
  const samples = new Float32Array(Math.floor(all.length / 4));
  for (let i = 0; i < samples.length; i++) samples[i] = all.readFloatLE(i * 4);
  return samples;
}

/** In-place iterative radix-2 FFT (re/im of length 2^k). */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const angle = (-2 * Math.PI) / len;
    const wRe = Math.cos(angle);
    const wIm = Math.sin(angle);
    for (let i = 0; i < n; i += len) {
      let uRe = 1;
      let uIm = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k;
        const b = a + len / 2;
        const tRe = re[b]! * uRe - im[b]! * uIm;
        const tIm = re[b]! * uIm + im[b]! * uRe;
        re[b] = re[a]! - tRe;
        im[b] = im[a]! - tIm;
        re[a] = re[a]! + tRe;
        im[a] = im[a]! + tIm;
        const nextRe = uRe * wRe - uIm * wIm;
        uIm = uRe * wIm + uIm * wRe;
        uRe = nextRe;
      }
    }
  }
}

/**
 * Dominant frequency of PCM samples: Hann-windowed FFT over the largest power-of-two window
 * (at most 65536 samples, 0.73 Hz bins at 48 kHz), peak bin refined by parabolic interpolation.
 */
export function dominantFrequencyOfPcm(samples: Float32Array, sampleRateHz: number, minHz = 20, maxHz = 20_000): number {
  if (samples.length < 256) throw new MediaError('bad-option', `only ${samples.length} samples: too short to analyse`);
  let n = 1;
  while (n * 2 <= samples.length && n * 2 <= 65_536) n *= 2;
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let i = 0; i < n; i++) re[i] = samples[i]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
  fft(re, im);
  const binHz = sampleRateHz / n;
  const lo = Math.max(1, Math.floor(minHz / binHz));
  const hi = Math.min(n / 2 - 2, Math.ceil(maxHz / binHz));
  const mag = (k: number): number => Math.hypot(re[k]!, im[k]!);
  let best = lo;
  for (let k = lo; k <= hi; k++) if (mag(k) > mag(best)) best = k;
  const [a, b, c] = [Math.log(mag(best - 1) + 1e-12), Math.log(mag(best) + 1e-12), Math.log(mag(best + 1) + 1e-12)];
  const denom = a - 2 * b + c;
  const shift = denom === 0 ? 0 : (0.5 * (a - c)) / denom;
  return (best + shift) * binHz;
}

/** Dominant frequency (Hz) of a slice of one audio stream (`streamSpec` like 'a:0'). */
export async function dominantFrequencyHz(
  file: string,
  streamSpec: string,
  atS: number,
  durS: number,
  limits: MediaConfig = defaultMediaConfig,
  ctx: RunContext = {},
): Promise<number> {
  const samples = await decodePcmMono(file, streamSpec, atS, durS, limits, ctx);
  return dominantFrequencyOfPcm(samples, PCM_SAMPLE_RATE_HZ);
}

/** Mean volume (dBFS) of one audio stream, whole or a slice, via ffmpeg's volumedetect. */
export async function meanVolumeDb(
  file: string,
  streamSpec: string,
  slice: { atS: number; durS: number } | undefined = undefined,
  limits: MediaConfig = defaultMediaConfig,
  ctx: RunContext = {},
): Promise<number> {
  checkSlice(streamSpec, slice?.atS ?? 0, slice?.durS ?? 1);
  let mean: number | undefined;
  await runFfmpeg(
    {
      label: 'volume detect',
      inputs: [{ source: inputUrl(file), options: slice ? ['-ss', secondsArg(slice.atS), '-t', secondsArg(slice.durS)] : [] }],
      outputOptions: ['-map', `0:${streamSpec}`, '-af', 'volumedetect', '-f', 'null'],
      output: '-',
      timeoutMs: limits.ffmpegTimeoutBaseMs,
      logLevel: 'info',
      onStderrLine: (line) => {
        const m = /mean_volume:\s*(-?[\d.]+|-inf) dB/.exec(line);
        if (m) mean = m[1] === '-inf' ? -Infinity : Number(m[1]);
      },
    },
    limits,
    ctx,
  );
  if (mean === undefined) throw new MediaError('ffmpeg-failed', 'volumedetect printed no mean volume');
  return mean;
}
