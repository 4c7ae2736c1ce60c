// The git mirrors of one server: where they live (`<data>/git/mirrors/<key>.git`),
// how fresh they are, and the one clone or fetch per repo at a time that
// keeps them fresh.
//
// Freshness contract: a ref advertisement is never older than `maxStalenessMs`.
// Freshness is only ever earned by a fetch that succeeded *in this process*:
// `freshAt` is the monotonic time at which that fetch's git process started
// (so the refs it wrote are at least that new). A mirror found on disk at
// start-up, restored or replaced on disk, starts with `freshAt = null`, i.e.
// infinitely stale, whatever its persisted last-fetch time says. The persisted
// time (hoard.json) only feeds the `X-Hoard-Stale` header and warm-up order.
//
// A request that needs refs at time t0 needs `freshAt >= t0 - maxStaleness`.
// It joins the fetch in flight when that fetch started late enough to satisfy
// it, otherwise waits for it and starts (or joins) the next one. It waits at
// most `fetchTimeoutMs` in total, then the mirror is served as it is (stale,
// counted, logged, and marked with X-Hoard-Stale). Fetches, clones and
// maintenance of one mirror are serialised by a per-mirror lock.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { Counter, register as defaultRegistry, Histogram, type Registry } from 'prom-client';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import { forEachLimit, Semaphore } from '../core/pool.ts';
import { SingleFlight } from '../core/single-flight.ts';
import { writeFileAtomic } from '../store/fs-atomic.ts';
import { runGit } from './git-process.ts';
import {
  dirIdentity,
  headCommit,
  MAINTENANCE_CONFIG,
  MIRROR_CONFIG,
  type MirrorMeta,
  missingObjects,
  raceTimeout,
  readMeta,
  removeStaleLocks,
  revParse,
  symbolicHead,
} from './mirror-disk.ts';
import { mirrorDir, parseRepoPath, type RepoId, Upstreams } from './upstreams.ts';

type LogFn = (obj: object | string, msg?: string) => void;
export interface GitLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const silentLogger: GitLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface MirrorManagerOptions {
  /** The server's data directory; mirrors live in `<dataDir>/git/mirrors`. */
  dataDir: string;
  upstreams?: Upstreams;
  maxStalenessMs?: number;
  fetchTimeoutMs?: number;
  processTimeoutMs?: number;
  warmConcurrency?: number;
  maintenanceIntervalMs?: number;
  /** How often a fetch also checks the upstream's default branch (default DEFAULTS.gitHeadCheckIntervalMs). */
  headCheckIntervalMs?: number;
  log?: GitLogger;
  /** Upstream fetches for unknown wanted objects per window and mirror (default DEFAULTS.gitUnknownObjectFetchesPerWindow). */
  unknownObjectFetchesPerWindow?: number;
  /** The window of that budget (default DEFAULTS.gitUnknownObjectFetchWindowMs). */
  unknownObjectFetchWindowMs?: number;
  /** Clock of the unknown-object budget (tests inject one); default Date.now. */
  now?: () => number;
  /** prom-client registry for the git metrics (default: the global one). */
  registry?: Registry;
}

/** What hoard persists next to a mirror (`<mirror>/hoard.json`); never trusted for freshness. */

interface Mirror {
  id: RepoId;
  dir: string;
  freshAt: number | null;
  /** Wall-clock time of the last successful fetch known (this process, else persisted). */
  lastFetchWall: number | null;
  /** Identity (device, inode, birth time) of the mirror directory when it was last fetched; a change means it was replaced. */
  ino: string | null;
  inflight: { startedAt: number; promise: Promise<void> } | null;
  /** FIFO lock: fetches, clones and maintenance of one mirror never overlap. */
  lock: Semaphore;
  prepared: Promise<void> | null;
  meta: MirrorMeta;
  metaLoaded: boolean;
  metaWrite: Promise<void>;
  lastUsedWritten: number;
  fetchesSinceMaintenance: number;
  /** When the upstream's HEAD (default branch) was last compared with the mirror's (Date.now()). */
  headCheckedAt: number;
  /** When a stale serve of this mirror was last logged as a warning. */
  staleWarnedAt: number;
  /** Start times (clock of the manager) of the fetches for unknown objects in the current window. */
  unknownFetchTimes: number[];
}

