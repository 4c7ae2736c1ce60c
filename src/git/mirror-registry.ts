// Which mirrors this server has (`<data>/git/mirrors/…/<name>.git`), and the
// work over all of them: discovery and warm-up at start-up (most recently
// used first, in the background so the server is ready at once), the
// periodic maintenance, and the background tasks close() waits for.

import type { Dirent } from 'node:fs';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { forEachLimit } from '../core/pool.ts';
import type { GitLogger } from './git-logger.ts';
import type { Mirror } from './mirror.ts';
import { readMeta } from './mirror-disk.ts';
import { mirrorDir, parseRepoPath, type RepoId, type Upstreams } from './upstreams.ts';

export interface MirrorRegistryOptions {
  mirrorsRoot: string;
  tmpRoot: string;
  upstreams: Upstreams;
  warmConcurrency: number;
  maintenanceIntervalMs: number;
  /** Builds the Mirror of a repo (once per key). */
  create(id: RepoId, dir: string): Mirror;
  /** Read at each use: the manager's logger may be set after construction. */
  log(): GitLogger;
}

export interface WarmUpStatus {
  total: number;
  done: number;
  finished: boolean;
}

export class MirrorRegistry {
  readonly #o: MirrorRegistryOptions;
  #mirrors = new Map<string, Mirror>();
  #closed = false;
  #shutdown = new AbortController();
  #maintenanceTimer: NodeJS.Timeout | null = null;
  #warm: WarmUpStatus = { total: 0, done: 0, finished: false };
  #warmDone: Promise<void> = Promise.resolve();
  #background = new Set<Promise<unknown>>();

  constructor(opts: MirrorRegistryOptions) {
    this.#o = opts;
  }

  /** Aborted by close(). */
  get signal(): AbortSignal {
    return this.#shutdown.signal;
  }

  /** The mirror of `id`, created (not cloned) on first use. */
  get(id: RepoId): Mirror {
    let m = this.#mirrors.get(id.key);
    if (!m) {
      m = this.#o.create(id, mirrorDir(this.#o.mirrorsRoot, id.key));
      this.#mirrors.set(id.key, m);
    }
    return m;
  }

  /** Every mirror this process knows (warmed up from disk or used since start). */
  all(): Mirror[] {
    return [...this.#mirrors.values()];
  }

  /** The mirror of `key` if this process has seen it. */
  peek(key: string): Mirror | undefined {
    return this.#mirrors.get(key);
  }

  /**
   * Prepares the directories, then discovers the mirrors on disk and warms
   * them in the background; maintenance runs every maintenanceIntervalMs.
   */
  async start(): Promise<void> {
    await mkdir(this.#o.mirrorsRoot, { recursive: true });
    // Partial clones of a previous process.
    await rm(this.#o.tmpRoot, { recursive: true, force: true });
    await mkdir(this.#o.tmpRoot, { recursive: true });
    this.#warmDone = this.track(this.#warmUp());
    if (this.#o.maintenanceIntervalMs > 0) {
      this.#maintenanceTimer = setInterval(() => {
        this.track(this.maintainAll());
      }, this.#o.maintenanceIntervalMs);
      this.#maintenanceTimer.unref();
    }
  }

  warmedUp(): Promise<void> {
    return this.#warmDone;
  }

  get warmUpStatus(): WarmUpStatus {
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

  /** Runs `p` in the background: a failure is logged, close() waits for it. */
  track(p: Promise<unknown>): Promise<void> {
    const q = p.then(
      () => {},
      (err) => {
        this.#o.log().error({ err }, 'git background task failed');
      },
    );
    this.#background.add(q);
    q.finally(() => this.#background.delete(q));
    return q;
  }

  /** Mirrors on disk: `{key, dir}` for every `<mirrors>/…/<name>.git` holding a HEAD. */
  async discover(): Promise<{ key: string; dir: string }[]> {
    const root = this.#o.mirrorsRoot;
    const found: { key: string; dir: string }[] = [];
    const walk = async (d: string, depth: number): Promise<void> => {
      let entries: Dirent[];
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
            found.push({ key: relative(root, p).split(sep).join('/').slice(0, -4), dir: p });
        } else if (depth < 8) await walk(p, depth + 1);
      }
    };
    await walk(root, 0);
    return found;
  }

  async #warmUp(): Promise<void> {
    const log = this.#o.log();
    const t0 = Date.now();
    const mirrors: Mirror[] = [];
    for (const f of await this.discover()) {
      let id: RepoId;
      try {
        const meta = await readMeta(f.dir);
        id = parseRepoPath(meta?.path ?? `${f.key}.git`);
        if (id.key !== f.key) id = parseRepoPath(`${f.key}.git`);
      } catch {
        log.warn({ dir: f.dir }, 'git: ignoring mirror directory with an invalid name');
        continue;
      }
      try {
        this.#o.upstreams.resolve(id.path);
      } catch {
        // Mapped once, not any more (configuration changed): kept on disk, never fetched or served.
        log.info({ repo: id.key }, 'git: not warming a mirror no upstream maps any more');
        continue;
      }
      const m = this.get(id);
      await m.loadMeta();
      mirrors.push(m);
    }
    mirrors.sort((a, b) => (b.meta.lastUsedAt ?? 0) - (a.meta.lastUsedAt ?? 0));
    this.#warm = { total: mirrors.length, done: 0, finished: false };
    let ok = 0;
    let failed = 0;
    const concurrency = this.#o.warmConcurrency;
    await forEachLimit(mirrors, concurrency, async (m) => {
      if (this.#closed) return;
      const t = Date.now();
      try {
        await m.prepare();
        // A request may have fetched it already; otherwise fetch (or join the fetch in flight).
        if (m.freshAt === null) await m.fetchJoinable().promise;
        ok++;
        log.debug({ repo: m.id.key, ms: Date.now() - t }, 'git: mirror warmed');
      } catch (err) {
        failed++;
        log.debug({ repo: m.id.key, err: (err as Error).message }, 'git: mirror warm-up fetch failed');
      }
      this.#warm.done++;
    });
    this.#warm.finished = true;
    const ms = Date.now() - t0;
    log.info(
      { mirrors: mirrors.length, fetched: ok, failed, ms, concurrency },
      `git warm-up: ${ok} of ${mirrors.length} mirrors fetched, ${failed} failed, in ${ms} ms`,
    );
  }

  /** Maintenance of every mirror fetched since its last maintenance, one at a time. */
  async maintainAll(): Promise<void> {
    for (const m of [...this.#mirrors.values()]) {
      if (this.#closed) return;
      if (m.needsMaintenance) await m.maintain();
    }
  }
}
