// `ktv ingest FILE …` (one song, one JSON line on stdout) and `ktv ingest --dir DIR` (a folder
// with a metadata sidecar: skips what is already in the library, shows progress, runs several
// songs at once within a CPU budget, ends with a table).
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { describeZodError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../common/log.js';
import { TrackerClient } from '../common/tracker-client.js';
import { ingestSong, IngestError, toIngestError, type IngestProgress, type IngestRequest, type IngestResult } from '../library/ingest/ingest.js';
import { configFrom, parse, requireEnvSecret, trackerUrls, UsageError } from './args.js';
import { parseCsv } from './csv.js';

const INGEST_OPTIONS = {
  tracker: { type: 'string' },
  title: { type: 'string' },
  artist: { type: 'string' },
  language: { type: 'string' },
  genre: { type: 'string' },
  'vocal-track': { type: 'string' },
  'backing-track': { type: 'string' },
  'vocal-channel': { type: 'string' },
  dir: { type: 'string' },
  jobs: { type: 'string' },
  quiet: { type: 'boolean' },
} as const;

function intFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,3}$/.test(value)) throw new UsageError(`--${name} ${value}: expected a stream number 0, 1, 2 …`);
  return Number(value);
}

function channelFlag(value: string | undefined): 'left' | 'right' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'left' && value !== 'right') throw new UsageError(`--vocal-channel ${value}: expected left or right`);
  return value;
}

interface Runtime {
  config: Config;
  tracker: TrackerClient;
  secret: string;
  log: Logger;
  workDir: string;
  agent: http.Agent;
}

function runtime(values: { config?: string; set?: string[]; host?: string; tracker?: string }): Runtime {
  const config = configFrom(values);
  const trackers = trackerUrls(values.tracker);
  const secret = requireEnvSecret('KTV_CLUSTER_SECRET');
  // Logs are for operators investigating; the CLI's own output is the JSON line / the table.
  const log = createLogger('ingest', config.logLevel === 'info' ? 'warn' : config.logLevel);
  const workDir = config.library.workDir || mkdtempSync(join(tmpdir(), 'ktv-ingest-'));
  return { config, tracker: new TrackerClient(trackers, secret, config.rpcTimeoutMs), secret, log, workDir, agent: new http.Agent({ keepAlive: true, maxSockets: 16 }) };
}

export async function runIngest(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, INGEST_OPTIONS, true);
  if (values.dir) return runDir(values, positionals);
  if (positionals.length !== 1) throw new UsageError('ktv ingest FILE --tracker URL --title T --artist A --language L (exactly one FILE; or --dir DIR)');
  const rt = runtime(values);
  const file = resolve(positionals[0]!);
  const req: IngestRequest = {
    file,
    sourceName: basename(file),
    title: values.title ?? '',
    artist: values.artist ?? '',
    language: values.language ?? '',
    genre: values.genre,
    vocalTrack: intFlag(values['vocal-track'], 'vocal-track'),
    backingTrack: intFlag(values['backing-track'], 'backing-track'),
    vocalChannel: channelFlag(values['vocal-channel']),
  };
  const bar = values.quiet ? undefined : new ProgressLine(process.stderr);
  try {
    const result = await ingestSong(req, { tracker: rt.tracker, secret: rt.secret, config: rt.config, log: rt.log, workDir: rt.workDir, agent: rt.agent, onProgress: (p) => bar?.show(basename(file), p) });
    bar?.clear();
    process.stdout.write(JSON.stringify(resultJson(result)) + '\n');
    return 0;
  } catch (error) {
    bar?.clear();
    const e = toIngestError(error);
    process.stderr.write(`ktv ingest: ${basename(file)}: ${e.message.split('\n')[0]}\n`);
    return e.status === 503 ? 3 : 1;
  } finally {
    rt.agent.destroy();
    if (!rt.config.library.workDir) rmSync(rt.workDir, { recursive: true, force: true });
  }
}

function resultJson(r: IngestResult): Record<string, unknown> {
  return { id: r.id, existing: r.existing, title: r.title, durationS: r.durationS, videoMode: r.videoMode, version: r.version };
}

// ---- folder ingest ------------------------------------------------------------------------------

const sidecarRow = z.object({
  file: z.string().min(1).max(500),
  title: z.string().min(1).max(300),
  artist: z.string().min(1).max(300),
  language: z.string().min(1).max(50),
  genre: z.string().max(100).optional(),
  vocalTrack: z.coerce.number().int().min(0).max(99).optional(),
  backingTrack: z.coerce.number().int().min(0).max(99).optional(),
  vocalChannel: z.enum(['left', 'right']).optional(),
});
type SidecarRow = z.infer<typeof sidecarRow>;

/** Reads `metadata.json` (array of rows) or `metadata.csv` (header row) from the folder. */
export function readSidecar(dir: string): SidecarRow[] {
  const jsonFile = join(dir, 'metadata.json');
  const csvFile = join(dir, 'metadata.csv');
  let rows: unknown[];
  if (existsSync(jsonFile)) {
    try {
      rows = JSON.parse(readFileSync(jsonFile, 'utf8')) as unknown[];
    } catch (error) {
      throw new UsageError(`${jsonFile}: not valid JSON (${(error as Error).message})`);
    }
    if (!Array.isArray(rows)) throw new UsageError(`${jsonFile}: expected an array of songs`);
  } else if (existsSync(csvFile)) {
    const table = parseCsv(readFileSync(csvFile, 'utf8'));
    const header = table.shift()?.map((h) => h.trim());
    if (!header) throw new UsageError(`${csvFile}: empty`);
    rows = table.filter((r) => r.some((c) => c.trim())).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]?.trim() || undefined])));
  } else {
    throw new UsageError(`${dir}: no metadata.json or metadata.csv sidecar (columns: file,title,artist,language,genre,vocalTrack,backingTrack,vocalChannel)`);
  }
  return rows.map((row, i) => {
    const parsed = sidecarRow.safeParse(row);
    if (!parsed.success) throw new UsageError(`sidecar row ${i + 1}: ${describeZodError(parsed.error)}`);
    // A sidecar names files in its own folder, never elsewhere.
    if (parsed.data.file.includes('/') || parsed.data.file.includes('\\') || parsed.data.file.startsWith('.')) {
      throw new UsageError(`sidecar row ${i + 1}: file must be a plain name inside the folder`);
    }
    return parsed.data;
  });
}

