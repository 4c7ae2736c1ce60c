// Failed-token lockout: a client address that presents more than `limit`
// invalid tokens within `windowMs` is locked out for `windowMs` — every
// request of it carrying credentials is refused (429 HOARD_EAUTH_LOCKED)
// without looking at the token, a valid one included. Refusing only the
// invalid ones would not slow a guesser at all: 429 would mean "wrong",
// 200 "right", at full speed. The cost is that clients sharing one address
// (a NAT'd runner fleet) share the lockout; the default limit (60 a minute)
// is far above what a misconfigured client that retries sends, and the
// warning names the address.
//
// Not counted: requests without credentials (anonymous reads are a policy
// matter, not guessing), loopback addresses (local processes are trusted
// without a tokens file anyway; behind a local reverse proxy every client
// would share one address — limit there). IPv6 addresses count per /64: a
// single host holds a whole /64 and could rotate through it.
//
// Memory is bounded: at most MAX_TRACKED addresses; past that, expired
// entries go first, then the oldest. An attacker who floods it with
// addresses only makes the limiter forget; it never grows.

import { isIPv6 } from 'node:net';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { isLoopback } from './auth.ts';

/** Addresses tracked at once (~100 bytes each). */
const MAX_TRACKED = 10_000;

export interface AuthFailureOptions {
  /** Invalid tokens an address may present per window; 0 = no lockout. */
  limit: number;
  windowMs: number;
  clock?: Clock;
  /** Called once when an address gets locked out (log it). */
  onLockout?: (key: string) => void;
}

interface Entry {
  start: number;
  failures: number;
  lockedUntil: number;
}

export class AuthFailureLimiter {
  readonly #opts: AuthFailureOptions;
  readonly #clock: Clock;
  readonly #byKey = new Map<string, Entry>();

  constructor(opts: AuthFailureOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
  }

  /** Milliseconds `address` stays locked out (0: not locked, or not subject to the limit). */
  lockedFor(address: string | undefined): number {
    const key = this.#keyOf(address);
    if (key === undefined) return 0;
    const e = this.#byKey.get(key);
    if (!e) return 0;
    return Math.max(0, e.lockedUntil - this.#clock.now());
  }

  /** Counts an invalid token presented by `address`. */
  failed(address: string | undefined): void {
    const key = this.#keyOf(address);
    if (key === undefined) return;
    const now = this.#clock.now();
    let e = this.#byKey.get(key);
    if (!e || (now - e.start >= this.#opts.windowMs && e.lockedUntil <= now)) {
      if (e)
        this.#byKey.delete(key); // re-inserted last: the map stays in age order
      else this.#makeRoom(now);
      e = { start: now, failures: 0, lockedUntil: 0 };
      this.#byKey.set(key, e);
    }
    e.failures++;
    if (e.failures > this.#opts.limit && e.lockedUntil <= now) {
      e.lockedUntil = now + this.#opts.windowMs;
      this.#opts.onLockout?.(key);
    }
  }

  /**
   * Locks out `key` (a key onLockout reported) for a window, as if it had
   * failed past the limit here: how a read worker learns of the primary's
   * lockouts, so a locked-out address is refused in one place.
   */
  lock(key: string): void {
    if (this.#opts.limit <= 0) return;
    const now = this.#clock.now();
    this.#byKey.delete(key);
    this.#makeRoom(now);
    this.#byKey.set(key, {
      start: now,
      failures: this.#opts.limit + 1,
      lockedUntil: now + this.#opts.windowMs,
    });
  }

  /** The keys locked out now. */
  lockedKeys(): string[] {
    const now = this.#clock.now();
    return [...this.#byKey].filter(([, e]) => e.lockedUntil > now).map(([k]) => k);
  }

  /** Addresses tracked now (for tests of the bound). */
  get size(): number {
    return this.#byKey.size;
  }

  #keyOf(address: string | undefined): string | undefined {
    if (this.#opts.limit <= 0 || !address || isLoopback(address)) return undefined;
    if (address.startsWith('::ffff:')) return address.slice(7);
    if (!isIPv6(address)) return address;
    return `${expand(address).slice(0, 4).join(':')}::/64`;
  }

  #makeRoom(now: number): void {
    if (this.#byKey.size < MAX_TRACKED) return;
    // The map is in window-start order: expired entries are at its head.
    for (const [k, e] of this.#byKey) {
      if (now - e.start < this.#opts.windowMs || e.lockedUntil > now) break;
      this.#byKey.delete(k);
    }
    while (this.#byKey.size >= MAX_TRACKED) {
      const oldest = this.#byKey.keys().next().value as string;
      this.#byKey.delete(oldest);
    }
  }
}

/** The eight 16-bit groups of an IPv6 address, as lowercase hex without leading zeros. */
function expand(address: string): string[] {
  const [head, tail = ''] = address.split('%')[0].split('::');
  const h = head ? head.split(':') : [];
  const t = address.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => (g.includes('.') ? g : Number.parseInt(g || '0', 16).toString(16)));
}
