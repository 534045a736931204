// A disk's health, as plain data and pure functions (no I/O, no clock: the caller passes `nowMs`),
// so the whole state machine is unit-tested without disks. `Disk` (disk.ts) feeds it what it
// observes: probes, errors and timeouts of real operations, slow operations, free space, the
// tracker's suspect reports and the operator's setting; `computeDiskState` turns that into one
// of DISK_STATES with a human reason.
//
//   operator mask ──────────────────────────────────────────────► masked ("operator: <note>")
//   EIO-class error, directory gone, faultsToMask faults in window ► masked (latched)
//   masked (latched) ─ recoveryProbes good probes in a row ─► verify every blob ─► trusted again
//   operator drain ─────────────────────────────────────────────► draining (reads, no writes)
//   free space under the floor, ENOSPC ─────────────────────────► readonly
//   faultsToSuspect faults in window ───────────────────────────► suspect (used, watched)
//   otherwise ──────────────────────────────────────────────────► healthy
//
// Why a latch: a disk that failed must not serve again just because the fault window moved on;
// it is trusted again only after it proved itself (probes) and its blobs were re-hashed.
import type { DiskOperatorSetting, DiskState } from '../../common/contracts.js';

export interface HealthParams {
  freeFloorBytes: number;
  faultWindowMs: number;
  faultsToSuspect: number;
  faultsToMask: number;
  recoveryProbes: number;
  slowFactor: number;
  slowFloorMs: number;
}

/** Defaults of config/schema.ts, for callers that only know the free-space floor. */
export const DEFAULT_HEALTH: Omit<HealthParams, 'freeFloorBytes'> = {
  faultWindowMs: 60_000,
  faultsToSuspect: 1,
  faultsToMask: 3,
  recoveryProbes: 3,
  slowFactor: 10,
  slowFloorMs: 200,
};

/** Why a disk was masked (and stays so until it is trusted again). */
export type MaskCause = 'io-error' | 'gone' | 'faults' | 'unmask' | 'start';

export interface FaultEntry {
  atMs: number;
  what: string;
}

/** Good probe durations kept for the disk's normal latency (their median). */
export const NORMAL_SAMPLES = 15;
/** Most fault entries kept (the window prunes them; this bounds a storm inside one window). */
const MAX_FAULTS = 256;

export interface DiskObservations {
  /** The disk's directory answered the last check (false once it vanished). */
  present: boolean;
  freeBytes: number;
  totalBytes: number;
  /** The mask latch: set by an EIO-class error, a vanished directory or too many faults. */
  fault?: { code: string; message: string; atMs: number; cause?: MaskCause };
  /** The last operation that failed for lack of space; cleared by a check that finds room. */
  noSpaceAtMs?: number;
  /** Counted faults (failed/slow probes, timeouts, slow ops, suspect reports), oldest first. */
  faults?: FaultEntry[];
  operator?: DiskOperatorSetting;
  operatorNote?: string;
  /** Good probes in a row. */
  okStreak?: number;
  /** Recent good probe durations, ms (bounded, oldest first). */
  probeMs?: number[];
  /** Re-hashing the blobs of a disk that came back, before it is trusted. */
  verifying?: { checked: number; total: number };
}

export interface DiskVerdict {
  state: DiskState;
  reason: string;
}

export function newObservations(): DiskObservations {
  return { present: true, freeBytes: 0, totalBytes: 0, faults: [], operator: 'none', operatorNote: '', okStreak: 0, probeMs: [] };
}

function paramsOf(p: number | HealthParams): HealthParams {
  return typeof p === 'number' ? { freeFloorBytes: p, ...DEFAULT_HEALTH } : p;
}

/** Faults inside the window ending at `nowMs`. */
export function recentFaults(obs: DiskObservations, windowMs: number, nowMs: number): FaultEntry[] {
  return (obs.faults ?? []).filter((f) => nowMs - f.atMs < windowMs);
}

