// Loads a role's configuration: schema defaults, then `--config FILE` (JSON), then overrides
// from flags. A bad file or value throws ConfigError with one line naming the key.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export class ConfigError extends Error {}

/** Deep-merges plain objects; arrays and scalars from `over` replace those in `base`. */
function merge(base: unknown, over: unknown): unknown {
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(over)) out[key] = merge(base[key], value);
    return out;
  }
  return over === undefined ? base : over;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function describeZodError(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid value';
  const where = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${where}: ${issue.message}`;
}

export function loadConfig(options: { file?: string; overrides?: Record<string, unknown> } = {}): Config {
  let fromFile: unknown = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`config ${options.file}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    try {
      fromFile = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`config ${options.file}: not valid JSON (${(error as Error).message})`);
    }
    if (!isPlainObject(fromFile)) throw new ConfigError(`config ${options.file}: must be a JSON object`);
  }
  const merged = merge(fromFile, options.overrides ?? {});
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(`config${options.file ? ' ' + options.file : ''}: ${describeZodError(parsed.error)}`);
  }
  return parsed.data;
}

export function defaultConfig(): Config {
  return configSchema.parse({});
}
