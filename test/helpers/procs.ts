// Real processes for tests: every role is started as `node bin/ktv.cjs <role>` on loopback,
// logs go to a file per process, and every process started is stopped by its pid, also when
// the test fails (call `procs.killAll()` in `after`).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KTV_BIN = fileURLToPath(new URL('../../../bin/ktv.cjs', import.meta.url));

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ktv-${prefix}-`));
}

/** A port that was free a moment ago (bind 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  log(): string;
}

export class Procs {
  private readonly all: Proc[] = [];
  constructor(readonly logDir: string, readonly env: Record<string, string>) {}

  start(name: string, args: string[], extraEnv: Record<string, string> = {}): Proc {
    const logFile = join(this.logDir, `${name}-${this.all.length}.log`);
    const out = createWriteStream(logFile);
    const child = spawn(process.execPath, [KTV_BIN, ...args], {
      env: { ...process.env, ...this.env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => {
        // Let the pipes drain before closing the log.
        setTimeout(() => out.end(), 50);
        resolve({ code, signal });
      }),
    );
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    const proc: Proc = { name, pid: child.pid, child, logFile, exited, log: () => readFileSync(logFile, 'utf8') };
    this.all.push(proc);
    return proc;
  }

  /** Stops one process by pid and waits for it to go. */
  async stop(proc: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    try {
      process.kill(proc.pid, signal);
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 8000);
    await proc.exited;
    clearTimeout(timer);
  }

  /** Kills every process this test started, by pid. Safe to call twice. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((p) => this.stop(p, 'SIGKILL')));
  }

  /** Extra pids (grandchildren such as those of `ktv up`) to kill at the end. */
  killPids(pids: number[]): void {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A Buffer as a fetch body (the DOM typings want an ArrayBuffer-backed view; no copy). */
export function asBody(buf: Buffer): BodyInit {
  return buf as unknown as BodyInit;
}
