// One mirror (`<mirrors>/<key>.git`): what this process knows about it, the
// lock that serialises its clone, fetches and maintenance, and those three
// operations. Policy about *when* to fetch (the freshness bound) is in
// mirror-freshness.ts; which mirrors exist and the background work over all
// of them is in mirror-registry.ts.
//
// What is known about the directory on disk (when it was fetched, its
// identity, whether hoard.json was read and stale locks removed) is dropped
// by one function, reset(): a directory replaced or restored on disk is a
// stranger, infinitely stale until a fetch of this process succeeds.

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Clock } from '../core/clock.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError, redactSecrets } from '../core/errors.ts';
import { Semaphore } from '../core/pool.ts';
import type { Subscribers } from '../core/subscribers.ts';
import { writeFileAtomic } from '../store/fs-atomic.ts';
import type { GitLogger } from './git-logger.ts';
import type { GitMetrics } from './git-metrics.ts';
import { runGit } from './git-process.ts';
import { headCommit, revParse, symbolicHead, upstreamHeadBranch } from './git-queries.ts';
import { ColdFill } from './mirror-cold-fill.ts';
import {
  dirIdentity,
  MAINTENANCE_CONFIG,
  MIRROR_CONFIG,
  type MirrorMeta,
  readMeta,
  removeStaleLocks,
} from './mirror-disk.ts';
import { FallBack } from './mirror-upstream-v2.ts';
import type { RepoId, Upstreams } from './upstreams.ts';

/**
 * What a mirror copies: what `git clone` fetches (branches and tags), unless
 * every ref is asked for. Hosts advertise thousands of `refs/pull/*` (eslint:
 * ~10k, twice the objects of its branches); copying them made a cold clone
 * through hoard 3× slower than a direct one. --prune prunes only inside these
 * namespaces, so refs of other namespaces left by an older all-refs mirror are
 * removed at prepare() (they would otherwise be served, never refreshed).
 */
export function mirrorRefspecs(all: boolean): string[] {
  return all ? ['+refs/*:refs/*'] : ['+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'];
}

export interface FetchedEvent {
  key: string;
  dir: string;
  /** HEAD's target commit before and after (only computed when someone subscribed). */
  before?: string | null;
  after?: string | null;
  /** The mirror was just created (its first fetch; emitted once its maintenance is done). */
  created?: boolean;
}

export interface DefaultBranchMovedEvent {
  key: string;
  path: string;
  dir: string;
  ref: string;
  from: string | null;
  to: string;
}

/** What every mirror of one manager shares: settings, clock, metrics, the shutdown signal. */
export interface MirrorContext {
  readonly tmpRoot: string;
  readonly upstreams: Upstreams;
  readonly fetchTimeoutMs: number;
  readonly processTimeoutMs: number;
  readonly headCheckIntervalMs: number;
  /** Every upstream ref (refs/pull/*…) instead of refs/heads and refs/tags only (MIRROR_REFSPECS). */
  readonly mirrorAllRefs: boolean;
  readonly clock: Clock;
  readonly metrics: GitMetrics;
  /** Aborted at close(): clones, fetches and maintenance in flight are killed. */
  readonly signal: AbortSignal;
  readonly log: GitLogger;
  readonly fetched: Subscribers<FetchedEvent>;
  readonly defaultBranchMoved: Subscribers<DefaultBranchMovedEvent>;
  /** Runs `p` in the background: errors logged, awaited by close(). */
  track(p: Promise<unknown>): void;
}

/** A fetch in flight: waiters may join it when it started late enough for them. */
/** What one mirror did in this process, for the console (counted where the global metrics are). */
export interface MirrorActivity {
  /** Ref advertisements served older than the staleness bound. */
  staleServes: number;
  /** upload-pack requests served (clones and fetches by clients). */
  uploadPacks: number;
  fetchErrors: number;
  /** The last failed clone or fetch: when (wall ms) and git's words, redacted and shortened. */
  lastError: { at: number; message: string } | null;
}

