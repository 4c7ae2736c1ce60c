// The console's overview page and the sampler's readings: requests, hits and
// misses per feature (from the request metrics, by the URL prefix a route
// belongs to; git and snapshots from their own counters), the tiers' sizes
// from their own accounting (store/tier-usage.ts) or, for a disk without
// it, a bounded census (disk-census.ts), and the upstreams' health.

import type { GitFeature } from '../../git/git-feature.ts';
import type { SnapshotFeature } from '../../git/snapshot-feature.ts';
import type { FeatureContext } from '../../server/feature.ts';
import { reportsUsage } from '../../store/tier-usage.ts';
import type { FeatureCounts, Reading, Sampler } from './console-sampler.ts';
import type { FeatureReport, Overview, TierReport } from './console-views.ts';
import type { DiskCensus } from './disk-census.ts';

export interface ConsoleOverviewOptions {
  ctx: FeatureContext;
  git: GitFeature | undefined;
  snapshots: SnapshotFeature | undefined;
  sampler: () => Sampler;
  version: string;
  intervalMs: number;
  /** The disk tier's figures when it keeps no accounting of its own. */
  census: DiskCensus;
}

/** Which feature a route pattern belongs to (the console's own routes and /healthz and such: none). */
export function featureOf(route: string): string | undefined {
  if (route.startsWith('/v1/blobs')) return 'blobs';
  if (route.startsWith('/v1/refs')) return 'refs';
  const m = /^\/([a-z0-9-]+)(?:\/|$)/.exec(route);
  if (!m || ['v1', 'ui', 'healthz', 'readyz', 'metrics'].includes(m[1])) return undefined;
  return m[1];
}

async function metricSum(
  ctx: FeatureContext,
  name: string,
  match: (labels: Record<string, string | number | undefined>) => boolean = () => true,
): Promise<number> {
  const metric = ctx.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const got = await metric.get();
  let sum = 0;
  for (const v of got.values) if (match(v.labels)) sum += v.value;
  return sum;
}

export class ConsoleOverview {
  readonly #o: ConsoleOverviewOptions;

  constructor(opts: ConsoleOverviewOptions) {
    this.#o = opts;
  }

  /** Cumulative counts per feature and the tiers' sizes, for the sampler (off the request path). */
  async reading(): Promise<Reading> {
    const { ctx } = this.#o;
    const features = new Map<string, FeatureCounts>();
    const counts = (name: string) => {
      let c = features.get(name);
      if (!c) features.set(name, (c = { requests: 0, hits: 0, misses: 0 }));
      return c;
    };
    // Every front-end running is listed, with or without traffic (by its URL prefix, as featureOf names routes).
    for (const f of ctx.features()) {
      if (f.prefix === '/v1') for (const name of ['blobs', 'refs']) counts(name);
      else if (f.prefix) {
        const name = featureOf(f.prefix);
        if (name) counts(name);
      }
    }
    for (const v of (await ctx.metrics.requests.get()).values) {
      const f = featureOf(String(v.labels.route ?? ''));
      if (!f) continue;
      const c = counts(f);
      c.requests += v.value;
      const read = v.labels.method === 'GET' || v.labels.method === 'HEAD';
      const status = Number(v.labels.status);
      if (read && ((status >= 200 && status < 300) || status === 304)) c.hits += v.value;
      else if (read && status === 404) c.misses += v.value;
    }
    // git: a "hit" is a ref advertisement served from a fresh mirror, a
    // "miss" one served stale (the upstream did not answer in time); the
    // snapshot requests under /git/… are the snapshots feature's.
    const served = this.#o.snapshots?.service.served ?? 0;
    if (this.#o.git) {
      const c = counts('git');
      const adverts = await metricSum(ctx, 'hoard_git_requests_total', (l) => l.service === 'info-refs');
      const stale = await metricSum(ctx, 'hoard_git_stale_serves_total');
      c.requests = Math.max(0, c.requests - served);
      c.hits = Math.max(0, adverts - stale);
      c.misses = stale;
    }
    if (this.#o.snapshots) {
      // A snapshot generated for the request is its miss; one found already made is a hit.
      const generated = this.#o.snapshots.service.generations;
      features.set('snapshots', {
        requests: served,
        hits: Math.max(0, served - generated),
        misses: Math.min(served, generated),
      });
    }
    const memory = ctx.blobs.memory;
    const disk = ctx.blobs.disk;
    return {
      features,
      memoryBytes: reportsUsage(memory) ? memory.usage().bytes : 0,
      diskBytes: reportsUsage(disk) ? disk.usage().bytes : (this.#o.census.peek()?.bytes ?? null),
    };
  }

  async overview(): Promise<Overview> {
    const { ctx } = this.#o;
    const tierCount = async (name: string) => {
      const out: Record<string, number> = {};
      const metric = ctx.metrics.registry.getSingleMetric(name);
      for (const v of metric ? (await metric.get()).values : []) out[String(v.labels.tier)] = v.value;
      return out;
    };
    const hits = await tierCount('hoard_tier_hits_total');
    const misses = await tierCount('hoard_tier_misses_total');
    const tier = async (name: 'memory' | 'disk', store: object): Promise<TierReport> => {
      const counted = { hits: hits[name] ?? 0, misses: misses[name] ?? 0 };
      if (reportsUsage(store)) return { ...store.usage(), ...counted, source: 'accounting' };
      const c = await this.#o.census.get();
      return {
        bytes: c.bytes,
        blobs: c.blobs,
        maxBytes: 0,
        evictions: 0,
        ...counted,
        source: 'scan',
        truncated: c.truncated,
      };
    };
    const reading = await this.reading();
    const points = this.#o.sampler().points();
    const recent = points.slice(-Math.max(1, Math.round(60_000 / this.#o.intervalMs)));
    const features: FeatureReport[] = [...reading.features]
      .map(([name, c]) => ({
        name,
        ...c,
        requestsPerSecond: recent.length
          ? recent.reduce((s, p) => s + (p.features[name]?.requestsPerSecond ?? 0), 0) / recent.length
          : null,
        hitRate: c.hits + c.misses > 0 ? c.hits / (c.hits + c.misses) : null,
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
    let git: Overview['upstreams']['git'] = null;
    if (this.#o.git) {
      const list = this.#o.git.mirrors.list();
      git = {
        mirrors: list.length,
        fresh: list.filter((m) => m.fresh).length,
        stale: list.filter((m) => !m.fresh).length,
        failing: list.filter((m) => m.activity.lastError && m.activity.lastError.at > (m.lastFetchAt ?? 0))
          .length,
      };
    }
    const npm = ctx.features().some((f) => f.name === 'npm')
      ? {
          staleServes: await metricSum(ctx, 'hoard_npm_stale_serves_total'),
          integrityFailures: await metricSum(ctx, 'hoard_npm_integrity_failures_total'),
        }
      : null;
    const shared = ctx.blobs.shared;
    const startedAt = ctx.metrics.startedAt;
    return {
      version: this.#o.version,
      startedAt: new Date(startedAt).toISOString(),
      uptimeSeconds: Math.max(0, Math.round((Date.now() - startedAt) / 1000)),
      tiers: {
        memory: await tier('memory', ctx.blobs.memory),
        disk: await tier('disk', ctx.blobs.disk),
        shared: shared
          ? { description: shared.description, hits: hits.shared ?? 0, misses: misses.shared ?? 0 }
          : null,
      },
      features,
      upstreams: { git, npm },
      series: { intervalSeconds: this.#o.intervalMs / 1000, points },
    };
  }
}
