// The most-read blobs, approximately: a bounded count per digest fed by the
// tier hit hook. Only every `sampleEvery`-th read is counted (with that
// weight), so a read costs one increment and a comparison, and the Map
// lookup of the digest is paid by one read in eight — the blob hot path
// carries no more than the Prometheus counter the hook already bumps. A blob
// read often is sampled in proportion; one read a few times may not appear,
// which a "most-read" list can afford. Memory stays bounded
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
  readonly sampleEvery: number;
  #counts = new Map<Digest, number>();
  #refused = 0;
  #tick = 0;

  constructor(capacity = 1024, sampleEvery = 8) {
    this.capacity = capacity;
    this.sampleEvery = sampleEvery;
  }

  record(digest: Digest): void {
    if (++this.#tick < this.sampleEvery) return;
    this.#tick = 0;
    const w = this.sampleEvery;
    const n = this.#counts.get(digest);
    if (n !== undefined) this.#counts.set(digest, n + w);
    else if (this.#counts.size < this.capacity) this.#counts.set(digest, w);
    else if (++this.#refused >= this.capacity) this.#decay();
  }

  #decay(): void {
    this.#refused = 0;
    for (const [d, n] of this.#counts) {
      if (n > this.sampleEvery) this.#counts.set(d, Math.floor(n / 2));
      else this.#counts.delete(d);
    }
  }

  /** The `n` most-read digests, most first, ties by digest; `reads` estimated (sampled reads × sampleEvery). */
  top(n: number): TallyEntry[] {
    return [...this.#counts]
      .map(([digest, reads]) => ({ digest, reads }))
      .sort((a, b) => b.reads - a.reads || (a.digest < b.digest ? -1 : 1))
      .slice(0, n);
  }
}
