// The git mirrors of one server, as the routes, the server plugin and the
// snapshot service see them: one facade over the parts that do the work.
//
//   mirror.ts            one mirror: its state, lock, clone/fetch/maintain (and its parts)
//   mirror-freshness.ts  the freshness bound and the unknown-object budget
//   mirror-registry.ts   which mirrors exist, warm-up, maintenance, background work
//   git-queries.ts       read-only git questions (rev-parse, ls-remote, …)
//   git-metrics.ts       the metrics, on the registry given (the server's)
//
// Subscribers (onDefaultBranchMoved, onFetched) are typed; HEAD is compared
// before and after a fetch only while someone is subscribed.

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { type HoardError, redactSecrets } from '../core/errors.ts';
import { type Listener, Subscribers } from '../core/subscribers.ts';
import { type GitLogger, silentLogger } from './git-logger.ts';
import { type GitMetrics, gitMetrics } from './git-metrics.ts';
import { runGit } from './git-process.ts';
import { resolveRefName } from './git-queries.ts';
import { Mirror } from './mirror.ts';
import type { ColdFill } from './mirror-cold-fill.ts';
import type { MirrorActivity, MirrorContext } from './mirror-context.ts';
import { mirrorConfigText } from './mirror-disk.ts';
import type { DefaultBranchMovedEvent, FetchedEvent } from './mirror-events.ts';
import { MirrorFreshness } from './mirror-freshness.ts';
import { MirrorRegistry, type WarmUpStatus } from './mirror-registry.ts';
import { mirrorDir, parseRepoPath, type RepoId, Upstreams } from './upstreams.ts';

export type { GitLogger } from './git-logger.ts';
export type { DefaultBranchMovedEvent, FetchedEvent } from './mirror-events.ts';

export interface MirrorManagerOptions {
  /** The server's data directory; mirrors live in `<dataDir>/git/mirrors`. */
  dataDir: string;
  upstreams?: Upstreams;
  maxStalenessMs?: number;
  fetchTimeoutMs?: number;
  processTimeoutMs?: number;
  warmConcurrency?: number;
  maintenanceIntervalMs?: number;
  /** Mirror every upstream ref (refs/pull/* too), not only branches and tags (default DEFAULTS.gitMirrorPullRefs). */
  mirrorAllRefs?: boolean;
  /** How often a fetch also checks the upstream's default branch (default DEFAULTS.gitHeadCheckIntervalMs). */
  headCheckIntervalMs?: number;
  log?: GitLogger;
  /** Upstream fetches for unknown wanted objects per window and mirror (default DEFAULTS.gitUnknownObjectFetchesPerWindow). */
  unknownObjectFetchesPerWindow?: number;
  /** The window of that budget (default DEFAULTS.gitUnknownObjectFetchWindowMs). */
  unknownObjectFetchWindowMs?: number;
  /** Time of the freshness bound, fetch budgets and intervals (tests inject one); default systemClock. */
  clock?: Clock;
  /** Registry for the git metrics: the server's (default: a private one, never prom-client's global). */
  registry?: Registry;
}

/** One mirror as the console and /v1/status show it. */
export interface MirrorStatus {
  key: string;
  path: string;
  /** The upstream URL (credentials redacted); null when no upstream maps it any more. */
  upstream: string | null;
  dir: string;
  cloned: boolean;
  /** Wall-clock ms of the last successful fetch (this process's or persisted); null: never. */
  lastFetchAt: number | null;
  /** Ms since the last successful fetch of this process (clock time); null: not fetched since start. */
  ageMs: number | null;
  /** Within the freshness bound now. */
  fresh: boolean;
  fetching: boolean;
  lastUsedAt: number | null;
  activity: Readonly<MirrorActivity>;
}

export interface OpenResult {
  key: string;
  dir: string;
  /** Seconds since the last successful fetch when the mirror is served stale; null when fresh. */
  staleSeconds: number | null;
}

export class MirrorManager {
  readonly root: string;
  readonly mirrorsRoot: string;
  readonly tmpRoot: string;
  readonly upstreams: Upstreams;
  readonly maxStalenessMs: number;
  readonly fetchTimeoutMs: number;
  readonly processTimeoutMs: number;
  readonly warmConcurrency: number;
  readonly maintenanceIntervalMs: number;
  readonly mirrorAllRefs: boolean;
  readonly headCheckIntervalMs: number;
  readonly unknownObjectFetchesPerWindow: number;
  readonly unknownObjectFetchWindowMs: number;
  readonly clock: Clock;
  readonly metrics: GitMetrics;
  log: GitLogger;
  #ownLogger: boolean;
  readonly #fetched = new Subscribers<FetchedEvent>();
  readonly #defaultBranchMoved = new Subscribers<DefaultBranchMovedEvent>();
  readonly #registry: MirrorRegistry;
  readonly #freshness: MirrorFreshness;
  #template: Promise<string> | null = null;

