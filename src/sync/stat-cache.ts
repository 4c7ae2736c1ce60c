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
// Persisted as one binary file in `<dir>/.hoard/` (stat-cache.bin), written
// atomically (temp + rename). Loading it must cost milliseconds at 50,000
// entries: a no-op push is little more than this load plus one lstat per
// file. So the file is read whole and only indexed (path → offset); an
// entry's fields are decoded when that path is looked up, and entries
// changed since the load live in a small overlay until the next save.
//
//   "hoard-stat-cache/2\n"  magic (19 bytes)
//   u32 entry count
//   per entry: u16 path length, path (UTF-8), u8 racy (0|1),
//              u64 size, i64 mtime ns, i64 ctime ns, u64 inode, 32-byte SHA-256
//   u32 CRC-32 of everything before it
//
// Everything little-endian. A file that is truncated, fails its CRC, is of
// another format (the JSON of format 1, stat-cache.json) or does not parse
// is ignored: the cache starts empty and every file is hashed once, which is
// slow but never wrong. The CRC matters: a flipped bit in a digest would
// otherwise name a file by the wrong content.

import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, hexOf } from '../core/digest.ts';
import { isErrno, writeFileAtomic } from '../store/fs-atomic.ts';
import { STATE_DIR } from './ignore-rules.ts';