export function computeDiskState(obs: DiskObservations, params: number | HealthParams, nowMs = Date.now()): DiskVerdict {
  const p = paramsOf(params);
  if (obs.operator === 'mask') return { state: 'masked', reason: `operator: ${obs.operatorNote || 'masked'}`.slice(0, 500) };
  if (!obs.present) return { state: 'masked', reason: 'disk directory is gone' };
  if (obs.fault) {
    const base = obs.fault.cause === 'unmask' || obs.fault.cause === 'faults' || obs.fault.cause === 'gone' ? obs.fault.message : `I/O fault (${obs.fault.code}): ${obs.fault.message}`;
    let progress = '';
    if (obs.verifying) progress = `; verifying blobs ${obs.verifying.checked}/${obs.verifying.total}`;
    else if ((obs.okStreak ?? 0) > 0) progress = `; recovering: ${Math.min(obs.okStreak ?? 0, p.recoveryProbes)}/${p.recoveryProbes} good probes`;
    return { state: 'masked', reason: `${base.slice(0, 400)}${progress}` };
  }
  if (obs.operator === 'drain') return { state: 'draining', reason: `operator: ${obs.operatorNote || 'draining'}`.slice(0, 500) };
  if (obs.noSpaceAtMs !== undefined) return { state: 'readonly', reason: 'disk full (ENOSPC on write)' };
  if (obs.freeBytes < p.freeFloorBytes) {
    return { state: 'readonly', reason: `free space ${obs.freeBytes} bytes is under the floor of ${p.freeFloorBytes} bytes` };
  }
  const recent = recentFaults(obs, p.faultWindowMs, nowMs);
  if (recent.length >= p.faultsToSuspect && recent.length > 0) {
    const last = recent[recent.length - 1]!;
    return { state: 'suspect', reason: `${recent.length} fault(s) in the last ${Math.round(p.faultWindowMs / 1000)} s; last: ${last.what}`.slice(0, 500) };
  }
  return { state: 'healthy', reason: '' };
}

// ---- transitions (each mutates `obs`; all pure apart from that) ------------------------------

/** An EIO-class error or a vanished directory: masked at once (the first reason is kept). */
export function noteHardFault(obs: DiskObservations, code: string, message: string, nowMs: number, cause: MaskCause = 'io-error'): void {
  obs.fault ??= { code, message, atMs: nowMs, cause };
  obs.okStreak = 0;
  if (cause === 'gone') obs.present = false;
}

/** One counted fault; masks the disk when the window holds faultsToMask of them. */
export function noteFault(obs: DiskObservations, what: string, nowMs: number, params: HealthParams): void {
  const faults = recentFaults(obs, params.faultWindowMs, nowMs);
  faults.push({ atMs: nowMs, what: what.slice(0, 200) });
  obs.faults = faults.slice(-MAX_FAULTS);
  obs.okStreak = 0;
  if (faults.length >= params.faultsToMask) {
    const windowS = Math.round(params.faultWindowMs / 1000);
    obs.fault ??= { code: 'FAULTS', message: `${faults.length} faults in ${windowS} s (last: ${what})`.slice(0, 400), atMs: nowMs, cause: 'faults' };
  }
}

