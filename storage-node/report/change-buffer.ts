// Changes not yet delivered to one tracker, bounded: past `maxEntries` the buffer gives up
// (the reporter then sends a full report, which supersedes every buffered change).
import type { Change } from '../store/change-log.js';

export class ChangeBuffer {
  private items: Change[] = [];

  constructor(private readonly maxEntries: number) {}

  get length(): number {
    return this.items.length;
  }

  /** False when full: the buffer is emptied and the caller must fall back to a full report. */
  push(change: Change): boolean {
    if (this.items.length >= this.maxEntries) {
      this.items = [];
      return false;
    }
    this.items.push(change);
    return true;
  }

  /** The oldest changes with consecutive sequence numbers, at most `max` (one message). */
  peekRun(max: number): Change[] {
    const run: Change[] = [];
    for (const c of this.items) {
      if (run.length >= max) break;
      if (run.length > 0 && c.seq !== run[run.length - 1]!.seq + 1) break;
      run.push(c);
    }
    return run;
  }

  /** Forgets every change up to and including `seq` (delivered, or covered by a full report). */
  dropThrough(seq: number): void {
    let n = 0;
    while (n < this.items.length && this.items[n]!.seq <= seq) n++;
    if (n > 0) this.items.splice(0, n);
  }

  clear(): void {
    this.items = [];
  }
}