export interface OpenResult {
  key: string;
  dir: string;
  /** Seconds since the last successful fetch when the mirror is served stale; null when fresh. */
  staleSeconds: number | null;
}

export interface FetchedEvent {
  key: string;
  dir: string;
  /** HEAD's target commit before and after (only computed when someone listens). */
  before?: string | null;
  after?: string | null;
}

export interface DefaultBranchMovedEvent {
  key: string;
  path: string;
  dir: string;
  ref: string;
  from: string | null;
  to: string;
}

function metric<T>(reg: Registry, name: string, make: () => T): T {
  return (reg.getSingleMetric(name) as T | undefined) ?? make();
}

export class MirrorManager extends EventEmitter {
  readonly root: string;
  readonly mirrorsRoot: string;
  readonly tmpRoot: string;
  readonly upstreams: Upstreams;
  readonly maxStalenessMs: number;
  readonly fetchTimeoutMs: number;
  readonly processTimeoutMs: number;
  readonly warmConcurrency: number;
  readonly maintenanceIntervalMs: number;
  readonly headCheckIntervalMs: number;
  readonly unknownObjectFetchesPerWindow: number;
  readonly unknownObjectFetchWindowMs: number;
  readonly #now: () => number;
  log: GitLogger;
  #ownLogger: boolean;

  #mirrors = new Map<string, Mirror>();
  #clones = new SingleFlight<string, void>();
  #closed = false;
  #shutdown = new AbortController();
  #maintenanceTimer: NodeJS.Timeout | null = null;
  #warm: { total: number; done: number; finished: boolean } = { total: 0, done: 0, finished: false };
  #warmDone: Promise<void> = Promise.resolve();
  #background = new Set<Promise<unknown>>();

  readonly metrics: {
    fetches: Counter<'result'>;
    fetchDuration: Histogram<'kind'>;
    clones: Counter<'result'>;
    staleServes: Counter;
    requests: Counter<'service'>;
    maintenance: Counter<'result'>;
    unknownObjectFetchesLimited: Counter;
  };

  constructor(opts: MirrorManagerOptions) {
    super();
    this.root = join(opts.dataDir, 'git');
    this.mirrorsRoot = join(this.root, 'mirrors');
    this.tmpRoot = join(this.root, 'tmp');
    this.upstreams = opts.upstreams ?? new Upstreams();
    this.maxStalenessMs = opts.maxStalenessMs ?? DEFAULTS.gitMaxStalenessMs;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULTS.gitFetchTimeoutMs;
    this.processTimeoutMs = opts.processTimeoutMs ?? DEFAULTS.gitProcessTimeoutMs;
    this.warmConcurrency = Math.max(1, opts.warmConcurrency ?? DEFAULTS.gitWarmConcurrency);
    this.maintenanceIntervalMs = opts.maintenanceIntervalMs ?? DEFAULTS.gitMaintenanceIntervalMs;
    this.headCheckIntervalMs = opts.headCheckIntervalMs ?? DEFAULTS.gitHeadCheckIntervalMs;
    this.unknownObjectFetchesPerWindow =
      opts.unknownObjectFetchesPerWindow ?? DEFAULTS.gitUnknownObjectFetchesPerWindow;
    this.unknownObjectFetchWindowMs =
      opts.unknownObjectFetchWindowMs ?? DEFAULTS.gitUnknownObjectFetchWindowMs;
    this.#now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLogger;
    this.#ownLogger = opts.log !== undefined;
    const reg = opts.registry ?? defaultRegistry;
    this.metrics = {
      fetches: metric(
        reg,
        'hoard_git_fetches_total',
        () =>
          new Counter({
            name: 'hoard_git_fetches_total',
            help: 'Upstream fetches into git mirrors, by result (ok, error, timeout)',
            labelNames: ['result'],
            registers: [reg],
          }),
      ),
      fetchDuration: metric(
        reg,
        'hoard_git_fetch_duration_seconds',
        () =>
          new Histogram({
            name: 'hoard_git_fetch_duration_seconds',
            help: 'Duration of upstream clones and fetches of git mirrors',
            labelNames: ['kind'],
            buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
            registers: [reg],
          }),
      ),
      clones: metric(
        reg,
        'hoard_git_clones_total',
        () =>
          new Counter({
            name: 'hoard_git_clones_total',
            help: 'Upstream mirror clones, by result',
            labelNames: ['result'],
            registers: [reg],
          }),
      ),
      staleServes: metric(
        reg,
        'hoard_git_stale_serves_total',
        () =>
          new Counter({
            name: 'hoard_git_stale_serves_total',
            help: 'Ref advertisements served from a mirror older than the staleness bound (upstream down or slow)',
            registers: [reg],
          }),
      ),
      requests: metric(
        reg,
        'hoard_git_requests_total',
        () =>
          new Counter({
            name: 'hoard_git_requests_total',
            help: 'git smart-HTTP requests, by service',
            labelNames: ['service'],
            registers: [reg],
          }),
      ),
      unknownObjectFetchesLimited: metric(
        reg,
        'hoard_git_unknown_object_fetches_limited_total',
        () =>
          new Counter({
            name: 'hoard_git_unknown_object_fetches_limited_total',
            help: 'Requests for objects a mirror lacks that did not fetch upstream because the per-mirror budget was used up',
            registers: [reg],
          }),
      ),
      maintenance: metric(
        reg,
        'hoard_git_maintenance_total',
        () =>
          new Counter({
            name: 'hoard_git_maintenance_total',
            help: 'Mirror maintenance runs (geometric repack, commit-graph), by result',
            labelNames: ['result'],
            registers: [reg],
          }),
      ),
    };
  }