export interface InflightFetch {
  /** Clock time at which the fetch was started (its refs are at least this new). */
  startedAt: number;
  /** Mirror.invalidations when it was started: a change by its end means a push may have outdated it. */
  invalidations: number;
  promise: Promise<void>;
}

export class Mirror {
  readonly id: RepoId;
  readonly dir: string;
  /** FIFO lock: fetches, clones and maintenance of one mirror never overlap. */
  readonly lock = new Semaphore(1);
  readonly #ctx: MirrorContext;
  /** The mirror's creation in flight (single flight: every waiter shares it), with its cold fill if any. */
  #cloning: { fill: Promise<ColdFill | null>; done: Promise<void> } | null = null;
  readonly activity: MirrorActivity = { staleServes: 0, uploadPacks: 0, fetchErrors: 0, lastError: null };

  // What is known about the directory on disk; dropped by reset().
  /** Clock time at which the last successful fetch of this process started; null: infinitely stale. */
  #freshAt: number | null = null;
  /**
   * Pushes forwarded upstream (invalidate()) so far. A fetch or clone that
   * was running when one went through may have read the upstream's refs
   * before it: it keeps what it wrote but does not make the mirror fresh
   * (the pusher's next clone would otherwise miss its own push for up to the
   * freshness bound).
   */
  #invalidations = 0;
  /** The cold fill creating the mirror, while it runs: a push outdates its refs too. */
  #fill: ColdFill | null = null;
  /** Identity (device, inode, birth time) of the directory when last fetched; a change means it was replaced. */
  #ino: string | null = null;
  /** Once per directory: hoard.json loaded and stale locks removed. */
  #prepared: Promise<void> | null = null;
  #metaLoaded = false;

  // What this process did, whatever the directory.
  #inflight: InflightFetch | null = null;
  /** Wall-clock time of the last successful fetch known (this process, else persisted). */
  #lastFetchWall: number | null = null;
  #meta: MirrorMeta;
  #metaWrite: Promise<void> = Promise.resolve();
  /** Wall-clock time lastUsedAt was last written (Date.now(): it is persisted). */
  #lastUsedWritten = 0;
  #fetchesSinceMaintenance = 0;
  /** Clock time the upstream's HEAD (default branch) was last compared with the mirror's. */
  #headCheckedAt = Number.NEGATIVE_INFINITY;

  constructor(id: RepoId, dir: string, ctx: MirrorContext) {
    this.id = id;
    this.dir = dir;
    this.#ctx = ctx;
    this.#meta = { path: id.path };
  }

  get freshAt(): number | null {
    return this.#freshAt;
  }
  get inflight(): InflightFetch | null {
    return this.#inflight;
  }
  get meta(): Readonly<MirrorMeta> {
    return this.#meta;
  }
  /** Wall-clock time of the last successful fetch known, this process's or persisted. */
  get lastFetchWall(): number | null {
    return this.#lastFetchWall ?? this.#meta.lastFetchAt ?? null;
  }
  get needsMaintenance(): boolean {
    return this.#fetchesSinceMaintenance > 0;
  }
  get cloned(): boolean {
    return existsSync(join(this.dir, 'HEAD'));
  }

  /** The one reset: forget what was known about the directory (replaced or restored on disk). */
  reset(): void {
    this.#freshAt = null;
    this.#ino = null;
    this.#prepared = null;
    this.#metaLoaded = false;
  }

  /**
   * Stale after a push went through to the upstream: the next ref
   * advertisement fetches, and no fetch or cold fill already running counts
   * as fresh when it ends (it may have read the refs before the push).
   */
  invalidate(): void {
    this.#freshAt = null;
    this.#invalidations++;
    this.#fill?.outdate();
  }

  /** Changes with every invalidate(): a fetch that saw it change while it ran left the mirror stale. */
  get invalidations(): number {
    return this.#invalidations;
  }

