// The most-read blobs, approximately: a bounded count per digest fed by the
// tier hooks (one Map lookup and an increment per read, next to the
// Prometheus counter the same hook already bumps). Memory stays bounded
// however many distinct blobs are read: when the table is full a new digest
// is not counted, and after `capacity` such refusals every count is halved
// and the zeros dropped (amortised O(1) per read), so blobs read often keep
// their place and a newcomer read repeatedly gets in after the next decay.
// Counts are therefore relative ("read about this often lately"), not
// totals; the console says so.

import type { Digest } from '../core/digest.ts';

export interface TallyEntry {
  digest: Digest;
  reads: number;
}

export class ReadTally {
  readonly capacity: number;
  #counts = new Map<Digest, number>();
  #refused = 0;

  constructor(capacity = 1024) {
    this.capacity = capacity;
  }

  record(digest: Digest): void {
    const n = this.#counts.get(digest);
    if (n !== undefined) this.#counts.set(digest, n + 1);
    else if (this.#counts.size < this.capacity) this.#counts.set(digest, 1);
    else if (++this.#refused >= this.capacity) this.#decay();
  }

  #decay(): void {
    this.#refused = 0;
    for (const [d, n] of this.#counts) {
      if (n > 1) this.#counts.set(d, n >> 1);
      else this.#counts.delete(d);
    }
  }

  /** The `n` most-read digests, most first (ties by digest, so the order is stable). */
  top(n: number): TallyEntry[] {
    return [...this.#counts]
      .map(([digest, reads]) => ({ digest, reads }))
      .sort((a, b) => b.reads - a.reads || (a.digest < b.digest ? -1 : 1))
      .slice(0, n);
  }
}