  /** Uses `log` unless a logger was given to the constructor. */
  useLoggerIfUnset(log: GitLogger): void {
    if (!this.#ownLogger) {
      this.log = log;
      this.#ownLogger = true;
    }
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Prepares the directories, then discovers the mirrors on disk and warms
   * them in the background (most recently used first). Returns at once: the
   * server can listen and be ready while mirrors warm up.
   */
  async start(): Promise<void> {
    await mkdir(this.mirrorsRoot, { recursive: true });
    // Partial clones of a previous process.
    await rm(this.tmpRoot, { recursive: true, force: true });
    await mkdir(this.tmpRoot, { recursive: true });
    this.#warmDone = this.#track(this.#warmUp());
    if (this.maintenanceIntervalMs > 0) {
      this.#maintenanceTimer = setInterval(() => {
        this.#track(this.maintainAll());
      }, this.maintenanceIntervalMs);
      this.#maintenanceTimer.unref();
    }
  }

  /** Resolves when the start-up warm-up has finished. */
  warmedUp(): Promise<void> {
    return this.#warmDone;
  }

  get warmUpStatus(): { total: number; done: number; finished: boolean } {
    return { ...this.#warm };
  }

  /** Stops background work (warm-up, maintenance timer) and waits for it. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#maintenanceTimer) clearInterval(this.#maintenanceTimer);
    // Clones, fetches and maintenance in flight are killed (their lock files go with a
    // killed git only partly: start-up removes what is left).
    this.#shutdown.abort();
    await Promise.allSettled([...this.#background]);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    const q = p.catch((err) => {
      this.log.error({ err }, 'git background task failed');
    }) as Promise<T>;
    this.#background.add(q);
    q.finally(() => this.#background.delete(q));
    return q;
  }

  /** Mirrors on disk: `{key, dir}` for every `<mirrors>/…/<name>.git` holding a HEAD. */
  async discover(): Promise<{ key: string; dir: string }[]> {
    const found: { key: string; dir: string }[] = [];
    const walk = async (d: string, depth: number): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const p = join(d, e.name);
        if (e.name.endsWith('.git')) {
          if (existsSync(join(p, 'HEAD')))
            found.push({ key: relative(this.mirrorsRoot, p).split(sep).join('/').slice(0, -4), dir: p });
        } else if (depth < 8) await walk(p, depth + 1);
      }
    };
    await walk(this.mirrorsRoot, 0);
    return found;
  }

  async #warmUp(): Promise<void> {
    const t0 = Date.now();
    const found = await this.discover();
    const mirrors: Mirror[] = [];
    for (const f of found) {
      let id: RepoId;
      try {
        const meta = await readMeta(f.dir);
        id = parseRepoPath(meta?.path ?? `${f.key}.git`);
        if (id.key !== f.key) id = parseRepoPath(`${f.key}.git`);
      } catch {
        this.log.warn({ dir: f.dir }, 'git: ignoring mirror directory with an invalid name');
        continue;
      }
      try {
        this.upstreams.resolve(id.path);
      } catch {
        // Mapped once, not any more (configuration changed): kept on disk, never fetched or served.
        this.log.info({ repo: id.key }, 'git: not warming a mirror no upstream maps any more');
        continue;
      }
      const m = this.#mirror(id);
      await this.#loadMeta(m);
      mirrors.push(m);
    }
    mirrors.sort((a, b) => (b.meta.lastUsedAt ?? 0) - (a.meta.lastUsedAt ?? 0));
    this.#warm = { total: mirrors.length, done: 0, finished: false };
    let ok = 0;
    let failed = 0;
    await forEachLimit(mirrors, this.warmConcurrency, async (m) => {
      if (this.#closed) return;
      const t = Date.now();
      try {
        await this.#prepare(m);
        // A request may have fetched it already; otherwise fetch (or join the fetch in flight).
        if (m.freshAt === null) {
          const f = m.inflight ?? this.#startFetch(m);
          await f.promise;
        }
        ok++;
        this.log.debug({ repo: m.id.key, ms: Date.now() - t }, 'git: mirror warmed');
      } catch (err) {
        failed++;
        this.log.debug({ repo: m.id.key, err: (err as Error).message }, 'git: mirror warm-up fetch failed');
      }
      this.#warm.done++;
    });
    this.#warm.finished = true;
    this.log.info(
      {
        mirrors: mirrors.length,
        fetched: ok,
        failed,
        ms: Date.now() - t0,
        concurrency: this.warmConcurrency,
      },
      `git warm-up: ${ok} of ${mirrors.length} mirrors fetched, ${failed} failed, in ${Date.now() - t0} ms`,
    );
  }

  // ---- requests -------------------------------------------------------------

  /**
   * Makes the mirror of `path` servable: clones it if needed (single-flight)
   * and, when `refs` is set (a ref advertisement will be served), enforces the
   * freshness bound.
   */
  async open(path: string, opts: { refs: boolean } = { refs: true }): Promise<OpenResult> {
    const t0 = performance.now();
    const id = this.#servable(path);
    const m = this.#mirror(id);
    this.#checkReplaced(m);
    await this.#ensureCloned(m);
    this.#touch(m);
    if (!opts.refs) return { key: id.key, dir: m.dir, staleSeconds: null };
    const stale = await this.#ensureFresh(m, t0 - this.maxStalenessMs, t0 + this.fetchTimeoutMs);
    return { key: id.key, dir: m.dir, staleSeconds: stale };
  }

  /**
   * Of `ids`, those the mirror lacks even after a fetch (a client wanting a
   * commit just pushed upstream). Unknown ids are attacker-chosen (any client
   * can ask for random commits), so these fetches are bounded per mirror: a
   * request joins the fetch in flight if there is one (20 concurrent requests
   * for unknown commits cause one fetch), and otherwise starts one only within
   * the budget of DEFAULTS.gitUnknownObjectFetchesPerWindow per
   * DEFAULTS.gitUnknownObjectFetchWindowMs; beyond it the ids are reported
   * missing without contacting the upstream (logged, counted).
   */
  async ensureObjects(path: string, ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const m = this.#mirror(this.#servable(path));
    let missing = await missingObjects(m.dir, ids);
    if (missing.length === 0) return [];
    const t0 = performance.now();
    const joined = m.inflight;
    if (joined) {
      await joined.promise.catch(() => {});
      missing = await missingObjects(m.dir, missing);
      // A fetch that started after this request could see all it wants; one that started
      // before may predate a push: then one more, shared by everyone in the same position.
      if (missing.length === 0 || joined.startedAt >= t0) return missing;
      if (m.inflight && m.inflight.startedAt >= t0) {
        await m.inflight.promise.catch(() => {});
        return missingObjects(m.dir, missing);
      }
    }
    if (!this.#takeUnknownObjectBudget(m)) {
      this.metrics.unknownObjectFetchesLimited.inc();
      this.log.info(
        { repo: m.id.key, missing: missing.length },
        'git: wanted objects missing; upstream fetch budget for unknown objects used up, not fetching',
      );
      return missing;
    }
    this.log.debug({ repo: m.id.key, missing: missing.length }, 'git: wanted objects missing; fetching');
    await this.#ensureFresh(m, t0, t0 + this.fetchTimeoutMs);
    missing = await missingObjects(m.dir, missing);
    return missing;
  }

  /** Takes one unknown-object fetch from the mirror's window budget; false when none is left. */
  #takeUnknownObjectBudget(m: Mirror): boolean {
    const now = this.#now();
    const since = now - this.unknownObjectFetchWindowMs;
    m.unknownFetchTimes = m.unknownFetchTimes.filter((t) => t > since);
    if (m.unknownFetchTimes.length >= this.unknownObjectFetchesPerWindow) return false;
    m.unknownFetchTimes.push(now);
    return true;
  }

  /**
   * Resolves a ref (branch, tag or full ref name; default: the upstream's HEAD
   * branch) to a commit, after the freshness check.
   */
  async resolveRef(
    path: string,
    ref?: string,
  ): Promise<{ key: string; dir: string; ref: string; commit: string; staleSeconds: number | null }> {
    const o = await this.open(path, { refs: true });
    let full: string;
    if (ref === undefined || ref === '' || ref === 'HEAD') {
      full = (
        await runGit(['symbolic-ref', 'HEAD'], { cwd: o.dir, timeoutMs: this.processTimeoutMs })
      ).stdout.trim();
    } else {
      if (!/^[A-Za-z0-9_][A-Za-z0-9._/+-]*$/.test(ref) || ref.includes('..') || ref.endsWith('.lock'))
        throw new HoardError('HOARD_EBAD_REQUEST', `invalid ref name ${JSON.stringify(ref)}`);
      full = ref.startsWith('refs/') ? ref : '';
      if (!full) {
        for (const c of [`refs/heads/${ref}`, `refs/tags/${ref}`]) {
          if ((await revParse(o.dir, c)) !== null) {
            full = c;
            break;
          }
        }
      }
    }
    const commit = full ? await revParse(o.dir, `${full}^{commit}`) : null;
    if (!commit)
      throw new HoardError('HOARD_EREF_NOT_FOUND', `ref ${ref ?? 'HEAD'} not found in ${o.key}`, {
        details: { repo: o.key, ref: ref ?? 'HEAD' },
      });
    return { key: o.key, dir: o.dir, ref: full, commit, staleSeconds: o.staleSeconds };
  }

  /** Directory of the mirror of `path` (whether or not it exists yet). */
  dirOf(path: string): string {
    return mirrorDir(this.mirrorsRoot, parseRepoPath(path).key);
  }

  /**
   * Declares the mirror of `path` restored or replaced on disk: it is infinitely
   * stale until a fetch succeeds (replacement is also detected by inode).
   */
  markRestored(path: string): void {
    const m = this.#mirror(parseRepoPath(path));
    m.freshAt = null;
    m.ino = null;
    m.prepared = null;
    m.metaLoaded = false;
  }

  /** Marks the mirror stale after a push went through to its upstream. */
  invalidate(path: string): void {
    const m = this.#mirrors.get(parseRepoPath(path).key);
    if (m) m.freshAt = null;
  }

  upstreamOf(path: string): string {
    return this.upstreams.resolve(parseRepoPath(path).path);
  }

  // ---- internals ------------------------------------------------------------

  /**
   * The id of a repo path a client asked for, once an upstream maps it:
   * before any mirror is looked at, cloned or served, so an unmapped (or
   * denied) repository is 404 without a git child or an upstream request,
   * also when a mirror of it is still on disk from an earlier configuration.
   */
  #servable(path: string): RepoId {
    const id = parseRepoPath(path);
    try {
      this.upstreams.resolve(id.path);
    } catch (err) {
      this.log.info(
        { repo: id.key, reason: (err as HoardError).details?.reason },
        'git: request for a repository no upstream maps',
      );
      throw err;
    }
    return id;
  }

  #mirror(id: RepoId): Mirror {
    let m = this.#mirrors.get(id.key);
    if (!m) {
      m = {
        id,
        dir: mirrorDir(this.mirrorsRoot, id.key),
        freshAt: null,
        lastFetchWall: null,
        ino: null,
        inflight: null,
        lock: new Semaphore(1),
        prepared: null,
        meta: { path: id.path },
        metaLoaded: false,
        metaWrite: Promise.resolve(),
        lastUsedWritten: 0,
        fetchesSinceMaintenance: 0,
        headCheckedAt: 0,
        staleWarnedAt: 0,
        unknownFetchTimes: [],
      };
      this.#mirrors.set(id.key, m);
    }
    return m;
  }

  /** A mirror directory replaced under us (restored from a copy) loses its freshness. */
  #checkReplaced(m: Mirror): void {
    if (m.ino === null) return;
    if (dirIdentity(m.dir) !== m.ino) {
      this.log.info({ repo: m.id.key }, 'git: mirror directory was replaced on disk; treating it as stale');
      m.freshAt = null;
      m.ino = null;
      m.prepared = null;
      m.metaLoaded = false;
    }
  }

  async #loadMeta(m: Mirror): Promise<void> {
    if (m.metaLoaded) return;
    const meta = await readMeta(m.dir);
    m.metaLoaded = true;
    if (meta) {
      m.meta = { ...meta, path: m.meta.path ?? meta.path };
      if (m.lastFetchWall === null && meta.lastFetchAt) m.lastFetchWall = meta.lastFetchAt;
    }
  }

  #writeMeta(m: Mirror, patch: Partial<MirrorMeta>): Promise<void> {
    m.meta = { ...m.meta, ...patch };
    const snapshot = { ...m.meta };
    m.metaWrite = m.metaWrite.then(async () => {
      try {
        await writeFileAtomic(join(m.dir, 'hoard.json'), `${JSON.stringify(snapshot)}\n`, m.dir);
      } catch (err) {
        this.log.debug({ repo: m.id.key, err: (err as Error).message }, 'git: could not write hoard.json');
      }
    });
    return m.metaWrite;
  }

  #touch(m: Mirror): void {
    const now = Date.now();
    if (now - m.lastUsedWritten < DEFAULTS.gitLastUsedWriteIntervalMs) return;
    m.lastUsedWritten = now;
    void this.#writeMeta(m, { lastUsedAt: now });
  }

  async #ensureCloned(m: Mirror): Promise<void> {
    if (existsSync(join(m.dir, 'HEAD'))) {
      await this.#prepare(m);
      return;
    }
    await this.#clones.do(m.id.key, () => m.lock.run(() => this.#clone(m)));
  }

  /** Once per mirror and process: load hoard.json and remove lock files a killed git left behind. */
  #prepare(m: Mirror): Promise<void> {
    if (!m.prepared) {
      m.prepared = m.lock.run(async () => {
        await this.#loadMeta(m);
        const removed = await removeStaleLocks(m.dir);
        if (removed.length)
          this.log.info(
            { repo: m.id.key, files: removed },
            'git: removed stale lock files left by a killed git',
          );
      });
      m.prepared.catch(() => {
        m.prepared = null;
      });
    }
    return m.prepared;
  }

  async #clone(m: Mirror): Promise<void> {
    if (existsSync(join(m.dir, 'HEAD'))) return; // someone else (a restore) put it there
    const url = this.upstreams.resolve(m.id.path);
    const tmp = join(this.tmpRoot, `${basename(m.dir)}-${randomUUID()}`);
    const config = Object.entries(MIRROR_CONFIG).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    const startedAt = performance.now();
    const wall = Date.now();
    const end = this.metrics.fetchDuration.startTimer({ kind: 'clone' });
    this.log.info({ repo: m.id.key }, 'git: cloning new mirror');
    try {
      await runGit(['clone', '--mirror', '--quiet', ...config, '--', url, tmp], {
        timeoutMs: this.processTimeoutMs,
        signal: this.#shutdown.signal,
      });
      await writeFile(
        join(tmp, 'hoard.json'),
        `${JSON.stringify({ path: m.id.path, createdAt: wall, lastFetchAt: wall, lastUsedAt: wall })}\n`,
      );
      await mkdir(dirname(m.dir), { recursive: true });
      await rename(tmp, m.dir);
    } catch (err) {
      end();
      this.metrics.clones.inc({ result: 'error' });
      await rm(tmp, { recursive: true, force: true });
      if (existsSync(join(m.dir, 'HEAD'))) return;
      // The upstream's own words (git's stderr: host names, addresses, paths) go to the
      // log only; the client learns that the upstream failed, not how (SSRF probing).
      this.log.warn({ repo: m.id.key, err: (err as Error).message }, 'git: mirror clone failed');
      throw new HoardError('HOARD_EGIT', `could not mirror ${m.id.path}: upstream fetch failed`, {
        cause: err,
        hint: 'check that the upstream exists and is reachable from the hoard server (details in its log)',
        details: { repo: m.id.key, clientSafe: true },
      });
    }
    end();
    this.metrics.clones.inc({ result: 'ok' });
    m.meta = { path: m.id.path, createdAt: wall, lastFetchAt: wall, lastUsedAt: wall };
    m.metaLoaded = true;
    m.lastUsedWritten = Date.now();
    m.freshAt = startedAt;
    m.lastFetchWall = wall;
    m.ino = dirIdentity(m.dir);
    m.prepared = Promise.resolve();
    m.headCheckedAt = wall;
    this.log.info({ repo: m.id.key, ms: Date.now() - wall }, 'git: mirror cloned');
    // Bitmaps and commit-graph for fast serving, in the background.
    this.#track(this.maintain(m.id.path));
  }

  /**
   * Waits until `freshAt >= need`, fetching as needed, or until `deadline`
   * (monotonic ms); returns null when fresh, else the staleness in seconds.
   */
  async #ensureFresh(m: Mirror, need: number, deadline: number): Promise<number | null> {
    let reason = 'timeout';
    for (;;) {
      this.#checkReplaced(m);
      if (m.freshAt !== null && m.freshAt >= need) return null;
      const f = m.inflight ?? this.#startFetch(m);
      const satisfies = f.startedAt >= need;
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;
      const outcome = await raceTimeout(
        f.promise.then(
          () => 'ok' as const,
          (err: Error) => {
            reason = err.message;
            return 'failed' as const;
          },
        ),
        remaining,
      );
      if (outcome === 'timeout') {
        reason = `upstream fetch did not finish within ${this.fetchTimeoutMs} ms`;
        break;
      }
      if (outcome === 'failed' && satisfies) break;
      if (outcome === 'ok' && satisfies && m.freshAt === null) break; // replaced meanwhile
    }
    const stale = this.#staleSeconds(m);
    this.metrics.staleServes.inc();
    // One warning per mirror per DEFAULTS.gitStaleWarnIntervalMs; every stale serve is counted.
    const now = Date.now();
    const level = now - m.staleWarnedAt >= DEFAULTS.gitStaleWarnIntervalMs ? 'warn' : 'debug';
    if (level === 'warn') m.staleWarnedAt = now;
    this.log[level](
      { repo: m.id.key, staleSeconds: stale, reason },
      `git: serving ${m.id.key} stale (last successful fetch ${stale} s ago): ${reason}`,
    );
    return stale;
  }

  #staleSeconds(m: Mirror): number {
    let last = m.lastFetchWall ?? m.meta.lastFetchAt ?? null;
    if (last === null) {
      try {
        last = statSync(m.dir).mtimeMs;
      } catch {
        last = Date.now();
      }
    }
    return Math.max(0, Math.round((Date.now() - last) / 1000));
  }

  #startFetch(m: Mirror): { startedAt: number; promise: Promise<void> } {
    const f = { startedAt: performance.now(), promise: Promise.resolve() };
    f.promise = m.lock
      .run(() => this.#fetch(m))
      .finally(() => {
        if (m.inflight === f) m.inflight = null;
      });
    f.promise.catch(() => {}); // waiters see the failure; nobody waiting is fine
    m.inflight = f;
    return f;
  }

  async #fetch(m: Mirror): Promise<void> {
    await this.#prepare(m);
    const url = this.upstreams.resolve(m.id.path);
    const watch = this.listenerCount('defaultBranchMoved') > 0 || this.listenerCount('fetched') > 0;
    const before = watch ? await headCommit(m.dir) : undefined;
    const ino = dirIdentity(m.dir);
    const startedAt = performance.now();
    const wall = Date.now();
    const end = this.metrics.fetchDuration.startTimer({ kind: 'fetch' });
    try {
      await runGit(['fetch', '--prune', '--quiet', '--no-write-fetch-head', '--', url, '+refs/*:refs/*'], {
        cwd: m.dir,
        timeoutMs: this.fetchTimeoutMs,
        signal: this.#shutdown.signal,
      });
    } catch (err) {
      end();
      const timedOut = Boolean((err as HoardError).details?.timedOut);
      this.metrics.fetches.inc({ result: timedOut ? 'timeout' : 'error' });
      // debug: a request served stale logs its own warning; the warm-up summarises failures.
      this.log.debug({ repo: m.id.key, err: (err as Error).message }, 'git: upstream fetch failed');
      throw err;
    }
    end();
    this.metrics.fetches.inc({ result: 'ok' });
    m.freshAt = startedAt;
    m.lastFetchWall = wall;
    m.ino = ino;
    m.fetchesSinceMaintenance++;
    void this.#writeMeta(m, { lastFetchAt: wall });
    if (wall - m.headCheckedAt >= this.headCheckIntervalMs) {
      m.headCheckedAt = wall;
      // After this fetch (queued on the lock), without making its waiters wait.
      this.#track(m.lock.run(() => this.#followUpstreamHead(m, url)));
    }
    this.log.debug({ repo: m.id.key, ms: Date.now() - wall }, 'git: mirror fetched');
    if (watch) {
      const after = await headCommit(m.dir);
      this.emit('fetched', { key: m.id.key, dir: m.dir, before, after } satisfies FetchedEvent);
      if (after && after !== before) {
        const ref = await symbolicHead(m.dir);
        this.emit('defaultBranchMoved', {
          key: m.id.key,
          path: m.id.path,
          dir: m.dir,
          ref: ref ?? 'HEAD',
          from: before ?? null,
          to: after,
        } satisfies DefaultBranchMovedEvent);
      }
    }
  }

  /**
   * Points the mirror's HEAD at the upstream's default branch when that changed
   * (`git fetch` never updates HEAD). Emits defaultBranchMoved when HEAD's commit changes.
   */
  async #followUpstreamHead(m: Mirror, url: string): Promise<void> {
    try {
      const r = await runGit(['ls-remote', '--symref', '--', url, 'HEAD'], {
        timeoutMs: this.fetchTimeoutMs,
        signal: this.#shutdown.signal,
      });
      const target = /^ref: (refs\/heads\/\S+)\tHEAD$/m.exec(r.stdout)?.[1];
      const current = await symbolicHead(m.dir);
      if (!target || target === current) return;
      if ((await revParse(m.dir, target)) === null) return; // not fetched (yet)
      const before = await headCommit(m.dir);
      await runGit(['symbolic-ref', 'HEAD', target], { cwd: m.dir });
      this.log.info({ repo: m.id.key, from: current, to: target }, 'git: upstream default branch changed');
      const after = await headCommit(m.dir);
      if (after && after !== before)
        this.emit('defaultBranchMoved', {
          key: m.id.key,
          path: m.id.path,
          dir: m.dir,
          ref: target,
          from: before,
          to: after,
        } satisfies DefaultBranchMovedEvent);
    } catch (err) {
      this.log.debug(
        { repo: m.id.key, err: (err as Error).message },
        'git: could not read the upstream HEAD',
      );
    }
  }

  /** Maintenance of one mirror: geometric repack with a multi-pack bitmap, refs packed, commit-graph. */
  async maintain(path: string): Promise<void> {
    const m = this.#mirror(parseRepoPath(path));
    await m.lock.run(async () => {
      if (!existsSync(join(m.dir, 'HEAD'))) return;
      const t = Date.now();
      try {
        const opts = { cwd: m.dir, timeoutMs: this.processTimeoutMs, signal: this.#shutdown.signal };
        await runGit(
          [
            ...MAINTENANCE_CONFIG,
            'repack',
            '-d',
            '--geometric=2',
            '--write-midx',
            '--write-bitmap-index',
            '--quiet',
          ],
          opts,
        );
        await runGit(['pack-refs', '--all', '--prune'], opts);
        await runGit(['commit-graph', 'write', '--reachable', '--split', '--no-progress'], opts);
        m.fetchesSinceMaintenance = 0;
        this.metrics.maintenance.inc({ result: 'ok' });
        this.log.debug({ repo: m.id.key, ms: Date.now() - t }, 'git: maintenance done');
      } catch (err) {
        this.metrics.maintenance.inc({ result: 'error' });
        this.log.warn({ repo: m.id.key, err: (err as Error).message }, 'git: maintenance failed');
      }
    });
  }

  /** Maintenance of every mirror fetched since its last maintenance, one at a time. */
  async maintainAll(): Promise<void> {
    for (const m of [...this.#mirrors.values()]) {
      if (this.#closed) return;
      if (m.fetchesSinceMaintenance > 0) await this.maintain(m.id.path);
    }
  }
}