interface RowOutcome {
  file: string;
  status: 'ingested' | 'skipped' | 'failed';
  id?: string;
  detail: string;
}

async function runDir(values: Parameters<typeof runtime>[0] & { dir?: string; jobs?: string; quiet?: boolean }, positionals: string[]): Promise<number> {
  if (positionals.length > 0) throw new UsageError('give either FILE or --dir DIR, not both');
  const dir = resolve(values.dir!);
  const rows = readSidecar(dir);
  const listed = new Set(rows.map((r) => r.file));
  const unlisted = readdirSync(dir).filter((f) => /\.(mp4|mkv|mpg|mpeg|vob|ts|mov|avi)$/i.test(f) && !listed.has(f));
  const rt = runtime(values);
  const cores = cpus().length;
  const jobs = Math.max(1, Math.min(values.jobs ? Number(values.jobs) || 1 : rt.config.library.jobs, cores, 8));
  // CPU budget: the jobs share the machine's cores between their ffmpeg runs.
  const threads = Math.max(1, Math.floor(cores / jobs));
  const outcomes: RowOutcome[] = unlisted.map((f) => ({ file: f, status: 'skipped', detail: 'not in the sidecar' }));
  const bar = values.quiet ? undefined : new ProgressLine(process.stderr);
  let next = 0;
  let done = 0;
  const active = new Map<string, IngestProgress>();
  const render = (): void => {
    if (!bar) return;
    const parts = [...active].map(([f, p]) => `${f.slice(0, 24)} ${p.stage}${p.fraction !== undefined ? ` ${Math.round(p.fraction * 100)}%` : ''}`);
    bar.raw(`[${done}/${rows.length}] ${parts.join(' | ')}`);
  };
  const worker = async (): Promise<void> => {
    while (next < rows.length) {
      const row = rows[next++]!;
      const file = join(dir, row.file);
      active.set(row.file, { stage: 'hashing' });
      render();
      try {
        if (!existsSync(file)) throw new IngestError(400, 'file not found', 'bad-file');
        const r = await ingestSong(
          { ...row, file, sourceName: row.file },
          { tracker: rt.tracker, secret: rt.secret, config: rt.config, log: rt.log, workDir: rt.workDir, agent: rt.agent, threads, onProgress: (p) => { active.set(row.file, p); render(); } },
        );
        outcomes.push({ file: row.file, status: r.existing ? 'skipped' : 'ingested', id: r.id, detail: r.existing ? 'already in the library' : `${r.videoMode}, ${r.durationS.toFixed(0)} s` });
      } catch (error) {
        outcomes.push({ file: row.file, status: 'failed', detail: toIngestError(error).message.split('\n')[0]! });
      } finally {
        active.delete(row.file);
        done++;
        render();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: jobs }, worker));
  } finally {
    bar?.clear();
    rt.agent.destroy();
    if (!rt.config.library.workDir) rmSync(rt.workDir, { recursive: true, force: true });
  }
  process.stdout.write(renderTable(outcomes) + '\n');
  const count = (s: RowOutcome['status']) => outcomes.filter((o) => o.status === s).length;
  process.stdout.write(`ingested ${count('ingested')}, skipped ${count('skipped')}, failed ${count('failed')}\n`);
  return count('failed') > 0 ? 1 : 0;
}

function renderTable(rows: RowOutcome[]): string {
  const cells = [['FILE', 'RESULT', 'SONG ID', 'DETAIL'], ...rows.map((r) => [r.file, r.status, r.id ?? '', r.detail])];
  const widths = cells[0]!.map((_, c) => Math.min(60, Math.max(...cells.map((r) => r[c]!.length))));
  return cells.map((r) => r.map((cell, c) => (c === 3 ? cell : cell.slice(0, widths[c]).padEnd(widths[c]!))).join('  ')).join('\n');
}

/** One status line on stderr: redrawn in place on a terminal, a line every few seconds otherwise. */
class ProgressLine {
  private lastPlainMs = 0;
  private lastText = '';
  constructor(private readonly out: NodeJS.WriteStream) {}
  show(name: string, p: IngestProgress): void {
    const pct = p.fraction !== undefined ? ` ${bar(p.fraction)} ${Math.round(p.fraction * 100)}%` : '';
    this.raw(`${name}: ${p.stage}${pct}`);
  }
  raw(text: string): void {
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[K${text.slice(0, (this.out.columns || 100) - 1)}`);
    } else if (Date.now() - this.lastPlainMs > 2000 && text !== this.lastText) {
      this.out.write(text + '\n');
      this.lastPlainMs = Date.now();
    }
    this.lastText = text;
  }
  clear(): void {
    if (this.out.isTTY) this.out.write('\r\x1b[K');
  }
}

function bar(fraction: number): string {
  const width = 20;
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return '[' + '#'.repeat(filled) + '.'.repeat(width - filled) + ']';
}