/** The disk's normal probe duration: the median of recent good probes (0 before the first). */
export function normalMs(obs: DiskObservations): number {
  const s = [...(obs.probeMs ?? [])].sort((a, b) => a - b);
  if (s.length === 0) return 0;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Slower than slowFactor × normal and than the floor (the floor alone before there is a normal). */
export function isSlow(obs: DiskObservations, durationMs: number, params: HealthParams): boolean {
  return durationMs > Math.max(params.slowFloorMs, params.slowFactor * normalMs(obs));
}

export type ProbeOutcome = { ok: true; durationMs: number } | { ok: false; what: string };

/** A probe's result: good ones build the normal and the recovery streak; failed or slow ones are faults. */
export function noteProbe(obs: DiskObservations, outcome: ProbeOutcome, nowMs: number, params: HealthParams): 'ok' | 'slow' | 'failed' {
  if (!outcome.ok) {
    noteFault(obs, `probe failed: ${outcome.what}`, nowMs, params);
    return 'failed';
  }
  if (isSlow(obs, outcome.durationMs, params)) {
    // Not added to the samples: a disk that slows down must not raise its own normal.
    noteFault(obs, `slow probe: ${Math.round(outcome.durationMs)} ms (normal ${Math.round(normalMs(obs))} ms)`, nowMs, params);
    return 'slow';
  }
  obs.probeMs = [...(obs.probeMs ?? []), outcome.durationMs].slice(-NORMAL_SAMPLES);
  obs.okStreak = (obs.okStreak ?? 0) + 1;
  return 'ok';
}

/** A masked disk has proved itself with probes: time to verify its blobs (the operator's mask excepted). */
export function recoveryDue(obs: DiskObservations, params: HealthParams): boolean {
  return obs.fault !== undefined && obs.operator !== 'mask' && obs.present && obs.verifying === undefined && (obs.okStreak ?? 0) >= params.recoveryProbes;
}

/** Still on track during verification: no new fault reset the streak, nobody masked it. */
export function recoveryIntact(obs: DiskObservations, params: HealthParams): boolean {
  return obs.fault !== undefined && obs.operator !== 'mask' && obs.present && (obs.okStreak ?? 0) >= params.recoveryProbes;
}

/** Verified: trusted again with a clean fault log (old faults must not re-mask it at once). */
export function clearMask(obs: DiskObservations): void {
  delete obs.fault;
  delete obs.verifying;
  obs.faults = [];
}

/**
 * The operator's command. `unmask` of a masked disk does not trust it at once: the disk is
 * latched masked ('unmask') and goes through probes and verification like any recovered disk.
 */
export function applyOperator(obs: DiskObservations, action: 'drain' | 'mask' | 'unmask', note: string, nowMs: number): void {
  if (action === 'unmask') {
    if (obs.operator === 'mask') {
      obs.fault = { code: 'UNMASK', message: `unmasked by the operator${note ? ` (${note})` : ''}; checking it before it serves again`, atMs: nowMs, cause: 'unmask' };
      obs.okStreak = 0;
    }
    obs.operator = 'none';
    obs.operatorNote = '';
    return;
  }
  obs.operator = action;
  obs.operatorNote = note;
}

// ---- errors ----------------------------------------------------------------------------------

/** What an error from a disk operation says about the disk itself. */
export type IoErrorClass = 'fault' | 'no-space' | 'not-found' | 'other';

/** Errors that mean the device itself is failing: masked at once. */
const INSTANT_MASK_CODES = new Set(['EIO', 'EROFS', 'ENXIO', 'ENODEV', 'ESTALE', 'EUCLEAN', 'EBADMSG', 'ENOTCONN']);
/**
 * A deadline passed (deadline.ts): a fault, but a counted one. A disk that hiccups once under a
 * burst of reads is not lost; one that keeps timing out is masked after faultsToMask of them.
 */
const COUNTED_FAULT_CODES = new Set(['ETIMEDOUT']);

export function classifyIoError(error: unknown): IoErrorClass {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (INSTANT_MASK_CODES.has(code) || COUNTED_FAULT_CODES.has(code)) return 'fault';
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'no-space';
  if (code === 'ENOENT') return 'not-found';
  return 'other';
}

/** For a 'fault': mask at once, or count it. */
export function faultSeverity(error: unknown): 'instant' | 'counted' {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
  return COUNTED_FAULT_CODES.has(code) ? 'counted' : 'instant';
}

/** Healthy and suspect disks take new blobs (suspect: the tracker's placement avoids it). */
export function isWritable(state: DiskState): boolean {
  return state === 'healthy' || state === 'suspect';
}

/** Reads are served from every disk that is not masked (readonly, draining, suspect still read). */
export function isReadable(state: DiskState): boolean {
  return state !== 'masked';
}
