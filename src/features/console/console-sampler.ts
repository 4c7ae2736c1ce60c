// The console's charts of the last hour: a ring buffer of samples taken every
// intervalMs from what the server counts anyway (the Prometheus counters of
// requests per route and status, the tiers' own byte counts), so the blob hot
// path pays nothing for them — a sample reads cumulative counters off the
// request path and stores the difference to the previous one. Time comes
// from an injected Clock (tests advance it instead of waiting); nothing is
// persisted: a restart starts an empty hour.

import { type Clock, sleepOn } from '../../core/clock.ts';

/** Cumulative counts of one feature since start. */
export interface FeatureCounts {
  requests: number;
  /** Reads answered with content (2xx, 304). */
  hits: number;
  /** Reads answered 404. */
  misses: number;
}

/** What one sample reads: cumulative per feature, current tier sizes. */
export interface Reading {
  features: Map<string, FeatureCounts>;
  memoryBytes: number;
  diskBytes: number | null;
}

export interface FeatureRate {
  requestsPerSecond: number;
  /** hits / (hits + misses) within the interval; null without reads. */
  hitRate: number | null;
}

export interface Point {
  /** Wall-clock ms of the sample. */
  at: number;
  features: Record<string, FeatureRate>;
  memoryBytes: number;
  diskBytes: number | null;
}

/** A fixed-capacity ring: pushing beyond capacity overwrites the oldest. */
export class Ring<T> {
  readonly capacity: number;
  #items: T[] = [];
  #next = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  push(item: T): void {
    if (this.#items.length < this.capacity) this.#items.push(item);
    else this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): T[] {
    if (this.#items.length < this.capacity) return [...this.#items];
    return [...this.#items.slice(this.#next), ...this.#items.slice(0, this.#next)];
  }

  get length(): number {
    return this.#items.length;
  }
}

export interface SamplerOptions {
  clock: Clock;
  intervalMs: number;
  /** Points kept (an hour at the default interval). */
  capacity: number;
  read(): Promise<Reading>;
  /** Wall-clock time of a sample (default Date.now). */
  wall?: () => number;
  onError?(err: unknown): void;
}

export class Sampler {
  readonly #o: SamplerOptions;
  readonly #ring: Ring<Point>;
  #last: { reading: Reading; t: number } | undefined;
  #stop = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(opts: SamplerOptions) {
    this.#o = opts;
    this.#ring = new Ring(opts.capacity);
  }

  /** Takes the baseline reading now, then one sample per interval until close(). */
  start(): void {
    this.#loop ??= (async () => {
      await this.sample();
      const signal = this.#stop.signal;
      while (!signal.aborted) {
        try {
          await sleepOn(this.#o.clock, this.#o.intervalMs, signal);
        } catch {
          return; // aborted
        }
        await this.sample();
      }
    })();
  }

  /** One sample: the rates since the previous one (the first only sets the baseline). */
  async sample(): Promise<void> {
    let reading: Reading;
    try {
      reading = await this.#o.read();
    } catch (err) {
      this.#o.onError?.(err);
      return;
    }
    const t = this.#o.clock.now();
    const prev = this.#last;
    this.#last = { reading, t };
    if (!prev) return;
    const seconds = (t - prev.t) / 1000;
    if (seconds <= 0) return;
    const features: Record<string, FeatureRate> = {};
    for (const [name, c] of reading.features) {
      const p = prev.reading.features.get(name) ?? { requests: 0, hits: 0, misses: 0 };
      const hits = c.hits - p.hits;
      const misses = c.misses - p.misses;
      features[name] = {
        requestsPerSecond: Math.max(0, c.requests - p.requests) / seconds,
        hitRate: hits + misses > 0 ? hits / (hits + misses) : null,
      };
    }
    this.#ring.push({
      at: (this.#o.wall ?? Date.now)(),
      features,
      memoryBytes: reading.memoryBytes,
      diskBytes: reading.diskBytes,
    });
  }

  /** The samples of the last hour (capacity × interval), oldest first. */
  points(): Point[] {
    return this.#ring.toArray();
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
  }
}
