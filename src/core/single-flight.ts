// Single-flight: concurrent calls for one key share one in-flight operation.
// The key is freed the moment the operation settles, before any waiter runs,
// so a failure reaches every waiter that joined it and the next call after it
// starts a fresh attempt (no cached failures, no lost wake-ups).

export class SingleFlight<K, V> {
  #inflight = new Map<K, Promise<V>>();
  /** Calls that joined an operation already in flight (for metrics). */
  coalesced = 0;

  /** Runs `fn` for `key` unless a call for it is in flight, in which case joins it. */
  do(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.#inflight.get(key);
    if (existing) {
      this.coalesced++;
      return existing;
    }
    let p: Promise<V>;
    try {
      p = Promise.resolve(fn());
    } catch (err) {
      p = Promise.reject(err);
    }
    // Delete in the settle handler attached first, so that by the time any
    // waiter's continuation runs, a new call for the key starts afresh.
    const tracked = p.finally(() => {
      if (this.#inflight.get(key) === tracked) this.#inflight.delete(key);
    });
    this.#inflight.set(key, tracked);
    return tracked;
  }

  /** Whether an operation for `key` is in flight. */
  has(key: K): boolean {
    return this.#inflight.has(key);
  }

  get size(): number {
    return this.#inflight.size;
  }
}
