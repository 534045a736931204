// Concurrent callers asking for the same key share one call (N rooms asking for the same cold
// segment cause one storage read). Pure: the work is a function the caller passes in. An error
// reaches every caller of that flight; the key is free again as soon as the flight settles, so
// the next caller starts a fresh attempt.
export class SingleFlight<V> {
  private readonly flights = new Map<string, Promise<V>>();

  get inFlight(): number {
    return this.flights.size;
  }

  has(key: string): boolean {
    return this.flights.has(key);
  }

  /** `joined` is true when this caller shares a flight another caller started. */
  run(key: string, work: () => Promise<V>): { promise: Promise<V>; joined: boolean } {
    const existing = this.flights.get(key);
    if (existing) return { promise: existing, joined: true };
    let promise: Promise<V>;
    try {
      promise = work();
    } catch (error) {
      promise = Promise.reject(error);
    }
    const tracked = promise.finally(() => {
      if (this.flights.get(key) === tracked) this.flights.delete(key);
    });
    this.flights.set(key, tracked);
    return { promise: tracked, joined: false };
  }
}
