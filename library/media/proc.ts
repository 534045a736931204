// Child processes with a deadline, an output cap and a kept stderr tail. Used for ffprobe:
// fluent-ffmpeg's ffprobe() has no deadline, no kill and no cap on what it buffers, and parses the
// key=value output format (losing the JSON's nesting); an untrusted file must not be able to hang
// the library or fill its memory, so ffprobe is run here directly.
import { spawn } from 'node:child_process';
import type { Logger } from '../../common/log.js';
import { MediaError, oneLine } from './errors.js';

/** Per-call context: cancellation and a logger, both optional. */
export interface RunContext {
  signal?: AbortSignal;
  log?: Logger;
  /** ffmpeg runs report how many seconds of media they have written (for progress bars). */
  onProgressS?: (mediaS: number) => void;
  /** ffmpeg `-threads` per run (a CPU budget when several songs are ingested at once). */
  threads?: number;
}

/** After SIGKILL, how long to wait for the child's exit before giving up on it. */
export const KILL_GRACE_MS = 5_000;
/** A tool line longer than this is cut (stderr lines are diagnostics, not data). */
const MAX_LINE_CHARS = 4096;

/** Keeps the last `size` items; memory stays bounded whatever a tool prints. */
export class Ring<T> {
  private readonly items: T[] = [];
  constructor(private readonly size: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.size) this.items.shift();
  }
  toArray(): T[] {
    return [...this.items];
  }
}

/** Splits a byte stream into lines; a runaway line is cut at MAX_LINE_CHARS. */
export class LineSplitter {
  private partial = '';
  constructor(private readonly onLine: (line: string) => void) {}
  write(chunk: string): void {
    const parts = (this.partial + chunk).split(/\r?\n|\r/);
    this.partial = parts.pop() ?? '';
    if (this.partial.length > MAX_LINE_CHARS) this.partial = this.partial.slice(0, MAX_LINE_CHARS);
    for (const line of parts) this.onLine(line.slice(0, MAX_LINE_CHARS));
  }
  end(): void {
    if (this.partial) this.onLine(this.partial);
    this.partial = '';
  }
}

export interface ProcessSpec {
  /** Short name for messages ("ffprobe", "keyframe scan"). */
  label: string;
  command: string;
  args: string[];
  timeoutMs: number;
  /** Stdout beyond this kills the process; the outcome says `stdoutOverflow`. */
  maxStdoutBytes: number;
  /** When given, stdout is delivered line by line and not kept. */
  onStdoutLine?: (line: string) => void;
  stderrTailLines: number;
}

export interface ProcessOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Whole stdout (empty when onStdoutLine is used). */
  stdout: string;
  stdoutOverflow: boolean;
  stderrTail: string[];
}

/**
 * Runs a process to completion. Rejects with MediaError 'timeout' when the deadline passes and
 * 'aborted' when the signal fires; in both cases the child is SIGKILLed and reaped first.
 */
export function runProcess(spec: ProcessSpec, ctx: RunContext = {}): Promise<ProcessOutcome> {
  return new Promise((resolve, reject) => {
    if (ctx.signal?.aborted) {
      reject(new MediaError('aborted', `${spec.label} cancelled before it started`));
      return;
    }
    ctx.log?.debug('spawn', { label: spec.label, command: spec.command, args: spec.args });
    const child = spawn(spec.command, spec.args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const stderrTail = new Ring<string>(spec.stderrTailLines);
    const stdoutChunks: string[] = [];
    let stdoutBytes = 0;
    let stdoutOverflow = false;
    let stopReason: 'timeout' | 'aborted' | undefined;
    let settled = false;

    const stderrLines = new LineSplitter((line) => {
      if (line.trim()) stderrTail.push(line);
    });
    const stdoutLines = spec.onStdoutLine ? new LineSplitter(spec.onStdoutLine) : undefined;

    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      stopReason = 'timeout';
      kill();
      // A process stuck in the kernel may never report its exit: do not wait for it forever.
      setTimeout(() => finish(null, 'SIGKILL'), KILL_GRACE_MS).unref();
    }, spec.timeoutMs);
    const onAbort = (): void => {
      stopReason ??= 'aborted';
      kill();
    };
    ctx.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdoutBytes += Buffer.byteLength(chunk);
      if (stdoutBytes > spec.maxStdoutBytes) {
        stdoutOverflow = true;
        kill();
        return;
      }
      if (stdoutLines) stdoutLines.write(chunk);
      else stdoutChunks.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => stderrLines.write(chunk));

    function finish(exitCode: number | null, signal: NodeJS.Signals | null): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
      stderrLines.end();
      if (!stdoutOverflow) stdoutLines?.end();
      const tail = stderrTail.toArray();
      if (stopReason === 'timeout') {
        reject(new MediaError('timeout', `${spec.label} passed its ${spec.timeoutMs} ms deadline and was killed`, { stderrTail: tail }));
      } else if (stopReason === 'aborted') {
        reject(new MediaError('aborted', `${spec.label} cancelled`, { stderrTail: tail }));
      } else {
        resolve({ exitCode, signal, stdout: stdoutChunks.join(''), stdoutOverflow, stderrTail: tail });
      }
    }

    child.on('error', (err) => {
      // Spawn failures (ENOENT, EACCES): the tool is missing or not runnable.
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
      reject(new MediaError('ffmpeg-failed', oneLine(`cannot run ${spec.command}: ${err.message}`), { cause: err }));
    });
    child.on('close', (code, signal) => finish(code, signal));
  });
}
