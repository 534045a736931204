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
