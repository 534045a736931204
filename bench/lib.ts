// Small shared pieces for benchmarks: percentiles, CPU seconds of a pid, JSON output.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export { percentile } from '../loadtest/report.js';

/** CPU seconds of a pid (one implementation, shared with the load test). */
export { cpuSeconds } from '../loadtest/proc-cpu.js';

export function writeJson(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

export function argValue(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(argv[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`--${name} expects a number`);
  return n;
}

export function argString(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : (argv[i + 1] ?? fallback);
}
