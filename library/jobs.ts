// The library's two bounded pieces of state, kept free of HTTP so they can be tested alone:
//   JobSlots  how many uploads may be in the building at once (receiving, waiting, packaging)
//   JobBoard  what the web page polls: the stage of each upload it started, for a while
// Both have a hard size: at 9 pm a burst of uploads must get a quick 503, not a full disk.
import type { IngestResult, IngestStage } from './ingest/ingest.js';

/**
 * `slots` songs are packaged at once; at most `queueMax` more wait for a slot. An upload is
 * admitted before its body is read, so uploads being received count against the queue too:
 * the disk never holds more than `slots + queueMax` uploads.
 */
export class JobSlots {
  private running = 0;
  private admitted = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly slots: number, readonly queueMax: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new Error('slots must be a positive integer');
    if (!Number.isInteger(queueMax) || queueMax < 0) throw new Error('queueMax must be a non-negative integer');
  }

  /** Songs packaging now. */
  get runningCount(): number {
    return this.running;
  }

  /** Admitted uploads not packaging yet (being received or waiting for a slot). */
  get queuedCount(): number {
    return this.admitted - this.running;
  }

  /** Reserves a place, or undefined when the library is full (answer 503). */
  tryAdmit(): Admission | undefined {
    if (this.admitted >= this.slots + this.queueMax) return undefined;
    this.admitted += 1;
    let released = false;
    let ran = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.admitted -= 1;
    };
    return {
      release,
      run: async <T>(fn: () => Promise<T>): Promise<T> => {
        if (released || ran) throw new Error('an admission runs once');
        ran = true;
        await this.acquire();
        try {
          return await fn();
        } finally {
          this.running -= 1;
          release();
          this.waiters.shift()?.();
        }
      },
    };
  }

  private acquire(): Promise<void> {
    if (this.running < this.slots) {
      this.running += 1;
      return Promise.resolve();
    }
    // FIFO: whoever waited longest goes first. The slot is handed over, not re-counted.
    return new Promise((resolve) => this.waiters.push(() => {
      this.running += 1;
      resolve();
    }));
  }
}

export interface Admission {
  /** Waits for a packaging slot, runs `fn`, then frees the slot and the admission. Once. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Frees the admission of an upload that will not run (refused, disconnected). Idempotent. */
  release(): void;
}

/** Stages the page shows: the ingest's own, plus the two before it and the failure. */
export type JobStage = 'receiving' | 'queued' | IngestStage | 'failed';

export interface JobState {
  stage: JobStage;
  /** 0..1 within the stage when known. */
  fraction?: number;
  error?: string;
  /** HTTP status of the failure (the same the upload request got). */
  status?: number;
  result?: IngestResult;
}

/** Client-chosen job ids: random, URL- and log-safe. */
export const JOB_ID_RE = /^[A-Za-z0-9_-]{8,64}$/;

/**
 * Progress of recent uploads by the client's job id. Entries expire `ttlMs` after their last
 * update; past `maxEntries` the least recently updated goes (Map keeps insertion order and an
 * update re-inserts).
 */
export class JobBoard {
  private readonly jobs = new Map<string, { state: JobState; updatedAtMs: number }>();

  constructor(private readonly ttlMs: number, private readonly maxEntries: number, private readonly nowMs: () => number = Date.now) {}

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  get(id: string): JobState | undefined {
    const entry = this.jobs.get(id);
    if (!entry) return undefined;
    if (this.nowMs() - entry.updatedAtMs > this.ttlMs) {
      this.jobs.delete(id);
      return undefined;
    }
    return entry.state;
  }

  set(id: string, state: JobState): void {
    this.jobs.delete(id);
    this.jobs.set(id, { state, updatedAtMs: this.nowMs() });
    this.evict();
  }

  get size(): number {
    return this.jobs.size;
  }

  private evict(): void {
    const now = this.nowMs();
    // Oldest first: stop at the first entry that is neither expired nor over the count.
    for (const [id, entry] of this.jobs) {
      if (this.jobs.size > this.maxEntries || now - entry.updatedAtMs > this.ttlMs) this.jobs.delete(id);
      else break;
    }
  }
}
