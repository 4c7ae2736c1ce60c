// Expiry of cache refs: refs whose names start with one of the cache
// prefixes (`--cache-ref-prefixes`, default `cache/`) are deleted after
// `--cache-ref-ttl` without use (a GET or PUT through this server). Other refs
// never expire. Deletion is a compare-and-set against the version just
// listed, so a ref written meanwhile is kept. Once a ref is gone, its blobs
// are garbage for the bounded disk and `hoard gc`.
//
// Last-use times are kept in memory and saved to `<data>/index/ref-usage`
// (JSON) with the disk index cadence and at close; a ref this server has
// never seen used starts its clock when the server first lists it.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { isHoardError } from '../core/errors.ts';
import { isErrno, writeFileAtomic } from '../store/fs-atomic.ts';
import type { RefStore } from '../store/ref-store.ts';

export interface RefExpiryOptions {
  prefixes: string[];
  ttlMs: number;
  dataDir: string;
  /** How often to sweep (default: ttl/10, between 1 s and 1 h). */
  sweepEveryMs?: number;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
  now?: () => number;
}

export class RefExpiry {
  readonly opts: RefExpiryOptions;
  readonly refs: RefStore;
  #used = new Map<string, number>();
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<string[]> | undefined;
  readonly path: string;
  expired = 0;

  constructor(refs: RefStore, opts: RefExpiryOptions) {
    this.refs = refs;
    this.opts = opts;
    this.path = join(opts.dataDir, 'index', 'ref-usage');
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  isCacheRef(name: string): boolean {
    return this.opts.prefixes.some((p) => name.startsWith(p));
  }

  /** A ref was read or written. */
  touch(name: string): void {
    if (!this.isCacheRef(name)) return;
    this.#used.set(name, this.#now());
    this.#dirty = true;
  }

  /** When the cache ref was last used through this server (ms), if known; it expires ttlMs later. */
  lastUsed(name: string): number | undefined {
    return this.#used.get(name);
  }

  async open(): Promise<void> {
    await mkdir(join(this.opts.dataDir, 'index'), { recursive: true });
    try {
      const saved: unknown = JSON.parse(await readFile(this.path, 'utf8'));
      // A damaged file (not an object of numbers) loses only last-use times: clocks restart.
      if (saved && typeof saved === 'object')
        for (const [k, v] of Object.entries(saved)) if (Number.isFinite(v)) this.#used.set(k, v as number);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !(err instanceof SyntaxError)) throw err;
    }
    const every =
      this.opts.sweepEveryMs ?? Math.min(60 * 60_000, Math.max(1000, Math.floor(this.opts.ttlMs / 10)));
    this.#timer = setInterval(() => {
      void this.sweep().catch((err) => this.opts.log?.('cache ref expiry failed', { err: String(err) }));
      void this.save();
    }, every);
    this.#timer.unref();
  }

  /** Deletes cache refs unused for the TTL; returns their names. One sweep at a time. */
  sweep(): Promise<string[]> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<string[]> {
    const now = this.#now();
    const gone: string[] = [];
    for (const prefix of this.opts.prefixes) {
      for await (const r of this.refs.list(prefix)) {
        const used = this.#used.get(r.name);
        if (used === undefined) {
          this.#used.set(r.name, now); // first seen: its clock starts now
          this.#dirty = true;
          continue;
        }
        if (now - used < this.opts.ttlMs) continue;
        try {
          await this.refs.delete(r.name, r.version);
          gone.push(r.name);
          this.#used.delete(r.name);
          this.#dirty = true;
          this.expired++;
        } catch (err) {
          if (!isHoardError(err, 'HOARD_EREF_CONFLICT') && !isHoardError(err, 'HOARD_EREF_NOT_FOUND'))
            throw err;
        }
      }
    }
    if (gone.length) this.opts.log?.('expired unused cache refs', { refs: gone });
    return gone;
  }

  async save(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    try {
      await mkdir(join(this.opts.dataDir, 'index'), { recursive: true });
      await writeFileAtomic(
        this.path,
        JSON.stringify(Object.fromEntries(this.#used)),
        join(this.opts.dataDir, 'index'),
      );
    } catch (err) {
      this.#dirty = true;
      this.opts.log?.('saving ref usage failed', { err: String(err) });
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#sweeping?.catch(() => {});
    await this.save();
  }
}

export const DEFAULT_CACHE_REF_PREFIXES = DEFAULTS.cacheRefPrefixes;
