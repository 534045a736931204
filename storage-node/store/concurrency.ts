// Bounds on parallel work: a counting semaphore (refuse past the limit) and a bounded map.

/** Counts holders; `tryAcquire` refuses past the limit instead of queueing (callers answer 503). */
export class Semaphore {
  private held = 0;
  constructor(readonly limit: number) {}
  tryAcquire(): boolean {
    if (this.held >= this.limit) return false;
    this.held += 1;
    return true;
  }
  release(): void {
    this.held = Math.max(0, this.held - 1);
  }
  get inUse(): number {
    return this.held;
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight; the first error stops it. */
export async function forEachLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failed: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failed !== undefined) return;
      const next = iterator.next();
      if (next.done) return;
      try {
        await fn(next.value);
      } catch (error) {
        failed ??= error;
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failed !== undefined) throw failed;
}
