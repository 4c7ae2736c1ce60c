// The capability a bounded tier offers whoever reports on it (the server's
// console, scripts reading /v1/status): how full it is. Only tiers that keep
// their own accounting implement it — the memory store (its LRU) and the
// bounded disk store (its index) — so reporting costs a few field reads and
// never a scan; an unbounded filesystem store does not know its size without
// walking its directories, and a bucket never does.

import type { Digest } from '../core/digest.ts';

export interface TierUsage {
  /** Bytes of resident blobs. */
  bytes: number;
  blobs: number;
  /** The tier's bound in bytes (0: unbounded). */
  maxBytes: number;
  /** Blobs evicted since start. */
  evictions: number;
}

export interface UsageReporting {
  usage(): TierUsage;
  /** The `n` largest resident blobs, largest first (from the tier's own accounting). */
  largest?(n: number): { digest: Digest; size: number }[];
}

export function reportsUsage(store: object): store is UsageReporting {
  return typeof (store as Partial<UsageReporting>).usage === 'function';
}

/** The `n` largest of `items` by size, largest first, ties by digest (one pass, O(items · log n)). */
export function largestOf(
  items: Iterable<{ digest: Digest; size: number }>,
  n: number,
): { digest: Digest; size: number }[] {
  const top: { digest: Digest; size: number }[] = [];
  const before = (a: { digest: Digest; size: number }, b: { digest: Digest; size: number }) =>
    a.size > b.size || (a.size === b.size && a.digest < b.digest);
  if (n <= 0) return top;
  for (const it of items) {
    const e = { digest: it.digest, size: it.size };
    if (top.length === n) {
      if (!before(e, top[n - 1])) continue;
      top[n - 1] = e;
    } else top.push(e);
    for (let i = top.length - 1; i > 0 && before(top[i], top[i - 1]); i--)
      [top[i], top[i - 1]] = [top[i - 1], top[i]];
  }
  return top;
}
