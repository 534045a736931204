// EBU R128 loudness, measured ONCE on the vocal (原唱) mix, and one gain for both roles: toggling
// 原唱/伴唱 in a room must never jump in level, and 原唱 is what guests compare songs by.
import { z } from 'zod';
import type { MediaConfig } from './config.js';
import { MediaError } from './errors.js';
import { deadlineMs, inputUrl, runFfmpeg, untrustedInputOptions } from './ffmpeg.js';
import { roleChannelFilter } from './filters.js';
import type { AudioSource, IngestPlan } from './plan.js';
import type { RunContext } from './proc.js';

export interface R128Measurement {
  /** Integrated loudness, LUFS (-Infinity for silence). */
  inputI: number;
  /** True peak, dBTP. */
  inputTP: number;
  /** Loudness range, LU. */
  inputLRA: number;
  /** Relative gate threshold, LUFS. */
  inputThresh: number;
}

export interface LoudnessResult extends R128Measurement {
  targetI: number;
  /** Gain applied to both roles, dB. */
  gainDb: number;
  /** What bounded the gain: nothing, the true-peak ceiling, the max-gain clamp, or silence. */
  limitedBy: 'none' | 'true-peak' | 'max-gain' | 'silence';
}

/** R128's absolute gate: below this there is nothing to measure (a silent or missing vocal). */
const SILENCE_LUFS = -70;

/**
 * gain = target − measured I, lowered so that measured true peak + gain ≤ maxTruePeakDbtp
 * (a quiet but peaky mix is not pushed into clipping — we apply a plain gain, no limiter), and
 * clamped to ±maxGainDb. Silence gets 0 dB.
 */
export function computeGainDb(
  measured: Pick<R128Measurement, 'inputI' | 'inputTP'>,
  targetI: number,
  maxTruePeakDbtp: number,
  maxGainDb: number,
): { gainDb: number; limitedBy: LoudnessResult['limitedBy'] } {
  if (!Number.isFinite(measured.inputI) || measured.inputI < SILENCE_LUFS) return { gainDb: 0, limitedBy: 'silence' };
  let gainDb = targetI - measured.inputI;
  let limitedBy: LoudnessResult['limitedBy'] = 'none';
  if (Number.isFinite(measured.inputTP) && measured.inputTP + gainDb > maxTruePeakDbtp) {
    gainDb = maxTruePeakDbtp - measured.inputTP;
    limitedBy = 'true-peak';
  }
  if (Math.abs(gainDb) > maxGainDb) {
    gainDb = Math.sign(gainDb) * maxGainDb;
    limitedBy = 'max-gain';
  }
  return { gainDb: Math.round(gainDb * 100) / 100, limitedBy };
}

// loudnorm prints numbers as strings, "-inf" for silence.
const loudnormNumber = z.string().transform((s) => (s.trim() === '-inf' ? -Infinity : s.trim() === 'inf' ? Infinity : Number(s)));
const loudnormJsonSchema = z.object({
  input_i: loudnormNumber,
  input_tp: loudnormNumber,
  input_lra: loudnormNumber,
  input_thresh: loudnormNumber,
});

/** Extracts loudnorm's JSON block from ffmpeg stderr lines. Throws when absent or malformed. */
export function parseLoudnormOutput(lines: readonly string[]): R128Measurement {
  const start = lines.findIndex((l) => l.includes('[Parsed_loudnorm'));
  const open = lines.findIndex((l, i) => i > start && l.trim() === '{');
  const close = lines.findIndex((l, i) => i > open && l.trim() === '}');
  if (start < 0 || open < 0 || close < 0) throw new MediaError('ffmpeg-failed', 'loudness pass printed no loudnorm report');
  let json: unknown;
  try {
    json = JSON.parse(lines.slice(open, close + 1).join('\n'));
  } catch {
    throw new MediaError('ffmpeg-failed', 'loudness pass printed a malformed loudnorm report');
  }
  const parsed = loudnormJsonSchema.safeParse(json);
  if (!parsed.success) throw new MediaError('ffmpeg-failed', 'loudness pass report is missing fields');
  const m = parsed.data;
  for (const v of [m.input_i, m.input_tp, m.input_lra, m.input_thresh]) {
    if (Number.isNaN(v)) throw new MediaError('ffmpeg-failed', 'loudness pass report has a non-number');
  }
  return { inputI: m.input_i, inputTP: m.input_tp, inputLRA: m.input_lra, inputThresh: m.input_thresh };
}

export interface LoudnessInput {
  /** Absolute stream index (`0:N`) or an audio specifier like `a:0`. */
  stream: number | `a:${number}`;
  channel: AudioSource['channel'];
  durationS: number;
  /** Sources are untrusted (demuxer/protocol allow-list); our own outputs need not be. */
  untrusted: boolean;
}

/** Measures one audio stream (as the stereo signal a role would carry) with loudnorm. */
export async function measureR128(file: string, input: LoudnessInput, limits: MediaConfig, ctx: RunContext = {}): Promise<R128Measurement> {
  const report: string[] = [];
  let inReport = false;
  const chain = [
    roleChannelFilter(input.channel),
    `loudnorm=I=${limits.loudnessTargetLufs}:TP=${limits.loudnessMaxTruePeakDbtp}:LRA=11:print_format=json`,
  ].join(',');
  await runFfmpeg(
    {
      label: 'loudness pass',
      inputs: [{ source: inputUrl(file), options: input.untrusted ? untrustedInputOptions(limits) : [] }],
      complexFilter: `[0:${input.stream}]${chain}[out]`,
      outputOptions: ['-map', '[out]', '-f', 'null'],
      output: '-',
      timeoutMs: deadlineMs(limits, input.durationS, limits.loudnessTimeoutMsPerMediaS),
      logLevel: 'info', // loudnorm reports at info level
      onStderrLine: (line) => {
        // Keep only the report (bounded): info level also prints stream descriptions.
        if (line.includes('[Parsed_loudnorm')) inReport = true;
        if (inReport && report.length < 64) report.push(line);
      },
    },
    limits,
    ctx,
  );
  return parseLoudnormOutput(report);
}

/** The song's loudness: measured on the 原唱 role as planned; the gain applies to both roles. */
export async function measureSongLoudness(file: string, plan: IngestPlan, limits: MediaConfig, ctx: RunContext = {}): Promise<LoudnessResult> {
  const measured = await measureR128(
    file,
    { stream: plan.vocal.streamIndex, channel: plan.vocal.channel, durationS: plan.durationS, untrusted: true },
    limits,
    ctx,
  );
  const { gainDb, limitedBy } = computeGainDb(measured, limits.loudnessTargetLufs, limits.loudnessMaxTruePeakDbtp, limits.loudnessMaxGainDb);
  return { ...measured, targetI: limits.loudnessTargetLufs, gainDb, limitedBy };
}

/**
 * The song manifest's `loudness` record (`Record<string, number>`): finite numbers only, since
 * JSON turns -Infinity (a silent vocal) into null. A silent measurement is stored as -70 LUFS,
 * R128's absolute gate, and `gainDb` is always present.
 */
export function loudnessForManifest(l: LoudnessResult): Record<string, number> {
  const finite = (v: number): number => (Number.isFinite(v) ? v : SILENCE_LUFS);
  return {
    inputI: finite(l.inputI),
    inputTP: finite(l.inputTP),
    inputLRA: Number.isFinite(l.inputLRA) ? l.inputLRA : 0,
    inputThresh: finite(l.inputThresh),
    targetI: l.targetI,
    gainDb: l.gainDb,
  };
}
