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
//
// The class is the facade; the work is in:
//   mirror-creation.ts          the clone (cold fill, else `git clone`) into place
//   mirror-fetch.ts             one `git fetch`, what it copies, what is announced after it
//   mirror-freshness-record.ts  freshAt, the push invalidations, the directory's identity
//   mirror-maintenance.ts       repack, pack-refs, following the upstream's HEAD, old refs dropped
//   mirror-meta-file.ts         hoard.json
//   mirror-context.ts, mirror-events.ts   what mirrors share; what they announce

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Semaphore } from '../core/pool.ts';
import { headCommit } from './git-queries.ts';
import type { ColdFill } from './mirror-cold-fill.ts';
import type { MirrorActivity, MirrorContext } from './mirror-context.ts';
import { createMirror } from './mirror-creation.ts';
import { dirIdentity, type MirrorMeta, removeStaleLocks } from './mirror-disk.ts';
import { announceCreated, announceFetch, fetchMirror } from './mirror-fetch.ts';
import { type InflightFetch, MirrorFreshnessRecord } from './mirror-freshness-record.ts';
import { dropOtherRefs, followUpstreamHead, maintainMirror, packLooseRefs } from './mirror-maintenance.ts';
import { MirrorMetaFile } from './mirror-meta-file.ts';
import type { RepoId } from './upstreams.ts';

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
  readonly #freshness = new MirrorFreshnessRecord();
  /** Once per directory: hoard.json loaded and stale locks removed. */
  #prepared: Promise<void> | null = null;
  readonly #metaFile: MirrorMetaFile;

  // What this process did, whatever the directory.
  #inflight: InflightFetch | null = null;
  /** Wall-clock time of the last successful fetch known (this process, else persisted). */
  #lastFetchWall: number | null = null;
  #fetchesSinceMaintenance = 0;
  /** Clock time the upstream's HEAD (default branch) was last compared with the mirror's. */
  #headCheckedAt = Number.NEGATIVE_INFINITY;

  constructor(id: RepoId, dir: string, ctx: MirrorContext) {
    this.id = id;
    this.dir = dir;
    this.#ctx = ctx;
    this.#metaFile = new MirrorMetaFile(id, dir, ctx);
  }

  /** Clock time at which the last successful fetch of this process started; null: infinitely stale. */
  get freshAt(): number | null {
    return this.#freshness.freshAt;
  }
  get inflight(): InflightFetch | null {
    return this.#inflight;
  }
  get meta(): Readonly<MirrorMeta> {
    return this.#metaFile.meta;
  }
  /** Wall-clock time of the last successful fetch known, this process's or persisted. */
  get lastFetchWall(): number | null {
    return this.#lastFetchWall ?? this.#metaFile.meta.lastFetchAt ?? null;
  }
  get needsMaintenance(): boolean {
    return this.#fetchesSinceMaintenance > 0;
  }
  get cloned(): boolean {
    return existsSync(join(this.dir, 'HEAD'));
  }

  /** The one reset: forget what was known about the directory (replaced or restored on disk). */
  reset(): void {
    this.#freshness.reset();
    this.#prepared = null;
    this.#metaFile.forget();
  }

  /**
   * Stale after a push went through to the upstream: the next ref
   * advertisement fetches, and no fetch or cold fill already running counts
   * as fresh when it ends (it may have read the refs before the push).
   */
  invalidate(): void {
    this.#freshness.invalidate();
  }

  /** Changes with every invalidate(): a fetch that saw it change while it ran left the mirror stale. */
  get invalidations(): number {
    return this.#freshness.invalidations;
  }

  /** A mirror directory replaced under us (restored from a copy) loses its freshness. */
  checkReplaced(): void {
    if (this.#freshness.replaced(this.dir)) {
      this.#ctx.log.info(
        { repo: this.id.key },
        'git: mirror directory was replaced on disk; treating it as stale',
      );
      this.reset();
    }
  }

  async loadMeta(): Promise<void> {
    const meta = await this.#metaFile.load();
    if (meta && this.#lastFetchWall === null && meta.lastFetchAt) this.#lastFetchWall = meta.lastFetchAt;
  }

  /** Records a use (persisted lastUsedAt orders the warm-up), at most once per interval. */
  touch(): void {
    this.#metaFile.touch();
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
        if (!this.#ctx.mirrorAllRefs) await dropOtherRefs(this, this.#ctx);
      });
      this.#prepared = prepared;
      prepared.catch(() => {
        if (this.#prepared === prepared) this.#prepared = null;
      });
    }
    return this.#prepared;
  }

  async #clone(setFill: (f: ColdFill | null) => void): Promise<void> {
    if (this.cloned) return; // someone else (a restore) put it there
    const { clock } = this.#ctx;
    const start = this.#freshness.start(clock.now());
    const created = await createMirror(this, this.#ctx, {
      fill: (fill) => {
        this.#freshness.fill = fill;
        if (fill) setFill(fill);
      },
      created: (meta, wall) => {
        this.#metaFile.created(meta);
        this.#freshness.succeeded(start, dirIdentity(this.dir));
        this.#lastFetchWall = wall;
        this.#prepared = Promise.resolve();
        this.#headCheckedAt = clock.now();
      },
    });
    if (!created) return;
    // Bitmaps and commit-graph for fast serving, in the background; then the
    // creation is announced as the mirror's first fetch (the snapshot feature
    // prebuilds its anchor pack on it: after the repack, not against it).
    this.#ctx.track(this.maintain().then(() => announceCreated(this, this.#ctx)));
  }

  /** The fetch in flight, or a new one (queued on the lock). */
  fetchJoinable(): InflightFetch {
    if (this.#inflight) return this.#inflight;
    const f: InflightFetch = {
      startedAt: this.#ctx.clock.now(),
      invalidations: this.#freshness.invalidations,
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
    const { clock, log } = this.#ctx;
    const url = this.#ctx.upstreams.resolve(this.id.path);
    // HEAD before and after costs two git processes: only when someone subscribed.
    const watch = this.#ctx.defaultBranchMoved.size > 0 || this.#ctx.fetched.size > 0;
    const before = watch ? await headCommit(this.dir) : undefined;
    const ino = dirIdentity(this.dir);
    const start = this.#freshness.start(clock.now());
    const wall = Date.now();
    await fetchMirror(this, this.#ctx, url);
    this.#freshness.succeeded(start, ino);
    this.#lastFetchWall = wall;
    this.#fetchesSinceMaintenance++;
    void this.#metaFile.write({ lastFetchAt: wall });
    // The refs this fetch moved are loose files now; packed again (after the fetch's waiters
    // are released, on the lock), ls-refs is answered from `packed-refs` without a git
    // process (local-ls-refs.ts) instead of by upload-pack until the next maintenance.
    this.#ctx.track(this.lock.run(() => packLooseRefs(this, this.#ctx)));
    const now = clock.now();
    if (now - this.#headCheckedAt >= this.#ctx.headCheckIntervalMs) {
      this.#headCheckedAt = now;
      // After this fetch (queued on the lock), without making its waiters wait.
      this.#ctx.track(this.lock.run(() => followUpstreamHead(this, this.#ctx, url)));
    }
    log.debug({ repo: this.id.key, ms: Date.now() - wall }, 'git: mirror fetched');
    if (watch) await announceFetch(this, this.#ctx, before);
  }

  /** Maintenance: geometric repack with a multi-pack bitmap, refs packed, commit-graph. */
  async maintain(): Promise<void> {
    await this.lock.run(async () => {
      if (!this.cloned) return;
      await maintainMirror(this, this.#ctx, () => {
        this.#fetchesSinceMaintenance = 0;
      });
    });
  }
}
