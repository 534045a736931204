// CPU seconds of a local process from /proc (Linux): the load test reports its own CPU and, when
// told the servers' pids, theirs, so "CPU per Gbit/s" compares like with like.
import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_S = 100;

/** User+system CPU seconds a process has used so far; NaN when it is gone or not readable. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: state is [0]; utime is field 14 overall → index 11 here.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine has been busy (all cores, softirq included) and its core count; /proc/stat. */
export function machineBusySeconds(): { busyS: number; cores: number } {
  try {
    const text = readFileSync('/proc/stat', 'utf8');
    const first = text.slice(0, text.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
    const total = first.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (first[3] ?? 0) + (first[4] ?? 0);
    const cores = (text.match(/^cpu\d+ /gm) ?? []).length || 1;
    return { busyS: (total - idle) / CLOCK_TICKS_PER_S, cores };
  } catch {
    return { busyS: NaN, cores: 1 };
  }
}