  constructor(opts: MirrorManagerOptions) {
    this.root = join(opts.dataDir, 'git');
    this.mirrorsRoot = join(this.root, 'mirrors');
    this.tmpRoot = join(this.root, 'tmp');
    this.upstreams = opts.upstreams ?? new Upstreams();
    this.maxStalenessMs = opts.maxStalenessMs ?? DEFAULTS.gitMaxStalenessMs;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULTS.gitFetchTimeoutMs;
    this.processTimeoutMs = opts.processTimeoutMs ?? DEFAULTS.gitProcessTimeoutMs;
    this.warmConcurrency = Math.max(1, opts.warmConcurrency ?? DEFAULTS.gitWarmConcurrency);
    this.maintenanceIntervalMs = opts.maintenanceIntervalMs ?? DEFAULTS.gitMaintenanceIntervalMs;
    this.mirrorAllRefs = opts.mirrorAllRefs ?? DEFAULTS.gitMirrorPullRefs;
    this.headCheckIntervalMs = opts.headCheckIntervalMs ?? DEFAULTS.gitHeadCheckIntervalMs;
    this.unknownObjectFetchesPerWindow =
      opts.unknownObjectFetchesPerWindow ?? DEFAULTS.gitUnknownObjectFetchesPerWindow;
    this.unknownObjectFetchWindowMs =
      opts.unknownObjectFetchWindowMs ?? DEFAULTS.gitUnknownObjectFetchWindowMs;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.#ownLogger = opts.log !== undefined;
    this.metrics = gitMetrics(opts.registry ?? new Registry());
    const log = () => this.log;
    this.#registry = new MirrorRegistry({
      mirrorsRoot: this.mirrorsRoot,
      tmpRoot: this.tmpRoot,
      upstreams: this.upstreams,
      warmConcurrency: this.warmConcurrency,
      maintenanceIntervalMs: this.maintenanceIntervalMs,
      create: (id, dir) => new Mirror(id, dir, context),
      log,
    });
    const registry = this.#registry;
    const manager = this;
    const context: MirrorContext = {
      tmpRoot: this.tmpRoot,
      upstreams: this.upstreams,
      fetchTimeoutMs: this.fetchTimeoutMs,
      processTimeoutMs: this.processTimeoutMs,
      headCheckIntervalMs: this.headCheckIntervalMs,
      mirrorAllRefs: this.mirrorAllRefs,
      clock: this.clock,
      metrics: this.metrics,
      signal: registry.signal,
      get log() {
        return manager.log;
      },
      fetched: this.#fetched,
      defaultBranchMoved: this.#defaultBranchMoved,
      track: (p) => {
        registry.track(p);
      },
    };
    this.#freshness = new MirrorFreshness({
      clock: this.clock,
      maxStalenessMs: this.maxStalenessMs,
      fetchTimeoutMs: this.fetchTimeoutMs,
      unknownObjectFetchesPerWindow: this.unknownObjectFetchesPerWindow,
      unknownObjectFetchWindowMs: this.unknownObjectFetchWindowMs,
      metrics: this.metrics,
      log,
    });
  }

  /** Uses `log` unless a logger was given to the constructor. */
  useLoggerIfUnset(log: GitLogger): void {
    if (!this.#ownLogger) {
      this.log = log;
      this.#ownLogger = true;
    }
  }

  // ---- subscriptions ------------------------------------------------------

  /**
   * Calls `listener` when HEAD's commit changes: a fetch moved the default
   * branch, or HEAD was repointed to the upstream's new default branch.
   * Returns the unsubscribe function.
   */
  onDefaultBranchMoved(listener: Listener<DefaultBranchMovedEvent>): () => void {
    return this.#defaultBranchMoved.add(listener);
  }

  /** Calls `listener` after every successful fetch, with HEAD's commit before and after. */
  onFetched(listener: Listener<FetchedEvent>): () => void {
    return this.#fetched.add(listener);
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Prepares the directories, then discovers the mirrors on disk and warms
   * them in the background (most recently used first). Returns at once: the
   * server can listen and be ready while mirrors warm up.
   */
  start(): Promise<void> {
    return this.#registry.start();
  }

  /** Resolves when the start-up warm-up has finished. */
  warmedUp(): Promise<void> {
    return this.#registry.warmedUp();
  }

  get warmUpStatus(): WarmUpStatus {
    return this.#registry.warmUpStatus;
  }

  /** Stops background work (warm-up, maintenance timer) and waits for it. */
  close(): Promise<void> {
    return this.#registry.close();
  }

  /** Mirrors on disk: `{key, dir}` for every `<mirrors>/…/<name>.git` holding a HEAD. */
  discover(): Promise<{ key: string; dir: string }[]> {
    return this.#registry.discover();
  }

  /** Every mirror this process knows, by key. */
  list(): MirrorStatus[] {
    const now = this.clock.now();
    return this.#registry
      .all()
      .map((m): MirrorStatus => {
        let upstream: string | null;
        try {
          upstream = redactSecrets(this.upstreams.resolve(m.id.path));
        } catch {
          upstream = null;
        }
        const ageMs = m.freshAt === null ? null : now - m.freshAt;
        return {
          key: m.id.key,
          path: m.id.path,
          upstream,
          dir: m.dir,
          cloned: m.cloned,
          lastFetchAt: m.lastFetchWall,
          ageMs,
          fresh: ageMs !== null && ageMs <= this.maxStalenessMs,
          fetching: m.inflight !== null,
          lastUsedAt: m.meta.lastUsedAt ?? null,
          activity: {
            ...m.activity,
            // git's words about an operator's upstream help the operator; about a host
            // any client named (the implicit mapping) they would answer SSRF probes.
            lastError:
              m.activity.lastError && !this.upstreams.isMapped(m.id.path)
                ? {
                    at: m.activity.lastError.at,
                    message: 'upstream fetch failed (details in the server log)',
                  }
                : m.activity.lastError,
          },
        };
      })
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Counts an upload-pack served from the mirror of `key` (the console's "clones served"). */
  countUploadPack(key: string): void {
    const m = this.#registry.peek(key);
    if (m) m.activity.uploadPacks++;
  }

  // ---- requests -------------------------------------------------------------

  /**
   * Makes the mirror of `path` servable: clones it if needed (single-flight)
   * and, when `refs` is set (a ref advertisement will be served), enforces the
   * freshness bound.
   */
  async open(path: string, opts: { refs: boolean } = { refs: true }): Promise<OpenResult> {
    const t0 = this.#freshness.now();
    const id = this.#servable(path);
    const m = this.#registry.get(id);
    m.checkReplaced();
    await m.ensureCloned();
    m.touch();
    if (!opts.refs) return { key: id.key, dir: m.dir, staleSeconds: null };
    return { key: id.key, dir: m.dir, staleSeconds: await this.#freshness.refsFresh(m, t0) };
  }

  /**
   * The cold fill creating the mirror of `path` (starting its creation if
   * needed): what the first clients are served from before the mirror exists
   * (git-fill-answers.ts). null when the mirror exists or is made by `git clone`.
   */
  async coldFill(path: string): Promise<ColdFill | null> {
    const m = this.#registry.get(this.#servable(path));
    m.checkReplaced();
    return m.coldFill();
  }

  /** Whether refs read by `fill` may answer a ref advertisement requested at clock time `t0`. */
  fillFreshFor(fill: ColdFill, t0: number): boolean {
    return !fill.outdated && fill.startedAt >= t0 - this.maxStalenessMs;
  }

  /**
   * An empty bare repository configured like a mirror: its upload-pack
   * advertises the capabilities (protocol v2) a mirror's would, before the
   * mirror exists. Made once, atomically (rename).
   */
  templateDir(): Promise<string> {
    const dir = join(this.root, 'template.git');
    if (!this.#template) {
      this.#template = (async () => {
        if (existsSync(join(dir, 'HEAD'))) return dir;
        const tmp = join(this.tmpRoot, `template-${randomUUID()}`);
        await runGit(['init', '--bare', '--quiet', tmp], { timeoutMs: this.processTimeoutMs });
        await appendFile(join(tmp, 'config'), mirrorConfigText());
        await rm(dir, { recursive: true, force: true });
        await rename(tmp, dir);
        return dir;
      })();
      this.#template.catch(() => {
        this.#template = null;
      });
    }
    return this.#template;
  }

  /**
   * Of `ids`, those the mirror lacks even after a fetch; these fetches are
   * bounded per mirror (see MirrorFreshness.missingAfterFetch).
   */
  ensureObjects(path: string, ids: string[]): Promise<string[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.#freshness.missingAfterFetch(this.#registry.get(this.#servable(path)), ids);
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
    const r = await resolveRefName(o.dir, o.key, ref, this.processTimeoutMs);
    return { key: o.key, dir: o.dir, ref: r.ref, commit: r.commit, staleSeconds: o.staleSeconds };
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
    this.#registry.get(parseRepoPath(path)).reset();
  }

  /** Marks the mirror stale after a push went through to its upstream. */
  invalidate(path: string): void {
    this.#registry.peek(parseRepoPath(path).key)?.invalidate();
  }

  upstreamOf(path: string): string {
    return this.upstreams.resolve(parseRepoPath(path).path);
  }

  /** Maintenance of one mirror: geometric repack with a multi-pack bitmap, refs packed, commit-graph. */
  maintain(path: string): Promise<void> {
    return this.#registry.get(parseRepoPath(path)).maintain();
  }

  /** Maintenance of every mirror fetched since its last maintenance, one at a time. */
  maintainAll(): Promise<void> {
    return this.#registry.maintainAll();
  }

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
}