  /** A mirror directory replaced under us (restored from a copy) loses its freshness. */
  checkReplaced(): void {
    if (this.#ino === null) return;
    if (dirIdentity(this.dir) !== this.#ino) {
      this.#ctx.log.info(
        { repo: this.id.key },
        'git: mirror directory was replaced on disk; treating it as stale',
      );
      this.reset();
    }
  }

  async loadMeta(): Promise<void> {
    if (this.#metaLoaded) return;
    const meta = await readMeta(this.dir);
    this.#metaLoaded = true;
    if (meta) {
      this.#meta = { ...meta, path: this.#meta.path ?? meta.path };
      if (this.#lastFetchWall === null && meta.lastFetchAt) this.#lastFetchWall = meta.lastFetchAt;
    }
  }

  #writeMeta(patch: Partial<MirrorMeta>): Promise<void> {
    this.#meta = { ...this.#meta, ...patch };
    const snapshot = { ...this.#meta };
    this.#metaWrite = this.#metaWrite.then(async () => {
      try {
        await writeFileAtomic(join(this.dir, 'hoard.json'), `${JSON.stringify(snapshot)}\n`, this.dir);
      } catch (err) {
        this.#ctx.log.debug(
          { repo: this.id.key, err: (err as Error).message },
          'git: could not write hoard.json',
        );
      }
    });
    return this.#metaWrite;
  }

  /** Records a use (persisted lastUsedAt orders the warm-up), at most once per interval. */
  touch(): void {
    const now = Date.now();
    if (now - this.#lastUsedWritten < DEFAULTS.gitLastUsedWriteIntervalMs) return;
    this.#lastUsedWritten = now;
    void this.#writeMeta({ lastUsedAt: now });
  }

  /** Clones the mirror when it is not on disk (one clone at a time), else prepares it. */
  async ensureCloned(): Promise<void> {
    if (this.cloned) {
      await this.prepare();
      return;
    }
    await this.#startClone().done;
  }

  /**
   * The cold fill creating this mirror (mirror-cold-fill.ts), starting the
   * mirror's creation if needed: what the first clients can be served from
   * before the mirror exists. null when the mirror exists, or is being
   * created by `git clone` (an upstream without a stateless v2 transport).
   */
  async coldFill(): Promise<ColdFill | null> {
    if (this.cloned) return null;
    return this.#startClone().fill;
  }

  #startClone(): { fill: Promise<ColdFill | null>; done: Promise<void> } {
    if (this.#cloning) return this.#cloning;
    let setFill!: (f: ColdFill | null) => void;
    const fill = new Promise<ColdFill | null>((r) => {
      setFill = r;
    });
    const run = {
      fill,
      done: this.lock
        .run(() => this.#clone(setFill))
        .finally(() => {
          setFill(null);
          if (this.#cloning === run) this.#cloning = null;
        }),
    };
    run.done.catch(() => {}); // every caller awaits it and sees the failure
    this.#cloning = run;
    return run;
  }

  /** Once per mirror and process: load hoard.json and remove lock files a killed git left behind. */
  prepare(): Promise<void> {
    if (!this.#prepared) {
      const prepared = this.lock.run(async () => {
        await this.loadMeta();
        const removed = await removeStaleLocks(this.dir);
        if (removed.length)
          this.#ctx.log.info(
            { repo: this.id.key, files: removed },
            'git: removed stale lock files left by a killed git',
          );
        if (!this.#ctx.mirrorAllRefs) await this.#dropOtherRefs();
      });
      this.#prepared = prepared;
      prepared.catch(() => {
        if (this.#prepared === prepared) this.#prepared = null;
      });
    }
    return this.#prepared;
  }

  /** Removes refs outside refs/heads and refs/tags (an all-refs mirror from before): never fetched again. */
  async #dropOtherRefs(): Promise<void> {
    const refs = (
      await runGit(['for-each-ref', '--format=%(refname)'], {
        cwd: this.dir,
        timeoutMs: this.#ctx.processTimeoutMs,
      })
    ).stdout
      .split('\n')
      .filter((r) => r && !r.startsWith('refs/heads/') && !r.startsWith('refs/tags/'));
    if (!refs.length) return;
    await runGit(['update-ref', '--stdin'], {
      cwd: this.dir,
      timeoutMs: this.#ctx.processTimeoutMs,
      input: refs.map((r) => `delete ${r}\n`).join(''),
    });
    this.#ctx.log.info(
      { repo: this.id.key, refs: refs.length },
      'git: removed refs outside refs/heads and refs/tags',
    );
  }

  async #clone(setFill: (f: ColdFill | null) => void): Promise<void> {
    if (this.cloned) return; // someone else (a restore) put it there
    const { clock, metrics, log } = this.#ctx;
    const url = this.#ctx.upstreams.resolve(this.id.path);
    const tmp = join(this.#ctx.tmpRoot, `${basename(this.dir)}-${randomUUID()}`);
    const config = Object.entries(MIRROR_CONFIG).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    const startedAt = clock.now();
    const invalidations = this.#invalidations;
    const wall = Date.now();
    const end = metrics.fetchDuration.startTimer({ kind: 'clone' });
    log.info({ repo: this.id.key }, 'git: cloning new mirror');
    const meta = { path: this.id.path, createdAt: wall, lastFetchAt: wall, lastUsedAt: wall };
    let fill: ColdFill | null = null;
    try {
      // One upstream transfer, teed to the first clients (mirror-cold-fill.ts) …
      fill = new ColdFill({
        key: this.id.key,
        url,
        dir: tmp,
        spoolPath: `${tmp}.pack`,
        prefixes: this.#ctx.mirrorAllRefs ? [] : ['refs/heads/', 'refs/tags/'],
        signal: this.#ctx.signal,
        timeoutMs: this.#ctx.processTimeoutMs,
        clock,
        log,
      });
      this.#fill = fill;
      setFill(fill);
      let filled = false;
      try {
        await fill.run();
        filled = true;
      } catch (err) {
        if (!(err instanceof FallBack)) throw err;
        log.info({ repo: this.id.key, reason: err.message }, 'git: mirroring with git clone');
        await rm(tmp, { recursive: true, force: true });
      }
      // … or, for an upstream that cannot be asked that way (ssh, git, not v2), `git clone`:
      // `--bare` copies branches and tags (and HEAD), `--mirror` every ref.
      if (!filled) {
        const mode = this.#ctx.mirrorAllRefs ? '--mirror' : '--bare';
        await runGit(['clone', mode, '--quiet', ...config, '--', url, tmp], {
          timeoutMs: this.#ctx.processTimeoutMs,
          signal: this.#ctx.signal,
        });
      }
      await writeFile(join(tmp, 'hoard.json'), `${JSON.stringify(meta)}\n`);
      await mkdir(dirname(this.dir), { recursive: true });
      await rename(tmp, this.dir);
    } catch (err) {
      this.#fill = null;
      end();
      metrics.clones.inc({ result: 'error' });
      this.#failed(err);
      await fill?.cleanup();
      await rm(tmp, { recursive: true, force: true });
      if (this.cloned) return;
      // The upstream's own words (git's stderr: host names, addresses, paths) go to the
      // log only; the client learns that the upstream failed, not how (SSRF probing).
      log.warn({ repo: this.id.key, err: (err as Error).message }, 'git: mirror clone failed');
      throw new HoardError('HOARD_EGIT', `could not mirror ${this.id.path}: upstream fetch failed`, {
        cause: err,
        hint: 'check that the upstream exists and is reachable from the hoard server (details in its log)',
        details: { repo: this.id.key, clientSafe: true },
      });
    }
    this.#fill = null;
    end();
    metrics.clones.inc({ result: 'ok' });
    this.#meta = meta;
    this.#metaLoaded = true;
    this.#lastUsedWritten = Date.now();
    this.#freshAt = this.#invalidations === invalidations ? startedAt : null;
    this.#lastFetchWall = wall;
    this.#ino = dirIdentity(this.dir);
    this.#prepared = Promise.resolve();
    this.#headCheckedAt = clock.now();
    // New requests are served by the mirror from now on; readers of the spool keep their descriptor.
    await fill?.cleanup();
    log.info({ repo: this.id.key, ms: Date.now() - wall }, 'git: mirror cloned');
    // Bitmaps and commit-graph for fast serving, in the background; then the
    // creation is announced as the mirror's first fetch (the snapshot feature
    // prebuilds its anchor pack on it: after the repack, not against it).
    this.#ctx.track(this.maintain().then(() => this.#announceCreated()));
  }

  /** onFetched of a new mirror (`created`, no `before`), once it is maintained. */
  async #announceCreated(): Promise<void> {
    if (this.#ctx.fetched.size === 0) return;
    const after = await headCommit(this.dir).catch(() => null);
    this.#ctx.fetched.emit({ key: this.id.key, dir: this.dir, before: null, after, created: true }, (err) =>
      this.#subscriberFailed('fetched', err),
    );
  }

  /** The fetch in flight, or a new one (queued on the lock). */
  fetchJoinable(): InflightFetch {
    if (this.#inflight) return this.#inflight;
    const f: InflightFetch = {
      startedAt: this.#ctx.clock.now(),
      invalidations: this.#invalidations,
      promise: Promise.resolve(),
    };
    f.promise = this.lock
      .run(() => this.#fetch())
      .finally(() => {
        if (this.#inflight === f) this.#inflight = null;
      });
    f.promise.catch(() => {}); // waiters see the failure; nobody waiting is fine
    this.#inflight = f;
    return f;
  }

  async #fetch(): Promise<void> {
    await this.prepare();
    const { clock, metrics, log } = this.#ctx;
    const url = this.#ctx.upstreams.resolve(this.id.path);
    // HEAD before and after costs two git processes: only when someone subscribed.
    const watch = this.#ctx.defaultBranchMoved.size > 0 || this.#ctx.fetched.size > 0;
    const before = watch ? await headCommit(this.dir) : undefined;
    const ino = dirIdentity(this.dir);
    const startedAt = clock.now();
    const invalidations = this.#invalidations;
    const wall = Date.now();
    const end = metrics.fetchDuration.startTimer({ kind: 'fetch' });
    try {
      const refspecs = mirrorRefspecs(this.#ctx.mirrorAllRefs);
      await runGit(['fetch', '--prune', '--quiet', '--no-write-fetch-head', '--', url, ...refspecs], {
        cwd: this.dir,
        timeoutMs: this.#ctx.fetchTimeoutMs,
        signal: this.#ctx.signal,
      });
    } catch (err) {
      end();
      const timedOut = Boolean((err as HoardError).details?.timedOut);
      metrics.fetches.inc({ result: timedOut ? 'timeout' : 'error' });
      this.#failed(err);
      // debug: a request served stale logs its own warning; the warm-up summarises failures.
      log.debug({ repo: this.id.key, err: (err as Error).message }, 'git: upstream fetch failed');
      throw err;
    }
    end();
    metrics.fetches.inc({ result: 'ok' });
    this.#freshAt = this.#invalidations === invalidations ? startedAt : null;
    this.#lastFetchWall = wall;
    this.#ino = ino;
    this.#fetchesSinceMaintenance++;
    void this.#writeMeta({ lastFetchAt: wall });
    // The refs this fetch moved are loose files now; packed again (after the fetch's waiters
    // are released, on the lock), ls-refs is answered from `packed-refs` without a git
    // process (local-ls-refs.ts) instead of by upload-pack until the next maintenance.
    this.#ctx.track(this.lock.run(() => this.#packRefs()));
    const now = clock.now();
    if (now - this.#headCheckedAt >= this.#ctx.headCheckIntervalMs) {
      this.#headCheckedAt = now;
      // After this fetch (queued on the lock), without making its waiters wait.
      this.#ctx.track(this.lock.run(() => this.#followUpstreamHead(url)));
    }
    log.debug({ repo: this.id.key, ms: Date.now() - wall }, 'git: mirror fetched');
    if (watch) {
      const after = await headCommit(this.dir);
      this.#ctx.fetched.emit({ key: this.id.key, dir: this.dir, before, after }, (err) =>
        this.#subscriberFailed('fetched', err),
      );
      if (after && after !== before) {
        const ref = await symbolicHead(this.dir);
        this.#emitMoved(ref ?? 'HEAD', before ?? null, after);
      }
    }
  }

  #failed(err: unknown): void {
    const message = redactSecrets(String((err as Error)?.message ?? err)).slice(0, 500);
    this.activity.fetchErrors++;
    this.activity.lastError = { at: Date.now(), message };
  }

  #emitMoved(ref: string, from: string | null, to: string): void {
    const event = { key: this.id.key, path: this.id.path, dir: this.dir, ref, from, to };
    this.#ctx.defaultBranchMoved.emit(event, (err) => this.#subscriberFailed('defaultBranchMoved', err));
  }

  #subscriberFailed(event: string, err: unknown): void {
    this.#ctx.log.error({ repo: this.id.key, err }, `git: a ${event} subscriber failed`);
  }

  /**
   * Points the mirror's HEAD at the upstream's default branch when that changed
   * (`git fetch` never updates HEAD); defaultBranchMoved when HEAD's commit changes.
   */
  /** `git pack-refs --all --prune`, when the refs directory holds loose refs; failures only logged. */
  async #packRefs(): Promise<void> {
    try {
      const entries = await readdir(join(this.dir, 'refs'), { recursive: true, withFileTypes: true });
      if (!entries.some((e) => !e.isDirectory())) return;
      await runGit(['pack-refs', '--all', '--prune'], {
        cwd: this.dir,
        timeoutMs: this.#ctx.fetchTimeoutMs,
        signal: this.#ctx.signal,
      });
    } catch (err) {
      this.#ctx.log.debug({ repo: this.id.key, err: (err as Error).message }, 'git: pack-refs failed');
    }
  }

  async #followUpstreamHead(url: string): Promise<void> {
    try {
      const target = await upstreamHeadBranch(url, {
        timeoutMs: this.#ctx.fetchTimeoutMs,
        signal: this.#ctx.signal,
      });
      const current = await symbolicHead(this.dir);
      if (!target || target === current) return;
      if ((await revParse(this.dir, target)) === null) return; // not fetched (yet)
      const before = await headCommit(this.dir);
      await runGit(['symbolic-ref', 'HEAD', target], { cwd: this.dir });
      this.#ctx.log.info(
        { repo: this.id.key, from: current, to: target },
        'git: upstream default branch changed',
      );
      const after = await headCommit(this.dir);
      if (after && after !== before) this.#emitMoved(target, before, after);
    } catch (err) {
      this.#ctx.log.debug(
        { repo: this.id.key, err: (err as Error).message },
        'git: could not read the upstream HEAD',
      );
    }
  }

  /** Maintenance: geometric repack with a multi-pack bitmap, refs packed, commit-graph. */
  async maintain(): Promise<void> {
    const { metrics, log } = this.#ctx;
    await this.lock.run(async () => {
      if (!this.cloned) return;
      const t = Date.now();
      try {
        const opts = { cwd: this.dir, timeoutMs: this.#ctx.processTimeoutMs, signal: this.#ctx.signal };
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
        this.#fetchesSinceMaintenance = 0;
        metrics.maintenance.inc({ result: 'ok' });
        log.debug({ repo: this.id.key, ms: Date.now() - t }, 'git: maintenance done');
      } catch (err) {
        metrics.maintenance.inc({ result: 'error' });
        log.warn({ repo: this.id.key, err: (err as Error).message }, 'git: maintenance failed');
      }
    });
  }
}
