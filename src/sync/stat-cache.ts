// The stat cache of a synced directory: path → (size, mtime ns, ctime ns,
// inode, digest), so a scan re-reads only files whose stat changed. mtimes
// are only a cache key, never a decision: any difference in size, mtime,
// ctime or inode means "hash again", and ctime cannot be set by a user, so a
// same-size edit with its mtime restored is still seen.
//
// Racy entries: a file observed within a timestamp tick of its last change
// could change again without its stat changing. Such entries are stored but
// never trusted (git's "racily clean" rule), so the next scan hashes them.
//
// Persisted as one JSON file in `<dir>/.hoard/`, written atomically (temp +
// rename); 10,000 entries load and save in a few milliseconds.

import type { BigIntStats } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, isDigest } from '../core/digest.ts';
import { isErrno, writeFileAtomic } from '../store/fs-atomic.ts';
import { STATE_DIR } from './ignore-rules.ts';

const FILE = 'stat-cache.json';
const FORMAT = 'hoard-stat-cache/1';

export interface StatKey {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
}

export interface StatCacheEntry extends StatKey {
  digest: Digest;
  /** Observed too close to its last change to be trusted next time. */
  racy: boolean;
}

/** Encoded entry: [size, mtimeNs, ctimeNs, ino, digest, racy(0|1)]. */
type Row = [number, string, string, string, string, number];

export function statKeyOf(st: BigIntStats): StatKey {
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino };
}

export function sameStat(a: StatKey, b: StatKey): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

/** Whether a file with this stat, observed at `observedAtMs`, may still change without its stat changing. */
export function isRacy(key: StatKey, observedAtMs: number): boolean {
  const coarse = key.mtimeNs % 1_000_000_000n === 0n && key.ctimeNs % 1_000_000_000n === 0n;
  const windowMs = coarse ? DEFAULTS.syncRacyWindowCoarseMs : DEFAULTS.syncRacyWindowMs;
  const limit = BigInt(Math.floor(observedAtMs - windowMs)) * 1_000_000n;
  return key.mtimeNs >= limit || key.ctimeNs >= limit;
}

export class StatCache {
  readonly dir: string;
  #entries: Map<string, StatCacheEntry>;
  #dirty = false;

  private constructor(dir: string, entries: Map<string, StatCacheEntry>) {
    this.dir = dir;
    this.#entries = entries;
  }

  /** Loads the cache of `dir` (empty when missing or unreadable: it is only a cache). */
  static async load(dir: string): Promise<StatCache> {
    const entries = new Map<string, StatCacheEntry>();
    try {
      const v = JSON.parse(await readFile(join(dir, STATE_DIR, FILE), 'utf8')) as {
        format?: string;
        entries?: Record<string, Row>;
      } | null; // a file saying `null` is damaged too
      if (v?.format === FORMAT && v.entries && typeof v.entries === 'object') {
        for (const [path, row] of Object.entries(v.entries)) {
          if (!Array.isArray(row) || row.length !== 6 || !isDigest(row[4])) continue;
          try {
            entries.set(path, {
              size: row[0],
              mtimeNs: BigInt(row[1]),
              ctimeNs: BigInt(row[2]),
              ino: BigInt(row[3]),
              digest: row[4],
              racy: row[5] === 1,
            });
          } catch {
            // a malformed row is just a cache miss
          }
        }
      }
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !(err instanceof SyntaxError)) throw err;
    }
    return new StatCache(dir, entries);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached digest when the stat is unchanged and the entry was not racy. */
  lookup(path: string, key: StatKey): Digest | undefined {
    const e = this.#entries.get(path);
    if (!e || e.racy || !sameStat(e, key)) return undefined;
    return e.digest;
  }

  set(path: string, key: StatKey, digest: Digest, observedAtMs: number): void {
    const racy = isRacy(key, observedAtMs);
    const prev = this.#entries.get(path);
    if (prev && prev.digest === digest && prev.racy === racy && sameStat(prev, key)) return;
    this.#entries.set(path, { ...key, digest, racy });
    this.#dirty = true;
  }

  delete(path: string): void {
    if (this.#entries.delete(path)) this.#dirty = true;
  }

  /** Drops entries for paths not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const path of this.#entries.keys()) {
      if (!keep.has(path)) {
        this.#entries.delete(path);
        this.#dirty = true;
      }
    }
  }

  /** Writes the cache atomically if anything changed. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const stateDir = join(this.dir, STATE_DIR);
    await mkdir(stateDir, { recursive: true });
    const rows: Record<string, Row> = {};
    for (const [path, e] of this.#entries)
      rows[path] = [e.size, String(e.mtimeNs), String(e.ctimeNs), String(e.ino), e.digest, e.racy ? 1 : 0];
    await writeFileAtomic(join(stateDir, FILE), JSON.stringify({ format: FORMAT, entries: rows }), stateDir);
    this.#dirty = false;
  }
}
