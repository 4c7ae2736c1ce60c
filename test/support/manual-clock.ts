// A Clock (src/core/clock.ts) that moves only when a test advances it, so
// "b arrives 100 ms after a" is a statement, not a sleep and a hope. Sleeps
// on it resolve when the clock is advanced past their end (or abort).

import type { Clock } from '../../src/core/clock.ts';

export class ManualClock implements Clock {
  #now: number;
  #sleepers = new Set<{ until: number; wake: () => void }>();

  constructor(start = 1_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  advance(ms: number): void {
    this.#now += ms;
    for (const s of [...this.#sleepers]) if (s.until <= this.#now) s.wake();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = {
        until: this.#now + ms,
        wake: () => {
          this.#sleepers.delete(s);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#sleepers.delete(s);
        reject(signal?.reason);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#sleepers.add(s);
      if (ms <= 0) s.wake();
    });
  }

  /** Sleeps not yet woken (a test can wait until something is waiting on the clock). */
  get sleeping(): number {
    return this.#sleepers.size;
  }
}
