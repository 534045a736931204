// Shared flag handling for every role: `--config FILE`, `--set key.path=value` overrides,
// secrets from the environment, and one-line failures.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

/** A failure the user caused: printed as one line, exit code 2. */
export class UsageError extends Error {}

export const COMMON_OPTIONS = {
  config: { type: 'string' },
  set: { type: 'string', multiple: true },
  host: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0]!);
  }
}

/** `--set tracker.replicas=3` → { tracker: { replicas: 3 } }; values are JSON when they parse. */
export function overridesFromSet(sets: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of sets ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set ${item}: expected key.path=value`);
    const path = item.slice(0, eq).split('.');
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    let cursor = out;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i]!;
      if (typeof cursor[key] !== 'object' || cursor[key] === null) cursor[key] = {};
      cursor = cursor[key] as Record<string, unknown>;
    }
    cursor[path[path.length - 1]!] = value;
  }
  return out;
}

export function configFrom(values: { config?: string; set?: string[]; host?: string }, extra: Record<string, unknown> = {}): Config {
  const overrides = { ...overridesFromSet(values.set), ...extra };
  if (values.host) overrides.host = values.host;
  try {
    return loadConfig({ file: values.config, overrides });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
}

export function portFlag(value: string | undefined, fallback: number, name = '--port'): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${name} ${value}: expected a port number 0-65535`);
  return n;
}

export function requireEnvSecret(name: 'KTV_CLUSTER_SECRET' | 'KTV_ADMIN_TOKEN'): string {
  const value = process.env[name];
  if (!value) throw new UsageError(`${name} is not set (ktv up generates one under its data dir; for a single role export it)`);
  if (value.length < 16) throw new UsageError(`${name} must be at least 16 characters`);
  return value;
}

/** `--tracker a,b` → normalised base URLs. */
export function trackerUrls(value: string | undefined): string[] {
  if (!value) throw new UsageError('--tracker URL is required (several may be separated by commas)');
  return value.split(',').map((raw) => {
    const s = raw.trim();
    let url: URL;
    try {
      url = new URL(/^https?:\/\//.test(s) ? s : `http://${s}`);
    } catch {
      throw new UsageError(`--tracker ${s}: not a URL`);
    }
    if (url.pathname !== '/' || url.search) throw new UsageError(`--tracker ${s}: give the base URL only, like http://127.0.0.1:7000`);
    return url.href;
  });
}
