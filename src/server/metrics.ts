// Prometheus metrics of one server (its own registry, so several servers can
// live in one process, as the tests do). Served at GET /metrics.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Digest } from '../core/digest.ts';
import { loopHoldReader } from './loop-monitor.ts';
import { ReadTally } from './read-tally.ts';
import type { TierHooks, TierName } from './tier-types.ts';

/** Requests counted as plain numbers before prom-client takes them (ServerMetrics.observeRequest). */
const FLUSH_EVERY = 4096;

interface RequestChild {
  requests: { inc(v?: number): void };
  bytesOut: { inc(v?: number): void };
  bytesIn: { inc(v?: number): void };
  duration: { observe(v: number): void };
  /** Counted since the last flush (even bytes of 0: the series appears as it did with inc(0)). */
  touched: boolean;
  count: number;
  outBytes: number;
  inBytes: number;
  seconds: number[];
}

function flushRequestChild(c: RequestChild): void {
  c.requests.inc(c.count);
  c.bytesOut.inc(c.outBytes);
  c.bytesIn.inc(c.inBytes);
  for (const s of c.seconds) c.duration.observe(s);
  c.touched = false;
  c.count = 0;
  c.outBytes = 0;
  c.inBytes = 0;
  c.seconds = [];
}

/** Increments of one counter by label value, as numbers until flushed. */
class PendingCounts {
  readonly #into: (label: TierName, n: number) => void;
  #counts = new Map<TierName, number>();

  constructor(into: (label: TierName, n: number) => void) {
    this.#into = into;
  }

  add(label: TierName, n: number): void {
    this.#counts.set(label, (this.#counts.get(label) ?? 0) + n);
  }

