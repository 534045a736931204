// `ktv loadtest`: paced, hls.js-like room clients against a streamer (or any server with the same
// /hls/{song}/… layout); prints live progress, a summary table, and `--json FILE`.
//
//   ktv loadtest --target URL --streams N [--duration S] [--bitrate 45M] [--json FILE]
//   ktv loadtest --target URL --find-max [--start N --step N --max N --duration S --settle S]
//
// Exit codes: 0 the run held (fixed: zero stalls and errors; find-max: some level held), 1 it did
// not, 2 bad flags, 3 the target could not be reached or lists no songs.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { runFindMax, runFixed, type LoadOptions, type LoadReport } from '../loadtest/run.js';
import { formatTable } from '../loadtest/report.js';
import { parse, UsageError } from './args.js';

const OPTIONS = {
  target: { type: 'string' },
  streams: { type: 'string' },
  'find-max': { type: 'boolean' },
  duration: { type: 'string' },
  bitrate: { type: 'string' },
  ramp: { type: 'string' },
  start: { type: 'string' },
  step: { type: 'string' },
  max: { type: 'string' },
  settle: { type: 'string' },
  resolution: { type: 'string' },
  workers: { type: 'string' },
  zipf: { type: 'string' },
  toggle: { type: 'string' },
  skip: { type: 'string' },
  seed: { type: 'string' },
  q: { type: 'string' },
  buffer: { type: 'string' },
  pids: { type: 'string' },
  json: { type: 'string' },
  quiet: { type: 'boolean' },
} as const;

const HELP = `usage: ktv loadtest --target URL (--streams N | --find-max) [options]

  --target URL        streamer base URL (songs from its GET /api/v1/songs)
  --streams N         hold N rooms (streams) for --duration seconds after a --ramp
  --find-max          step up from --start by --step until a level stalls, then bisect:
                      prints the largest N that held --duration seconds with zero stalls
  --duration S        fixed: measured seconds after the ramp (60); find-max: hold per level (60)
  --bitrate R         nominal stream rate, e.g. 45M (default), for "streams' worth" figures
  --ramp S            fixed: rooms start spread over S seconds (10)
  --start N --step N --max N      find-max levels (50, 50, 1000)
  --settle S          find-max: new rooms start over S seconds before a level is measured (20)
  --resolution N      find-max: stop bisecting within N streams (10)
  --workers N         load-generator processes (default: the machine's cores)
  --zipf S            popularity exponent over the library, by title (1)
  --toggle F          share of songs with a mid-song 原唱/伴唱 toggle (0.3)
  --skip F            share of songs skipped part-way (0.2)
  --buffer S          most media seconds fetched ahead (30, like hls.js)
  --q TEXT            only songs matching this search
  --seed N            song choices repeat for the same seed (1)
  --pids P,P          local server pids whose CPU is measured per level
  --json FILE         write the report as JSON
  --quiet             no live progress lines`;

function num(name: string, value: string | undefined, fallback: number, check: (n: number) => boolean = (n) => n > 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} ${value}: not a valid value`);
  return n;
}

/** "45M", "45000000", "2.5G", "800k" → bits per second. */
export function parseBitrate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)(?:bps|bit\/s)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--bitrate ${text}: expected a rate like 45M or 45000000`);
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bits = Number(m[1]) * scale;
  if (!(bits > 0)) throw new UsageError(`--bitrate ${text}: must be above zero`);
  return bits;
}

export async function runLoadtest(argv: string[]): Promise<number> {
  const { values } = parse(argv, OPTIONS);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (!values.target) throw new UsageError('--target URL is required (a streamer, e.g. http://127.0.0.1:8080)');
  let target: URL;
  try {
    target = new URL(values.target);
  } catch {
    throw new UsageError(`--target ${values.target}: not a URL`);
  }
  if (target.protocol !== 'http:') throw new UsageError('--target must be an http:// URL');
  const findMax = values['find-max'] === true;
  if (findMax === (values.streams !== undefined)) throw new UsageError('give either --streams N or --find-max');
  const int = (n: number): boolean => Number.isInteger(n) && n > 0;
  const fraction = (n: number): boolean => n >= 0 && n <= 1;
  const options: LoadOptions = {
    target: target.origin,
    query: values.q,
    bitrateBitsPerS: parseBitrate(values.bitrate ?? '45M'),
    workers: values.workers === undefined ? undefined : num('workers', values.workers, 1, (n) => int(n) && n <= 64),
    zipfExponent: num('zipf', values.zipf, 1, (n) => n >= 0 && n <= 10),
    toggleFraction: num('toggle', values.toggle, 0.3, fraction),
    skipFraction: num('skip', values.skip, 0.2, fraction),
    seed: num('seed', values.seed, 1, (n) => Number.isInteger(n)),
    maxBufferS: num('buffer', values.buffer, 30),
    serverPids: values.pids ? values.pids.split(',').map((p) => num('pids', p, 0, int)) : undefined,
    progress: values.quiet ? undefined : (line) => process.stderr.write(line + '\n'),
  };
  const durationS = num('duration', values.duration, 60);
  let report: LoadReport;
  try {
    report = findMax
      ? await runFindMax(options, {
          startStreams: num('start', values.start, 50, int),
          stepStreams: num('step', values.step, 50, int),
          maxStreams: num('max', values.max, 1000, int),
          holdS: durationS,
          settleS: num('settle', values.settle, 20, (n) => n >= 0),
          resolutionStreams: num('resolution', values.resolution, 10, int),
        })
      : await runFixed(options, { streams: num('streams', values.streams, 1, (n) => int(n) && n <= 100_000), durationS, rampS: num('ramp', values.ramp, 10, (n) => n >= 0) });
  } catch (error) {
    const e = error as Error & { cause?: { code?: string } };
    if (e.name === 'TypeError' || e.name === 'TimeoutError' || /HTTP \d+|lists no songs/.test(e.message)) {
      process.stderr.write(`ktv loadtest: cannot use ${options.target}: ${e.message}${e.cause?.code ? ` (${e.cause.code})` : ''}\n`);
      return 3;
    }
    throw error;
  }
  process.stdout.write(summary(report) + '\n');
  if (values.json) {
    mkdirSync(dirname(values.json), { recursive: true });
    writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
  }
  if (findMax) return (report.maxStallFreeStreams ?? 0) > 0 ? 0 : 1;
  return report.levels.every((l) => l.clean) ? 0 : 1;
}

export function summary(r: LoadReport): string {
  const lines = [
    `ktv loadtest → ${r.target}: ${r.songs} songs (Zipf ${r.zipfExponent}), ${r.workers} worker process(es), nominal ${(r.bitrateBitsPerS / 1e6).toFixed(1)} Mbit/s per stream` +
      (r.libraryBitsPerS ? `, library ${(r.libraryBitsPerS / 1e6).toFixed(1)} Mbit/s` : ''),
    formatTable(r.levels),
    `songs started ${r.songsStarted}, vocal toggles ${r.toggles}`,
  ];
  if (r.mode === 'find-max') lines.push(`max stall-free streams: ${r.maxStallFreeStreams ?? 0}`);
  else {
    const l = r.levels[0]!;
    lines.push(l.clean ? `${l.streams} streams held with zero stalls` : `${l.streams} streams: ${l.stalls} stalls (${l.stallS} s), ${l.errors} failed requests, ${l.gaveUp} songs given up`);
  }
  const errors = r.levels.flatMap((l) => l.errorSamples).slice(0, 5);
  if (errors.length > 0) lines.push('first errors:', ...errors.map((e) => `  ${e}`));
  return lines.join('\n');
}
