// Every ffmpeg run of the pipeline goes through here (fluent-ffmpeg over the system ffmpeg, as the
// design card asks), with what fluent-ffmpeg does not give on its own: a hard deadline that
// SIGKILLs (its `timeout` option sends SIGTERM, which ffmpeg may take long to honour), AbortSignal
// support, a bounded stderr tail in every error, and protection from its option splitting.
import path from 'node:path';
import type { Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import type { MediaConfig } from './config.js';
import { MediaError, lastLine, oneLine } from './errors.js';
import { KILL_GRACE_MS, Ring, type RunContext } from './proc.js';

export interface FfmpegInput {
  /** An ffmpeg input URL: `inputUrl(file)` for files, or e.g. `testsrc2=…` with `-f lavfi`. */
  source: string;
  options?: string[];
}

export interface FfmpegSpec {
  /** Short name for messages ("packaging", "loudness pass"). */
  label: string;
  inputs: FfmpegInput[];
  complexFilter?: string;
  outputOptions: string[];
  /** A file path, '-' (with `-f null`), or a stream that receives ffmpeg's stdout. */
  output: string | Writable;
  timeoutMs: number;
  /** ffmpeg's -loglevel; 'info' where a filter reports on stderr (loudnorm, volumedetect). */
  logLevel?: 'error' | 'warning' | 'info';
  onStderrLine?: (line: string) => void;
}

export interface FfmpegOutcome {
  stderrTail: string[];
}

/**
 * The URL form of a local file for ffmpeg/ffprobe: absolute and with the `file:` protocol, so a
 * name like `-x`, `concat:a|b` or `http://…` can never be read as an option or another protocol.
 */
export function inputUrl(file: string): string {
  return 'file:' + path.resolve(file);
}

/**
 * Input options for an untrusted source: only allowed demuxers, only the file protocol. This is
 * what keeps an HLS/concat playlist renamed `.mp4` from making ffmpeg read other files or URLs.
 */
export function untrustedInputOptions(limits: MediaConfig): string[] {
  return ['-format_whitelist', limits.allowedDemuxers.join(','), '-protocol_whitelist', 'file'];
}

/** Deadline for a run over `durationS` of media: a fixed base plus a per-second allowance. */
export function deadlineMs(limits: MediaConfig, durationS: number, perMediaSMs: number): number {
  return Math.ceil(limits.ffmpegTimeoutBaseMs + Math.max(0, durationS) * perMediaSMs);
}

/**
 * fluent-ffmpeg splits an option array element that contains exactly one space into two
 * arguments ("title=原唱 Vocal" would break) unless the options are passed as separate arguments.
 */
function addOptions(add: (...options: string[]) => unknown, options: readonly string[]): void {
  if (options.length === 0) return;
  if (options.length === 1 && options[0]!.includes(' ')) {
    throw new Error(`internal: single ffmpeg option with a space would be split: ${options[0]}`);
  }
  add(...options);
}

export function runFfmpeg(spec: FfmpegSpec, limits: MediaConfig, ctx: RunContext = {}): Promise<FfmpegOutcome> {
  return new Promise((resolve, reject) => {
    if (ctx.signal?.aborted) {
      reject(new MediaError('aborted', `${spec.label} cancelled before it started`));
      return;
    }
    // stdoutLines bounds fluent-ffmpeg's own line buffers (0 would mean unbounded); our tail is kept below.
    const command = ffmpeg({ stdoutLines: limits.stderrTailLines });
    command.setFfmpegPath(limits.ffmpegPath);
    spec.inputs.forEach((input, i) => {
      command.input(input.source);
      // The global options ride on the first input; ffmpeg accepts them anywhere before outputs.
      const options = i === 0 ? ['-nostdin', '-hide_banner', '-nostats', '-y', '-loglevel', spec.logLevel ?? 'error'] : [];
      // Machine-readable progress (`out_time_us=…` lines on stderr) only when someone listens.
      if (i === 0 && ctx.onProgressS) options.push('-progress', 'pipe:2', '-stats_period', '1');
      addOptions((...o) => command.inputOptions(...o), [...options, ...(input.options ?? [])]);
    });
    if (spec.complexFilter) command.complexFilter(spec.complexFilter);
    command.output(spec.output);
    addOptions((...o) => command.outputOptions(...o), spec.outputOptions);
    if (ctx.threads) command.outputOptions('-threads', String(ctx.threads));

    const tail = new Ring<string>(limits.stderrTailLines);
    let stopReason: 'timeout' | 'aborted' | undefined;
    let settled = false;

    const finish = (error: MediaError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve({ stderrTail: tail.toArray() });
    };
    const stopError = (): MediaError | undefined => {
      if (stopReason === 'timeout') {
        return new MediaError('timeout', `${spec.label} passed its ${spec.timeoutMs} ms deadline; ffmpeg was killed`, {
          stderrTail: tail.toArray(),
        });
      }
      if (stopReason === 'aborted') return new MediaError('aborted', `${spec.label} cancelled; ffmpeg was killed`, { stderrTail: tail.toArray() });
      return undefined;
    };
    const kill = (): void => {
      // `ffmpegProc` is set by fluent-ffmpeg once spawned; before that there is nothing to kill and
      // the 'start' handler below kills it as soon as it exists.
      const proc = (command as unknown as { ffmpegProc?: { exitCode: number | null; signalCode: string | null } }).ffmpegProc;
      if (proc && proc.exitCode === null && proc.signalCode === null) command.kill('SIGKILL');
    };
    const stop = (reason: 'timeout' | 'aborted'): void => {
      stopReason ??= reason;
      kill();
      // If the process never reports its exit (stuck in the kernel), do not hang the caller.
      setTimeout(() => finish(stopError()), KILL_GRACE_MS).unref();
    };
    const timer = setTimeout(() => stop('timeout'), spec.timeoutMs);
    const onAbort = (): void => stop('aborted');
    ctx.signal?.addEventListener('abort', onAbort, { once: true });

    command.on('start', (commandLine: string) => {
      ctx.log?.debug('ffmpeg start', { label: spec.label, commandLine });
      if (stopReason) kill();
    });
    command.on('stderr', (line: string) => {
      const progress = /^out_time_us=(\d+)$/.exec(line.trim());
      if (progress) {
        ctx.onProgressS?.(Number(progress[1]) / 1e6);
        return;
      }
      if (/^[a-z_]+=\S*$/.test(line.trim()) && ctx.onProgressS) return; // the other -progress keys
      if (line.trim()) tail.push(line);
      spec.onStderrLine?.(line);
    });
    command.on('error', (err: Error) => {
      const stopped = stopError();
      if (stopped) {
        finish(stopped);
        return;
      }
      const detail = lastLine(tail.toArray()) || err.message;
      finish(new MediaError('ffmpeg-failed', oneLine(`${spec.label} failed: ${detail}`), { stderrTail: tail.toArray(), cause: err }));
    });
    command.on('end', () => finish(stopError()));
    command.run();
  });
}