  flush(): void {
    if (this.#counts.size === 0) return;
    const counts = this.#counts;
    this.#counts = new Map();
    for (const [label, n] of counts) this.#into(label, n);
  }
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly bytesOut: Counter<'route' | 'status'>;
  readonly bytesIn: Counter<'route' | 'status'>;
  readonly duration: Histogram<'route'>;
  readonly tierHits: Counter<'tier'>;
  readonly tierMisses: Counter<'tier'>;
  readonly coalesced: Counter;
  readonly fillSeconds: Histogram<'result'>;
  readonly evictions: Counter<'tier'>;
  readonly corrupt: Counter<'source'>;
  readonly scrubBytes: Counter;
  readonly connectionsCut: Counter<'reason'>;
  readonly authLockouts: Counter;
  readonly cacheRequests: Counter<'tool' | 'op' | 'result'>;
  readonly cacheBytes: Counter<'tool' | 'direction'>;
  readonly cacheUploads: Gauge<'tool'>;
  /** The most-read blobs lately (approximate, bounded; the console's Blobs page). */
  readonly reads = new ReadTally();
  /** When this server started (wall clock, ms): uptime. */
  readonly startedAt = Date.now();

  constructor() {
    const registers = [this.registry];
    // What the hot paths counted as plain numbers goes into prom-client before any of it is read.
    const flush = () => this.flushCounts();
    collectDefaultMetrics({ register: this.registry, prefix: 'hoard_process_' });
    const hold = loopHoldReader();
    new Gauge({
      name: 'hoard_event_loop_hold_max_seconds',
      help: 'Longest main-thread CPU run between two 10 ms ticks since the last scrape (event-loop blocking by the server itself, not by host load)',
      registers,
      collect() {
        this.set(hold.takeMaxMs() / 1000);
      },
    });
    this.requests = new Counter({
      name: 'hoard_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
      collect: flush,
    });
    this.bytesOut = new Counter({
      name: 'hoard_http_response_bytes_total',
      help: 'Response body bytes by route and status (from Content-Length)',
      labelNames: ['route', 'status'],
      registers,
      collect: flush,
    });
    this.bytesIn = new Counter({
      name: 'hoard_http_request_bytes_total',
      help: 'Request body bytes by route and status (from Content-Length)',
      labelNames: ['route', 'status'],
      registers,
      collect: flush,
    });
    this.duration = new Histogram({
      name: 'hoard_http_request_duration_seconds',
      help: 'Request durations by route',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
      collect: flush,
    });
    this.tierHits = new Counter({
      name: 'hoard_tier_hits_total',
      help: 'Blob reads served by each tier',
      labelNames: ['tier'],
      registers,
      collect: flush,
    });
    this.tierMisses = new Counter({
      name: 'hoard_tier_misses_total',
      help: 'Blob reads each tier could not serve',
      labelNames: ['tier'],
      registers,
      collect: flush,
    });
    this.coalesced = new Counter({
      name: 'hoard_singleflight_coalesced_total',
      help: 'Reads that joined a fill already in flight instead of reading the shared tier again',
      registers,
    });
    this.fillSeconds = new Histogram({
      name: 'hoard_fill_duration_seconds',
      help: 'Durations of fills from the shared tier into the disk tier',
      labelNames: ['result'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers,
    });
    this.evictions = new Counter({
      name: 'hoard_evictions_total',
      help: 'Blobs evicted, by tier',
      labelNames: ['tier'],
      registers,
    });
    this.corrupt = new Counter({
      name: 'hoard_blob_corrupt_total',
      help: 'Disk-tier blob files found not to hash to their name (and quarantined), by who found them: read, write, scrub',
      labelNames: ['source'],
      registers,
    });
    this.scrubBytes = new Counter({
      name: 'hoard_scrub_bytes_total',
      help: 'Bytes of the disk tier re-hashed by the background scrub',
      registers,
    });
    this.cacheRequests = new Counter({
      name: 'hoard_cache_requests_total',
      help: 'Keyed cache requests of the build-tool front-ends, by tool, op (get, put, delete) and result (hit, miss, stored, exists, deleted)',
      labelNames: ['tool', 'op', 'result'],
      registers,
    });
    this.cacheBytes = new Counter({
      name: 'hoard_cache_bytes_total',
      help: 'Content bytes of keyed cache entries, by tool and direction (in: stored, out: served)',
      labelNames: ['tool', 'direction'],
      registers,
    });
    this.cacheUploads = new Gauge({
      name: 'hoard_cache_uploads_in_flight',
      help: 'Keyed cache entry bodies being received now, by tool (a cut or refused upload leaves it)',
      labelNames: ['tool'],
      registers,
    });
    this.authLockouts = new Counter({
      name: 'hoard_auth_lockouts_total',
      help: 'Client addresses locked out for presenting too many invalid tokens (--auth-failure-limit)',
      registers,
    });
    this.connectionsCut = new Counter({
      name: 'hoard_connections_cut_total',
      help: 'Connections the server closed to protect itself: max_connections (refused at accept), body_idle (request body stalled)',
      labelNames: ['reason'],
      registers,
    });
  }

  /** Tier hooks feeding these metrics; `extra` hooks (the disk index, tests) are chained. */
  tierHooks(extra: TierHooks = {}): TierHooks {
    return {
      ...extra,
      hit: (tier: TierName, digest: Digest) => {
        this.#tierHits.add(tier, 1);
        this.reads.record(digest);
        extra.hit?.(tier, digest);
      },
      miss: (tier: TierName) => {
        this.#tierMisses.add(tier, 1);
        extra.miss?.(tier);
      },
      coalesced: () => {
        this.coalesced.inc();
        extra.coalesced?.();
      },
      corrupt: (digest, source, quarantined) => {
        this.corrupt.inc({ source });
        extra.corrupt?.(digest, source, quarantined);
      },
      fillDone: (s: number, ok: boolean) => {
        this.fillSeconds.observe({ result: ok ? 'ok' : 'error' }, s);
        extra.fillDone?.(s, ok);
      },
    };
  }

  /**
   * Counts one finished request. prom-client's inc() and observe() hash and
   * validate their labels on every call, even on a labelled child: four of
   * them per request were ~7 % of a small GET's CPU on the primary. So a
   * request is counted as plain numbers under its (method, route, status)
   * and moved into prom-client when anything reads these metrics (their
   * collect(): /metrics, the console) or every FLUSH_EVERY requests.
   * Bounded: routes are the route table's patterns, methods are what Node's
   * parser accepts, statuses are three digits.
   */
  observeRequest(
    method: string,
    route: string,
    status: number,
    seconds: number,
    bytesIn: number,
    bytesOut: number,
  ): void {
    const c = this.#requestChild(method, route, status);
    c.count++;
    c.outBytes += bytesOut;
    c.inBytes += bytesIn;
    c.seconds.push(seconds);
    if (c.seconds.length >= FLUSH_EVERY) flushRequestChild(c);
  }

  /** Counts requests another process (a read worker) finished: one count and duration each, bytes summed. */
  observeRequests(
    method: string,
    route: string,
    status: number,
    seconds: readonly number[],
    bytesIn: number,
    bytesOut: number,
  ): void {
    if (seconds.length === 0) return;
    const c = this.#requestChild(method, route, status);
    c.count += seconds.length;
    c.outBytes += bytesOut;
    c.inBytes += bytesIn;
    for (const s of seconds) c.seconds.push(s);
    if (c.seconds.length >= FLUSH_EVERY) flushRequestChild(c);
  }

  /** Moves what observeRequest and the tier hooks counted into prom-client (run before every read). */
  flushCounts(): void {
    for (const c of this.#requestChildren.values()) if (c.touched) flushRequestChild(c);
    this.#tierHits.flush();
    this.#tierMisses.flush();
  }

  #requestChild(method: string, route: string, status: number): RequestChild {
    const key = `${method} ${status} ${route}`;
    let c = this.#requestChildren.get(key);
    if (!c) {
      const st = String(status);
      c = {
        requests: this.requests.labels(method, route, st),
        bytesOut: this.bytesOut.labels(route, st),
        bytesIn: this.bytesIn.labels(route, st),
        duration: this.duration.labels(route),
        touched: false,
        count: 0,
        outBytes: 0,
        inBytes: 0,
        seconds: [],
      };
      this.#requestChildren.set(key, c);
    }
    c.touched = true;
    return c;
  }

  readonly #requestChildren = new Map<string, RequestChild>();
  readonly #tierHits = new PendingCounts((tier, n) => this.tierHits.inc({ tier }, n));
  readonly #tierMisses = new PendingCounts((tier, n) => this.tierMisses.inc({ tier }, n));

  /** Disk usage gauges read from the disk index at scrape time. */
  trackDisk(index: { bytes: number; count: number }): void {
    new Gauge({
      name: 'hoard_disk_bytes',
      help: 'Bytes in the disk tier',
      registers: [this.registry],
      collect() {
        this.set(index.bytes);
      },
    });
    new Gauge({
      name: 'hoard_disk_blobs',
      help: 'Blobs in the disk tier',
      registers: [this.registry],
      collect() {
        this.set(index.count);
      },
    });
  }

  trackMemory(memory: { bytes: number; evictions: number }): void {
    new Gauge({
      name: 'hoard_memory_bytes',
      help: 'Bytes in the memory tier',
      registers: [this.registry],
      collect() {
        this.set(memory.bytes);
      },
    });
    new Gauge({
      name: 'hoard_memory_evictions',
      help: 'Blobs evicted from the memory tier since start',
      registers: [this.registry],
      collect() {
        this.set(memory.evictions);
      },
    });
  }
}
