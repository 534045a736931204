// What a load-test level measured, from the workers' counters: pure arithmetic and formatting
// (no I/O), so the figures a run prints are the figures its JSON holds.

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Spread {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const r = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : NaN);
  return { count: sorted.length, p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)), max: r(sorted[sorted.length - 1] ?? NaN) };
}

export interface LevelResult {
  /** Rooms (streams) held during the window. */
  streams: number;
  /** No stall began or went on, no request failed and no room gave up during the window. */
  clean: boolean;
  /** A find-max level stops at its first stall rather than running out its window. */
  endedEarly: boolean;
  windowS: number;
  bytesPerS: number;
  gbitPerS: number;
  /** Throughput in streams of the nominal bitrate (--bitrate). */
  streamsAtBitrate: number;
  stalls: number;
  stallS: number;
  /** Stall time over the room-seconds of playback in the window. */
  rebufferRatio: number;
  errors: number;
  gaveUp: number;
  errorSamples: string[];
  songsStarted: number;
  segmentDownloadMs: Spread;
  /** Segment download time over the segment's duration (1 = just in time). */
  segmentDownloadOverDuration: Spread;
  startupMs: Spread;
  /** The load generator (controller + workers): percent of one core, and cores per Gbit/s served. */
  generatorCpuPercent: number;
  generatorCoresPerGbit: number;
  /** The whole machine (all processes, kernel included): busy percent of all its cores. */
  machineBusyPercent: number;
  /** The servers named by --pids (when given): the same two figures. */
  serverCpuPercent?: number;
  serverCoresPerGbit?: number;
}

export interface WindowCounters {
  bytes: number;
  stalls: number;
  stallMs: number;
  errors: number;
  gaveUp: number;
  songsStarted: number;
  playingRoomSeconds: number;
  generatorCpuS: number;
  serverCpuS?: number;
  machineBusyS: number;
  machineCores: number;
}

export function levelResult(
  streams: number,
  windowS: number,
  d: WindowCounters,
  samples: { downloadMs: number[]; durationMs: number[]; startupMs: number[]; errors: string[] },
  bitrateBitsPerS: number,
  endedEarly: boolean,
): LevelResult {
  const bytesPerS = d.bytes / windowS;
  const gbitPerS = (bytesPerS * 8) / 1e9;
  const ratios = samples.downloadMs.map((ms, i) => ms / Math.max(1, samples.durationMs[i]!));
  const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;
  const cores = (cpuS: number): number => cpuS / windowS;
  const result: LevelResult = {
    streams,
    clean: d.stalls === 0 && d.stallMs === 0 && d.errors === 0 && d.gaveUp === 0,
    endedEarly,
    windowS: round(windowS, 1),
    bytesPerS: Math.round(bytesPerS),
    gbitPerS: round(gbitPerS),
    streamsAtBitrate: round((bytesPerS * 8) / bitrateBitsPerS, 1),
    stalls: d.stalls,
    stallS: round(d.stallMs / 1000),
    rebufferRatio: d.playingRoomSeconds > 0 ? round(d.stallMs / 1000 / d.playingRoomSeconds, 5) : 0,
    errors: d.errors,
    gaveUp: d.gaveUp,
    errorSamples: samples.errors.slice(0, 10),
    songsStarted: d.songsStarted,
    segmentDownloadMs: spread(samples.downloadMs),
    segmentDownloadOverDuration: spread(ratios),
    startupMs: spread(samples.startupMs),
    generatorCpuPercent: round(cores(d.generatorCpuS) * 100, 1),
    generatorCoresPerGbit: gbitPerS > 0 ? round(cores(d.generatorCpuS) / gbitPerS) : NaN,
    machineBusyPercent: round((cores(d.machineBusyS) / d.machineCores) * 100, 1),
  };
  if (d.serverCpuS !== undefined) {
    result.serverCpuPercent = round(cores(d.serverCpuS) * 100, 1);
    result.serverCoresPerGbit = gbitPerS > 0 ? round(cores(d.serverCpuS) / gbitPerS) : NaN;
  }
  return result;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

/** The summary table: one row per level. */
export function formatTable(levels: LevelResult[]): string {
  const hasServer = levels.some((l) => l.serverCpuPercent !== undefined);
  const head = ['streams', 'result', 'Gbit/s', 'MB/s', 'stalls', 'stall s', 'errors', 'seg p50 ms', 'seg p99 ms', 'p99/dur', 'startup p50', 'startup p99', 'gen CPU%', 'machine busy%', ...(hasServer ? ['srv CPU%', 'srv cores/Gbit'] : [])];
  const rows = levels.map((l) => [
    String(l.streams),
    l.clean ? 'ok' : l.endedEarly ? 'STALL (stopped)' : 'STALL',
    l.gbitPerS.toFixed(2),
    (l.bytesPerS / 1e6).toFixed(0),
    String(l.stalls),
    l.stallS.toFixed(1),
    String(l.errors + l.gaveUp),
    fmt(l.segmentDownloadMs.p50),
    fmt(l.segmentDownloadMs.p99),
    Number.isFinite(l.segmentDownloadOverDuration.p99) ? l.segmentDownloadOverDuration.p99.toFixed(2) : '-',
    fmt(l.startupMs.p50),
    fmt(l.startupMs.p99),
    l.generatorCpuPercent.toFixed(0),
    Number.isFinite(l.machineBusyPercent) ? l.machineBusyPercent.toFixed(0) : '-',
    ...(hasServer ? [l.serverCpuPercent?.toFixed(0) ?? '-', l.serverCoresPerGbit !== undefined && Number.isFinite(l.serverCoresPerGbit) ? l.serverCoresPerGbit.toFixed(2) : '-'] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => pad(c, widths[i]!)).join('  ')).join('\n');
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(0) : '-';
}

/** A byte rate as both units an operator reads: MB/s and Gbit/s. */
export function formatRate(bytesPerS: number): string {
  return `${(bytesPerS / 1e6).toFixed(0)} MB/s = ${((bytesPerS * 8) / 1e9).toFixed(2)} Gbit/s`;
}
