// Time as a dependency. Code whose correctness depends on the order of
// moments (the git freshness bound, fetch budgets, warning intervals) reads
// time through a Clock it was given, so tests can advance time instead of
// sleeping and hoping the scheduler ordered things as intended.
//
// `now()` is monotonic milliseconds (systemClock: performance.now()), never
// wall time: it must not jump with NTP or be compared with persisted
// timestamps (those use Date.now()).

import { setTimeout as sleepFor } from 'node:timers/promises';

export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  now(): number;
  /**
   * Resolves after `ms` of this clock's time, or rejects when `signal`
   * aborts. Optional: without it, real time (setTimeout) is used.
   */
  sleep?(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock & Required<Pick<Clock, 'sleep'>> = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleepFor(Math.max(0, ms), undefined, { signal }),
};

/** `clock.sleep`, or real time when the clock has none. */
export function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return clock.sleep ? clock.sleep(ms, signal) : systemClock.sleep(ms, signal);
}

/**
 * `p`'s value, or 'timeout' once `ms` of the clock's time have passed first.
 * The sleep is cancelled when `p` settles, so no timer outlives the race.
 */
export async function raceTimeout<T>(p: Promise<T>, ms: number, clock: Clock): Promise<T | 'timeout'> {
  const ac = new AbortController();
  const timeout = sleepOn(clock, ms, ac.signal).then(
    () => 'timeout' as const,
    () => 'timeout' as const,
  );
  try {
    return await Promise.race([p, timeout]);
  } finally {
    ac.abort();
  }
}
