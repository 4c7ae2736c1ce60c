// The data behind every console page, as the JSON of /v1/status…: one
// function per page, each gathered through the interfaces that exist — the
// tiers' own accounting (store/tier-usage.ts), the metrics registry, the git
// feature's mirrors and the snapshot service, the ref store, sync/history.ts
// for a sync ref's versions and the tree codec for folder listings. The page
// renders exactly this object, so a script reading /v1/status sees what a
// person sees.
//
// Bounds: listings are paginated, histories and folders capped, trees read
// with a smaller bound than the CLI's, and at most two heavy reads (history,
// trees) run at once across all console users, so the console cannot be used
// to make the server hold large trees in memory many times over.

import { type Digest, digestFromHex, isDigest } from '../../core/digest.ts';
import { decodeEntry, MAX_ENTRY_BYTES } from '../../core/entry-record.ts';
import { HoardError, isHoardError, RefNotFoundError } from '../../core/errors.ts';
import { mapLimit, Semaphore } from '../../core/pool.ts';
import { validateRefName, validateRefPrefix } from '../../core/ref-name.ts';
import { decodeSnapshot, MAX_SNAPSHOT_BYTES } from '../../core/snapshot-record.ts';
import { readAllBounded } from '../../core/streams.ts';
import { decodeTree, type Tree } from '../../core/tree.ts';
import type { GitFeature } from '../../git/git-feature.ts';
import type { SnapshotFeature } from '../../git/snapshot-feature.ts';
import type { Remote } from '../../remote/remote.ts';
import type { FeatureContext } from '../../server/feature.ts';
import { reportsUsage, type TierUsage } from '../../store/tier-usage.ts';
import { type LogEntry, log, resolveVersion } from '../../sync/history.ts';
import type { FeatureCounts, Point, Reading, Sampler } from './console-sampler.ts';
import { DirSizes, DiskCensus } from './disk-census.ts';

/** Trees the console decodes are at most this large (the CLI allows more: it runs on the user's machine). */
export const CONSOLE_MAX_TREE_BYTES = 64 * 1024 * 1024;
export const REFS_PAGE_DEFAULT = 100;
export const REFS_PAGE_MAX = 1000;
export const HISTORY_LIMIT = 50;
export const FOLDER_MAX_ENTRIES = 2000;
const LIST_LIMIT = 20;

export interface TierReport extends TierUsage {
  hits: number;
  misses: number;
  /** Where the figures come from: the tier's own accounting, or a bounded walk (`truncated` when cut). */
  source: 'accounting' | 'scan';
  truncated?: boolean;
}

export interface FeatureReport extends FeatureCounts {
  name: string;
  /** Averaged over the last minute of samples; null before the first sample. */
  requestsPerSecond: number | null;
  /** hits / (hits + misses) since start; null without reads. */
  hitRate: number | null;
}

export interface MirrorReport {
  key: string;
  upstream: string | null;
  cloned: boolean;
  lastFetchAt: string | null;
  ageSeconds: number | null;
  maxStalenessSeconds: number;
  fresh: boolean;
  fetching: boolean;
  staleServes: number;
  clonesServed: number;
  fetchErrors: number;
  lastError: { at: string; message: string } | null;
  sizeBytes: number | null;
  snapshot: {
    commit: string;
    digest: Digest;
    size: number;
    generatedAt: string;
    url: string;
    stableUrl: string;
  } | null;
}

export interface Overview {
  version: string;
  startedAt: string;
  uptimeSeconds: number;
  tiers: {
    memory: TierReport;
    disk: TierReport;
    shared: { description: string; hits: number; misses: number } | null;
  };
  features: FeatureReport[];
  upstreams: {
    git: { mirrors: number; fresh: number; stale: number; failing: number } | null;
    /** The npm registry cache's upstream: documents served stale (upstream down), tarballs refused. */
    npm: { staleServes: number; integrityFailures: number } | null;
  };
  series: { intervalSeconds: number; points: Point[] };
}

export interface RefSummary {
  name: string;
  target: Digest;
  kind: RefKind;
}

export type RefKind = 'sync' | 'cache' | 'snapshot' | 'blob';

export interface RefPage {
  prefix: string;
  after: string | null;
  limit: number;
  refs: RefSummary[];
  /** The `after` of the next page; null on the last. */
  next: string | null;
}

export interface FolderEntry {
  name: string;
  path: string;
  kind: 'dir' | 'file' | 'exec' | 'symlink';
  size: number;
  digest?: Digest;
  /** Directories: files below. */
  files?: number;
  target?: string;
}

