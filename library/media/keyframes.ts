// Keyframe times of a video stream, from packet flags: reads the container's packets without
// decoding (an 8 GiB file is I/O bound, not CPU bound), streamed line by line so memory holds only
// the keyframe times.
import type { MediaConfig } from './config.js';
import { MediaError, lastLine, oneLine } from './errors.js';
import { inputUrl, untrustedInputOptions } from './ffmpeg.js';
import { runProcess, type RunContext } from './proc.js';

/** A 15-min song at 240 fps with every frame a keyframe; more means something is wrong. */
const MAX_KEYFRAMES = 240 * 15 * 60;

export async function scanKeyframeTimesS(file: string, streamIndex: number, limits: MediaConfig, ctx: RunContext = {}): Promise<number[]> {
  const times: number[] = [];
  let tooMany = false;
  const outcome = await runProcess(
    {
      label: 'keyframe scan',
      command: limits.ffprobePath,
      args: [
        '-v',
        'error',
        '-hide_banner',
        ...untrustedInputOptions(limits),
        '-select_streams',
        String(streamIndex),
        '-show_entries',
        'packet=pts_time,flags',
        '-of',
        'csv=p=0',
        inputUrl(file),
      ],
      timeoutMs: limits.keyframeScanTimeoutMs,
      // Lines are consumed as they come; this only bounds a runaway single line.
      maxStdoutBytes: Number.MAX_SAFE_INTEGER,
      onStdoutLine: (line) => {
        // "12.345678,K_" — pts may be N/A for some packets; those cannot be cut points anyway.
        const [pts, flags] = line.split(',');
        if (!flags?.startsWith('K')) return;
        const t = Number(pts);
        if (!Number.isFinite(t)) return;
        if (times.length >= MAX_KEYFRAMES) tooMany = true;
        else times.push(t);
      },
      stderrTailLines: limits.stderrTailLines,
    },
    ctx,
  );
  if (outcome.exitCode !== 0) {
    throw new MediaError('ffmpeg-failed', oneLine(`keyframe scan failed: ${lastLine(outcome.stderrTail)}`), { stderrTail: outcome.stderrTail });
  }
  if (tooMany) throw new MediaError('corrupt', `more than ${MAX_KEYFRAMES} keyframes in the video stream`);
  return times;
}