const FILE = 'stat-cache.bin';
/** Format 1 (JSON): ignored when found, removed by the next save. */
const OLD_FILE = 'stat-cache.json';
const MAGIC = Buffer.from('hoard-stat-cache/2\n', 'latin1');
/** racy u8 + size, mtime, ctime, inode (8 bytes each) + digest. */
const FIXED = 1 + 8 * 4 + 32;
const MAX_PATH_BYTES = 0xffff;

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
  /** The file as loaded; entries at #index offsets (their fixed part). */
  #buf: Buffer;
  #index: Map<string, number>;
  /** Entries set (or deleted: null) since the load. */
  #overlay = new Map<string, StatCacheEntry | null>();
  #dirty = false;

  private constructor(dir: string, buf: Buffer, index: Map<string, number>) {
    this.dir = dir;
    this.#buf = buf;
    this.#index = index;
  }

  /** Loads the cache of `dir` (empty when missing, damaged or of another format: it is only a cache). */
  static async load(dir: string): Promise<StatCache> {
    let buf: Buffer;
    try {
      buf = await readFile(join(dir, STATE_DIR, FILE));
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw err;
      return new StatCache(dir, Buffer.alloc(0), new Map());
    }
    const index = indexOf(buf);
    return index ? new StatCache(dir, buf, index) : new StatCache(dir, Buffer.alloc(0), new Map());
  }

  get size(): number {
    if (this.#overlay.size === 0) return this.#index.size;
    let n = this.#index.size;
    for (const [path, e] of this.#overlay) n += (e ? 1 : 0) - (this.#index.has(path) ? 1 : 0);
    return n;
  }

  /** The cached digest when the stat is unchanged and the entry was not racy. */
  lookup(path: string, key: StatKey): Digest | undefined {
    if (this.#overlay.size > 0 && this.#overlay.has(path)) {
      const e = this.#overlay.get(path);
      if (!e || e.racy || !sameStat(e, key)) return undefined;
      return e.digest;
    }
    const off = this.#index.get(path);
    if (off === undefined) return undefined;
    const b = this.#buf;
    // Cheapest differences first; no entry object is built for a hit.
    if (b[off] !== 0 || Number(b.readBigUInt64LE(off + 1)) !== key.size) return undefined;
    if (b.readBigInt64LE(off + 9) !== key.mtimeNs || b.readBigInt64LE(off + 17) !== key.ctimeNs)
      return undefined;
    if (b.readBigUInt64LE(off + 25) !== key.ino) return undefined;
    return `sha256:${b.toString('hex', off + 33, off + 65)}`;
  }

  /**
   * The digest last recorded for `path`, trusted or not (racy, stat changed):
   * only for skipping work that is redone anyway, never as the file's content.
   */
  lastDigest(path: string): Digest | undefined {
    return this.#entry(path)?.digest;
  }

  set(path: string, key: StatKey, digest: Digest, observedAtMs: number): void {
    const racy = isRacy(key, observedAtMs);
    const prev = this.#entry(path);
    if (prev && prev.digest === digest && prev.racy === racy && sameStat(prev, key)) return;
    this.#overlay.set(path, { ...key, digest, racy });
    this.#dirty = true;
  }

  delete(path: string): void {
    if (this.#entry(path) === undefined) return;
    this.#overlay.set(path, null);
    this.#dirty = true;
  }

  /** Drops entries for paths not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const path of this.#index.keys()) {
      if (!keep.has(path) && this.#overlay.get(path) !== null) {
        this.#overlay.set(path, null);
        this.#dirty = true;
      }
    }
    for (const [path, e] of this.#overlay) {
      if (e && !keep.has(path)) {
        this.#overlay.set(path, null);
        this.#dirty = true;
      }
    }
  }

  /** Writes the cache atomically if anything changed. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const stateDir = join(this.dir, STATE_DIR);
    await mkdir(stateDir, { recursive: true });
    const buf = this.#encode();
    await writeFileAtomic(join(stateDir, FILE), buf, stateDir);
    // The JSON of format 1 is stale from now on.
    await unlink(join(stateDir, OLD_FILE)).catch(() => {});
    // What was saved is the new base: the overlay folds into it.
    this.#buf = buf;
    this.#index = indexOf(buf) ?? new Map();
    this.#overlay.clear();
    this.#dirty = false;
  }

  /** The entry of `path` (overlay first), decoded; undefined when none. */
  #entry(path: string): StatCacheEntry | undefined {
    const o = this.#overlay.get(path);
    if (o !== undefined) return o ?? undefined;
    const off = this.#index.get(path);
    return off === undefined ? undefined : decodeAt(this.#buf, off);
  }

  #encode(): Buffer {
    const rows: { path: Buffer; fixed: Buffer | StatCacheEntry }[] = [];
    for (const [path, off] of this.#index) {
      if (this.#overlay.has(path)) continue;
      rows.push({ path: Buffer.from(path, 'utf8'), fixed: this.#buf.subarray(off, off + FIXED) });
    }
    for (const [path, e] of this.#overlay) {
      const bytes = Buffer.from(path, 'utf8');
      // Longer than any tree path can be (tree-path.ts); such a file is simply never cached.
      if (e && bytes.length <= MAX_PATH_BYTES) rows.push({ path: bytes, fixed: e });
    }
    let size = MAGIC.length + 4 + 4;
    for (const r of rows) size += 2 + r.path.length + FIXED;
    const out = Buffer.allocUnsafe(size);
    let pos = MAGIC.copy(out, 0);
    pos = out.writeUInt32LE(rows.length, pos);
    for (const r of rows) {
      pos = out.writeUInt16LE(r.path.length, pos);
      pos += r.path.copy(out, pos);
      if (Buffer.isBuffer(r.fixed)) pos += r.fixed.copy(out, pos);
      else {
        const e = r.fixed;
        out[pos] = e.racy ? 1 : 0;
        out.writeBigUInt64LE(BigInt(e.size), pos + 1);
        out.writeBigInt64LE(e.mtimeNs, pos + 9);
        out.writeBigInt64LE(e.ctimeNs, pos + 17);
        out.writeBigUInt64LE(e.ino, pos + 25);
        out.write(hexOf(e.digest), pos + 33, 32, 'hex');
        pos += FIXED;
      }
    }
    pos = out.writeUInt32LE(crc32(out.subarray(0, pos)), pos);
    return out.subarray(0, pos);
  }
}

/**
 * Checks and indexes a saved cache: path → offset of its fixed part, or
 * undefined when the file is not a whole, intact cache of this format.
 */
function indexOf(buf: Buffer): Map<string, number> | undefined {
  if (buf.length < MAGIC.length + 8 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const end = buf.length - 4;
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32LE(end)) return undefined;
  const count = buf.readUInt32LE(MAGIC.length);
  const index = new Map<string, number>();
  let pos = MAGIC.length + 4;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > end) return undefined;
    const len = buf.readUInt16LE(pos);
    pos += 2;
    if (pos + len + FIXED > end) return undefined;
    const path = buf.toString('utf8', pos, pos + len);
    pos += len;
    if (buf[pos] > 1) return undefined;
    index.set(path, pos);
    pos += FIXED;
  }
  return pos === end ? index : undefined;
}

function decodeAt(buf: Buffer, off: number): StatCacheEntry {
  return {
    racy: buf[off] === 1,
    size: Number(buf.readBigUInt64LE(off + 1)),
    mtimeNs: buf.readBigInt64LE(off + 9),
    ctimeNs: buf.readBigInt64LE(off + 17),
    ino: buf.readBigUInt64LE(off + 25),
    digest: `sha256:${buf.toString('hex', off + 33, off + 65)}`,
  };
}