export interface RefView {
  name: string;
  target: Digest;
  kind: RefKind;
  sync?: {
    version: {
      snapshot: Digest;
      tree: Digest;
      createdAt: string;
      message?: string;
      user?: string;
      host?: string;
    };
    history: LogEntry[];
    more: boolean;
    path: string;
    entries: FolderEntry[];
    /** More entries than FOLDER_MAX_ENTRIES. */
    truncated: boolean;
  };
  cache?: {
    blob: Digest;
    size: number;
    meta: Record<string, string>;
    lastUsedAt: string | null;
    expiresAt: string | null;
  };
  blob?: { size: number | null };
}

export interface BlobsView {
  largest: { memory: BlobRow[]; disk: BlobRow[] };
  mostRead: (BlobRow & { reads: number })[];
  lookup: {
    digest: Digest;
    size: number | null;
    memory: boolean;
    disk: boolean;
    shared: boolean | null;
  } | null;
}

export interface BlobRow {
  digest: Digest;
  size: number | null;
}

export interface ConsoleDataOptions {
  ctx: FeatureContext;
  git: GitFeature | undefined;
  snapshots: SnapshotFeature | undefined;
  sampler: () => Sampler;
  version: string;
  intervalMs: number;
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

const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();

export class ConsoleData {
  readonly #o: ConsoleDataOptions;
  readonly #remote: Remote;
  readonly #heavy = new Semaphore(2);
  readonly #census: DiskCensus;
  readonly #dirSizes = new DirSizes({ maxAgeMs: 60_000, maxEntries: 200_000 });

  constructor(opts: ConsoleDataOptions) {
    this.#o = opts;
    const { ctx } = opts;
    this.#remote = { url: 'this server', blobs: ctx.blobs, refs: ctx.refs, close: async () => {} };
    this.#census = new DiskCensus(ctx.blobs.disk, { maxBlobs: 200_000, maxAgeMs: 60_000 });
  }

  // ---- the sampler's reading --------------------------------------------------

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
      diskBytes: reportsUsage(disk) ? disk.usage().bytes : (this.#census.peek()?.bytes ?? null),
    };
  }

  // ---- overview ---------------------------------------------------------------

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
      const c = await this.#census.get();
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

  // ---- git --------------------------------------------------------------------

  async git(): Promise<{ mirrors: MirrorReport[] } | null> {
    const git = this.#o.git;
    if (!git) return null;
    const service = this.#o.snapshots?.service;
    const bound = git.mirrors.maxStalenessMs;
    const mirrors = await mapLimit(git.mirrors.list(), 4, async (m): Promise<MirrorReport> => {
      const snap =
        m.cloned && service ? await service.latest(m.key, m.dir).catch(() => undefined) : undefined;
      const hex = snap?.digest.slice('sha256:'.length);
      return {
        key: m.key,
        upstream: m.upstream,
        cloned: m.cloned,
        lastFetchAt: iso(m.lastFetchAt),
        ageSeconds:
          m.ageMs !== null
            ? Math.round(m.ageMs / 1000)
            : m.lastFetchAt !== null
              ? Math.max(0, Math.round((Date.now() - m.lastFetchAt) / 1000))
              : null,
        maxStalenessSeconds: Math.round(bound / 1000),
        fresh: m.fresh,
        fetching: m.fetching,
        staleServes: m.activity.staleServes,
        clonesServed: m.activity.uploadPacks,
        fetchErrors: m.activity.fetchErrors,
        lastError: m.activity.lastError
          ? { at: new Date(m.activity.lastError.at).toISOString(), message: m.activity.lastError.message }
          : null,
        sizeBytes: m.cloned ? await this.#dirSizes.of(m.dir) : null,
        snapshot: snap
          ? {
              commit: snap.commit,
              digest: snap.digest,
              size: snap.size,
              generatedAt: new Date(snap.generatedAt).toISOString(),
              url: `/v1/blobs/sha256/${hex}`,
              stableUrl: `/git/${m.path.replace(/\.git$/, '')}.git/snapshot.tar.zst`,
            }
          : null,
      };
    });
    return { mirrors };
  }

  // ---- refs -------------------------------------------------------------------

