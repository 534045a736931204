// A quick decode of a few seconds at the head and at the tail of a source. ffprobe only reads
// headers: an MP4 cut after its (front) index, or a file with garbage in the middle of its
// frames, probes fine and then fails an hour into a batch or plays broken in a room.
//
// The verdict is "no video frame decodes" (or ffmpeg exits non-zero), not "any error line":
// old KTV rips often carry a few damaged macroblocks, and an MPEG-PS seek lands mid-packet and
// logs an audio "Header missing" that means nothing. Such lines come back as warnings.
import type { MediaConfig } from './config.js';
import { MediaError, oneLine } from './errors.js';
import { inputUrl, runFfmpeg, untrustedInputOptions } from './ffmpeg.js';
import type { RunContext } from './proc.js';

export interface SliceResult {
  atS: number;
  framesDecoded: number;
  errorLines: string[];
}

const TRUNCATION_HINTS = ['partial file', 'moov atom not found', 'end of file', 'truncat'];

async function decodeSlice(
  file: string,
  videoIndex: number,
  atS: number,
  durS: number,
  withAudio: boolean,
  limits: MediaConfig,
  ctx: RunContext,
): Promise<SliceResult> {
  let framesDecoded = 0;
  const errorLines: string[] = [];
  const inputOptions = [...untrustedInputOptions(limits), '-t', durS.toFixed(3)];
  if (atS > 0) inputOptions.unshift('-ss', atS.toFixed(3));
  const outputOptions = ['-map', `0:${videoIndex}`];
  if (withAudio) outputOptions.push('-map', '0:a?');
  // -progress on stderr gives the decoded frame count even at -loglevel error.
  outputOptions.push('-progress', 'pipe:2', '-f', 'null');
  try {
    await runFfmpeg(
      {
        label: `sanity decode at ${atS.toFixed(1)} s`,
        inputs: [{ source: inputUrl(file), options: inputOptions }],
        outputOptions,
        output: '-',
        timeoutMs: limits.sanityDecodeTimeoutMs,
        onStderrLine: (line) => {
          const m = /^frame=(\d+)$/.exec(line.trim());
          if (m) framesDecoded = Number(m[1]);
          else if (line.trim() && !/^[a-z_0-9]+=/.test(line.trim()) && errorLines.length < 50) errorLines.push(line.trim());
        },
      },
      limits,
      ctx,
    );
  } catch (err) {
    if (err instanceof MediaError && err.code === 'ffmpeg-failed') {
      return { atS, framesDecoded: 0, errorLines: errorLines.length ? errorLines : [err.message] };
    }
    throw err;
  }
  return { atS, framesDecoded, errorLines };
}

/**
 * Decodes `limits.sanityDecodeS` seconds at the head (video and audio) and at the tail (video
 * only: an audio decoder restarted mid-packet by the seek complains for no reason). Throws
 * MediaError 'truncated' or 'corrupt'; returns warnings for recoverable decode errors.
 */
export async function sanityDecode(
  file: string,
  videoIndex: number,
  durationS: number,
  limits: MediaConfig,
  ctx: RunContext = {},
): Promise<string[]> {
  const sliceS = limits.sanityDecodeS;
  if (sliceS <= 0) return [];
  const slices: Array<{ atS: number; withAudio: boolean }> = [{ atS: 0, withAudio: true }];
  const tailAtS = durationS - sliceS - 0.5;
  if (tailAtS > sliceS) slices.push({ atS: tailAtS, withAudio: false });

  const warnings: string[] = [];
  for (const slice of slices) {
    const result = await decodeSlice(file, videoIndex, slice.atS, sliceS, slice.withAudio, limits, ctx);
    const where = slice.atS === 0 ? 'at the start' : `near the end (${slice.atS.toFixed(1)} s)`;
    if (result.framesDecoded === 0) {
      const text = result.errorLines.join(' ').toLowerCase();
      const first = result.errorLines.find((l) => !l.startsWith('Error while decoding')) ?? result.errorLines[0] ?? 'no error reported';
      if (TRUNCATION_HINTS.some((h) => text.includes(h))) {
        throw new MediaError('truncated', oneLine(`no picture decodes ${where}: the file is truncated or was not fully copied (${first})`), {
          stderrTail: result.errorLines,
        });
      }
      throw new MediaError('corrupt', oneLine(`no picture decodes ${where}: the video data is damaged (${first})`), {
        stderrTail: result.errorLines,
      });
    }
    if (result.errorLines.length > 0) {
      warnings.push(oneLine(`${result.errorLines.length} decode error line(s) ${where}, first: ${result.errorLines[0]}`));
    }
  }
  return warnings;
}
