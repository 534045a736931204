// Every disk operation gets a deadline, so a hung disk cannot hold a request (or the start-up
// scan) forever. The operation itself cannot be cancelled: it keeps a libuv thread until the
// kernel answers. We stop waiting, count it as a disk fault and let the caller move on; when a
// late result does arrive, `onLate` releases what it holds (a file handle, for instance).

export class DiskTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(what: string, timeoutMs: number) {
    super(`${what}: no answer from the disk within ${timeoutMs} ms`);
  }
}

export function withDeadline<T>(work: Promise<T>, timeoutMs: number, what: string, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new DiskTimeoutError(what, timeoutMs));
    }, timeoutMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (!timedOut) resolve(value);
        else onLate?.(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!timedOut) reject(error);
      },
    );
  });
}

/**
 * Closes a file handle without waiting. Closing is never worth a request's time: the data that
 * matters was fsynced (with a deadline) before, and on a hung disk the close waits in the libuv
 * pool instead of in our request. Errors are dropped: there is nothing left to do with the fd.
 */
export function closeQuietly(fh: { close(): Promise<void> } | undefined): void {
  fh?.close().catch(() => {});
}