  /** A page of refs under `prefix`; `visible` drops the ones the asker may not see (before paging). */
  async refs(
    prefix: string,
    after: string,
    limit: number,
    visible: (name: string) => boolean = () => true,
  ): Promise<RefPage> {
    validateRefPrefix(prefix);
    if (after !== '') validateRefName(after);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > REFS_PAGE_MAX)
      throw new HoardError('HOARD_EBAD_REQUEST', `limit must be between 1 and ${REFS_PAGE_MAX}`);
    const page: { name: string; target: Digest }[] = [];
    let more = false;
    for await (const r of this.#o.ctx.refs.list(prefix)) {
      if (after !== '' && r.name <= after) continue;
      if (!visible(r.name)) continue;
      if (page.length === limit) {
        more = true;
        break;
      }
      page.push({ name: r.name, target: r.target });
    }
    const refs = await mapLimit(page, 8, async (r) => ({ ...r, kind: await this.#kindOf(r.name, r.target) }));
    return {
      prefix,
      after: after || null,
      limit,
      refs,
      next: more ? (page.at(-1)?.name ?? null) : null,
    };
  }

  /** Sync ref (a snapshot record), cache ref (an entry record), git snapshot, or any other blob. */
  async #kindOf(name: string, target: Digest): Promise<RefKind> {
    if (name.startsWith('git-snapshots/')) return 'snapshot';
    const bytes = await this.#small(target, Math.max(MAX_SNAPSHOT_BYTES, MAX_ENTRY_BYTES));
    if (!bytes) return 'blob';
    try {
      if (decodeEntry(bytes)) return 'cache';
    } catch {
      return 'blob';
    }
    try {
      decodeSnapshot(bytes);
      return 'sync';
    } catch {
      return 'blob';
    }
  }

  /** A blob's bytes when it is at most `limit` long; undefined when larger or absent. */
  async #small(digest: Digest, limit: number): Promise<Buffer | undefined> {
    const st = await this.#o.ctx.blobs.stat(digest).catch(() => undefined);
    if (!st || st.size > limit) return undefined;
    try {
      return await readAllBounded(await this.#o.ctx.blobs.read(digest), limit);
    } catch (err) {
      if (isHoardError(err)) return undefined;
      throw err;
    }
  }

  async ref(name: string, version: string, path: string): Promise<RefView> {
    validateRefName(name);
    const cur = await this.#o.ctx.refs.get(name);
    if (!cur) throw new RefNotFoundError(name);
    const kind = await this.#kindOf(name, cur.target);
    const view: RefView = { name, target: cur.target, kind };
    if (kind === 'sync') view.sync = await this.#heavy.run(() => this.#sync(name, version, path));
    else if (kind === 'cache') {
      const bytes = await this.#small(cur.target, MAX_ENTRY_BYTES);
      const entry = bytes ? decodeEntry(bytes) : undefined;
      if (entry) {
        const expiry = this.#o.ctx.ctx.refExpiry;
        const used = expiry?.isCacheRef(name) ? expiry.lastUsed(name) : undefined;
        view.cache = {
          blob: entry.blob,
          size: entry.size,
          meta: entry.meta,
          lastUsedAt: iso(used),
          expiresAt: used !== undefined && expiry ? iso(used + expiry.opts.ttlMs) : null,
        };
      }
    } else {
      const st = await this.#o.ctx.blobs.stat(cur.target).catch(() => undefined);
      view.blob = { size: st?.size ?? null };
    }
    return view;
  }

  async #sync(name: string, version: string, path: string): Promise<NonNullable<RefView['sync']>> {
    const dir = normalizeDir(path);
    const history = await log({ remote: this.#remote, ref: name, limit: HISTORY_LIMIT });
    const v = await resolveVersion(this.#remote, name, version === '' ? undefined : version);
    const tree = await this.#tree(v.record.tree);
    const { entries, truncated } = folder(tree, dir);
    if (dir !== '' && entries.length === 0)
      throw new HoardError('HOARD_EBAD_REQUEST', `no folder ${JSON.stringify(dir)} in this version`, {
        details: { path: dir },
      });
    const rec = v.record;
    return {
      version: {
        snapshot: v.snapshot,
        tree: rec.tree,
        createdAt: rec.createdAt,
        ...(rec.meta.message !== undefined ? { message: rec.meta.message } : {}),
        ...(rec.meta.user !== undefined ? { user: rec.meta.user } : {}),
        ...(rec.meta.host !== undefined ? { host: rec.meta.host } : {}),
      },
      history: history.entries,
      more: history.more,
      path: dir,
      entries,
      truncated,
    };
  }

  async #tree(digest: Digest): Promise<Tree> {
    const st = await this.#o.ctx.blobs.stat(digest);
    if (!st) throw new HoardError('HOARD_EBLOB_NOT_FOUND', `tree ${digest} is not stored`);
    if (st.size > CONSOLE_MAX_TREE_BYTES)
      throw new HoardError(
        'HOARD_ETOO_LARGE',
        `tree ${digest} is too large to list here (${st.size} bytes)`,
        {
          hint: 'use `hoard ls-tree` or `hoard pull` from a client',
        },
      );
    return decodeTree(await readAllBounded(await this.#o.ctx.blobs.read(digest), CONSOLE_MAX_TREE_BYTES));
  }

  // ---- blobs ------------------------------------------------------------------

  async blobs(lookup: string): Promise<BlobsView> {
    const { ctx } = this.#o;
    const digest = lookup === '' ? undefined : parseDigest(lookup);
    const sizeOf = async (d: Digest) => (await ctx.blobs.stat(d).catch(() => undefined))?.size ?? null;
    const memory = ctx.blobs.memory;
    const disk = ctx.blobs.disk;
    const largestMemory = reportsUsage(memory) && memory.largest ? memory.largest(LIST_LIMIT) : [];
    const largestDisk =
      reportsUsage(disk) && disk.largest ? disk.largest(LIST_LIMIT) : (await this.#census.get()).largest;
    const mostRead = await mapLimit(ctx.metrics.reads.top(LIST_LIMIT), 8, async (e) => ({
      digest: e.digest,
      reads: e.reads,
      size: await sizeOf(e.digest),
    }));
    let found: BlobsView['lookup'] = null;
    if (digest) {
      found = {
        digest,
        size: await sizeOf(digest),
        memory: await memory.has(digest),
        disk: await disk.has(digest),
        shared: ctx.blobs.shared ? await ctx.blobs.shared.has(digest).catch(() => false) : null,
      };
    }
    return { largest: { memory: largestMemory, disk: largestDisk }, mostRead, lookup: found };
  }
}

/** `sha256:<hex>` or the bare 64 hex digits. */
export function parseDigest(text: string): Digest {
  const t = text.trim().toLowerCase();
  if (isDigest(t)) return t;
  if (/^[0-9a-f]{64}$/.test(t)) return digestFromHex(t);
  throw new HoardError('HOARD_EDIGEST_INVALID', `not a digest: ${JSON.stringify(text.slice(0, 100))}`, {
    hint: 'sha256:<64 hex digits>, or the 64 hex digits alone',
  });
}

/** A folder path inside a tree: no leading or trailing slash, no empty, `.` or `..` segment. */
export function normalizeDir(path: string): string {
  const p = path.replace(/^\/+|\/+$/g, '');
  if (p === '') return '';
  if (p.length > 4096 || p.split('/').some((s) => s === '' || s === '.' || s === '..') || p.includes('\0'))
    throw new HoardError('HOARD_EPATH_INVALID', `invalid folder path ${JSON.stringify(path.slice(0, 200))}`);
  return p;
}

/** The immediate children of `dir` in a (flat, sorted) tree: files as they are, folders with totals. */
export function folder(tree: Tree, dir: string): { entries: FolderEntry[]; truncated: boolean } {
  const prefix = dir === '' ? '' : `${dir}/`;
  const dirs = new Map<string, FolderEntry>();
  const out: FolderEntry[] = [];
  for (const e of tree.entries) {
    if (!e.path.startsWith(prefix)) continue;
    const rest = e.path.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0 && e.kind !== 'dir') {
      if (e.kind === 'symlink')
        out.push({ name: rest, path: e.path, kind: 'symlink', size: 0, target: e.target });
      else out.push({ name: rest, path: e.path, kind: e.kind, size: e.size, digest: e.digest });
      continue;
    }
    const sub = slash < 0 ? rest : rest.slice(0, slash);
    let d = dirs.get(sub);
    if (!d) {
      d = { name: sub, path: prefix + sub, kind: 'dir', size: 0, files: 0 };
      dirs.set(sub, d);
    }
    if (slash >= 0 && (e.kind === 'file' || e.kind === 'exec')) {
      d.size += e.size;
      d.files = (d.files ?? 0) + 1;
    } else if (slash >= 0 && e.kind === 'symlink') d.files = (d.files ?? 0) + 1;
  }
  const all = [...dirs.values(), ...out];
  return { entries: all.slice(0, FOLDER_MAX_ENTRIES), truncated: all.length > FOLDER_MAX_ENTRIES };
}
