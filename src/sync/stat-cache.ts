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
// file. So the file is read whole and checked (CRC, bounds), nothing more:
// entries are saved in the order the last scan asked for them, the next
// scan asks in the same order, and each lookup finds its entry at a cursor
// by comparing bytes in place — no string, no map. Only a lookup out of that
// order (files added, renamed) indexes the file (path → offset) once. An
// entry's fields are decoded when looked up, and entries changed since the
// load live in an overlay until the next save: records of the file's own
// fixed layout in one growing buffer, found by path (a first push sets an
// entry for every file: 50,000 objects with three BigInts each were a fifth
// of its heap).
//
//   "hoard-stat-cache/3\n"  magic (19 bytes)
//   u32 entry count
//   per entry: u16 path length, path (UTF-8), u8 flags (bit 0: racy, bit 1: executable),
//              u64 size, i64 mtime ns, i64 ctime ns, u64 inode, 32-byte SHA-256
//   u8 summary present (0|1); when 1: 32-byte tree digest, 32-byte digest of the other entries
//   u32 CRC-32 of everything before it
//
// Format 2 (the same without the executable bit and the summary) is still
// read: its entries claim "not executable", which the next scan corrects
// where it is wrong (setting the bit, no re-hash), and it has no summary.
//
// The summary makes a no-op scan cheap (scan.ts): the scan that saved the
// cache records the digest of the tree it produced, and the digest of that
// tree's entries that are not files (empty folders, symlinks). Its file
// entries are exactly the cache's entries (path, executable bit, size,
// digest). So a later scan that finds every one of its files trusted by the
// cache with the same executable bit, no other file, and the same other
// entries produces that same tree, without building or encoding it. Any
// change to the entries drops the summary until a scan records a new one.
//
// A scan compares number-valued lstat results (fs.Stats, no BigInt: at
// 50,000 files the BigIntStats of each lstat were most of a no-op push's
// garbage) with lookupStats: size and inode exactly, mtime and ctime to
// within a microsecond (a double holds today's times in ms to ~0.2 µs).
// That is as safe as comparing nanoseconds: a trusted entry's ctime is at
// least the racy window (100 ms) older than when it was observed, so any
// change after that moves the ctime by more than the window, and the
// kernel stamps times from a clock that ticks in milliseconds anyway.
// Entries are always stored with exact nanoseconds (from BigIntStats).
//
// Everything little-endian. A file that is truncated, fails its CRC, is of
// another format (the JSON of format 1, stat-cache.json) or does not parse
// is ignored: the cache starts empty and every file is hashed once, which is
// slow but never wrong. The CRC matters: a flipped bit in a digest would
// otherwise name a file by the wrong content.

import { type BigIntStats, constants, readFileSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, hexOf } from '../core/digest.ts';
import { isErrno, writeFileAtomic } from '../store/fs-atomic.ts';
import { STATE_DIR } from './ignore-rules.ts';
import { LSTAT_FIELDS } from './scan-lstat.ts';

const { S_IFMT, S_IFREG } = constants;

const FILE = 'stat-cache.bin';
/** Format 1 (JSON): ignored when found, removed by the next save. */
const OLD_FILE = 'stat-cache.json';
const MAGIC = Buffer.from('hoard-stat-cache/3\n', 'latin1');
/** Format 2: read (no executable bit, no summary), never written. */
const MAGIC_2 = Buffer.from('hoard-stat-cache/2\n', 'latin1');
/** flags u8 + size, mtime, ctime, inode (8 bytes each) + digest. */
const FIXED = 1 + 8 * 4 + 32;
/** Flag bits of an entry. */
const RACY = 1;
const EXEC = 2;
/** The summary's bytes after its presence byte: the tree digest, the other entries' digest. */
const SUMMARY = 32 + 32;
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
  /** The file's kind in the tree of the scan that recorded it (owner's x bit). */
  exec: boolean;
}

/**
 * What the scan that last saved the cache produced (see the header): the
 * digest of its tree, and the digest of that tree's entries that are not
 * files (otherEntriesDigest in scan.ts).
 */
export interface ScanSummary {
  tree: Digest;
  others: Digest;
}

/** The fields of a number-valued lstat (fs.Stats) that lookupStats compares. */
export interface LooseStat {
  size: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** How far apart two times (ms) may be and still be the same stamp read through a double. */
const SAME_TIME_MS = 0.001;

/** Whether a number-valued stat is the exact stat `key` (times to within SAME_TIME_MS). */
export function sameLooseStat(st: LooseStat, key: StatKey): boolean {
  return (
    st.size === key.size &&
    st.ino === Number(key.ino) &&
    Math.abs(st.mtimeMs - Number(key.mtimeNs) / 1e6) < SAME_TIME_MS &&
    Math.abs(st.ctimeMs - Number(key.ctimeNs) / 1e6) < SAME_TIME_MS
  );
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
  /** The file as loaded (checked: magic, CRC, structure). */
  #buf: Buffer;
  /** Entries in #buf. */
  #count: number;
  /** Where the next entry in file order starts: lookups in the order of the last save need no index. */
  #cursor: number;
  /** Entries of #buf read so far through the cursor. */
  #read = 0;
  /** path → offset of its fixed part in #buf, for every entry; built only when a lookup leaves file order. */
  #map: Map<string, number> | undefined;
  /**
   * Paths this session looked up or set, in that order, with their entry's
   * offset in #buf (-1: none). The next save writes entries in this order,
   * so the next scan (which visits files in the same order) finds each at
   * the cursor: loading is checking the file, not indexing it.
   */
  #seen = new Map<string, number>();
  /** Entries of #buf that #seen holds. */
  #seenInFile = 0;
  /** Entries set since the load: path → offset of its record in #overlayBuf, or -1 when deleted. */
  #overlay = new Map<string, number>();
  /** The overlay's records (FIXED bytes each, the file's layout), #overlayEnd bytes used. */
  #overlayBuf: Buffer = Buffer.alloc(0);
  #overlayEnd = 0;
  #dirty = false;
  /** The loaded (or set) summary; undefined once any entry changes. */
  #summary: ScanSummary | undefined;
  /**
   * adoptAll() was called: every entry of #buf counts as looked up, in file
   * order, without being in #seen (a no-op scan records nothing per file).
   */
  #adopted = false;
  /**
   * The order to save in when the loaded file had no entries (a first
   * scan): the scan's walk order, given by retainOnly. Lookups then record
   * nothing in #seen (every one is a miss), which at 50,000 files was a map
   * of every path held to the end of a first push.
   */
  #order: readonly string[] | undefined;

  private constructor(dir: string, buf: Buffer, count: number, summary?: ScanSummary) {
    this.dir = dir;
    this.#buf = buf;
    this.#count = count;
    this.#cursor = MAGIC.length + 4;
    this.#summary = summary;
  }

  /** Loads the cache of `dir` (empty when missing, damaged or of another format: it is only a cache). */
  static async load(dir: string): Promise<StatCache> {
    let buf: Buffer;
    try {
      // Synchronous, like the scan's readdirs and lstats that follow: a few ms from the
      // page cache, where a thread-pool hand-off waits for a time slice on a busy machine.
      buf = readFileSync(join(dir, STATE_DIR, FILE));
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw err;
      return StatCache.#empty(dir);
    }
    const file = checkFile(buf);
    return file === undefined ? StatCache.#empty(dir) : new StatCache(dir, buf, file.count, file.summary);
  }

  static #empty(dir: string): StatCache {
    const buf = Buffer.alloc(MAGIC.length + 8);
    MAGIC.copy(buf);
    return new StatCache(dir, buf, 0);
  }

  get size(): number {
    let n = this.#count;
    for (const [path, at] of this.#overlay) n += (at >= 0 ? 1 : 0) - (this.#offsetOf(path) >= 0 ? 1 : 0);
    return n;
  }

  /** The summary of the scan that saved this cache (see the header), if no entry changed since. */
  get summary(): ScanSummary | undefined {
    return this.#summary;
  }

  /** Records what the scan that just ran produced; saved with the entries. */
  setSummary(summary: ScanSummary): void {
    const s = this.#summary;
    if (s !== undefined && s.tree === summary.tree && s.others === summary.others) return;
    this.#summary = { tree: summary.tree, others: summary.others };
    this.#dirty = true;
  }

  /** An entry changed: the summary no longer describes the cache. */
  #changed(): void {
    this.#dirty = true;
    this.#summary = undefined;
  }

  /**
   * Whether the regular files among `paths` (their lstat figures in
   * `values`, scan-lstat.ts's layout; symlinks, other types and gone
   * paths are skipped) are exactly this cache's entries, in its order, each
   * trusted (not racy) for this very stat and with this executable bit.
   * Changes nothing; only for a cache not used yet (false otherwise). Times
   * compare as lookupStats's do; an inode beyond 2^53 is never matched here.
   */
  matchesAll(paths: readonly string[], values: Float64Array): boolean {
    if (this.#overlay.size > 0 || this.#seen.size > 0 || this.#read > 0 || this.#map !== undefined)
      return false;
    const b = this.#buf;
    let pos = MAGIC.length + 4;
    let k = 0;
    for (let i = 0, o = 0; i < paths.length; i++, o += LSTAT_FIELDS) {
      const mode = values[o];
      if (mode < 0 || (mode & S_IFMT) !== S_IFREG) continue;
      if (k === this.#count) return false;
      const len = b[pos] | (b[pos + 1] << 8);
      const off = pos + 2 + len;
      if (!pathIs(b, pos + 2, len, paths[i])) return false;
      if (b[off] !== ((mode & 0o100) !== 0 ? EXEC : 0)) return false;
      const ino = values[o + 2];
      if (!Number.isSafeInteger(ino) || u64At(b, off + 25) !== ino || u64At(b, off + 1) !== values[o + 1])
        return false;
      if (Math.abs(i64At(b, off + 9) / 1e6 - values[o + 3]) >= SAME_TIME_MS) return false;
      if (Math.abs(i64At(b, off + 17) / 1e6 - values[o + 4]) >= SAME_TIME_MS) return false;
      pos = off + FIXED;
      k++;
    }
    return k === this.#count;
  }

  /**
   * After matchesAll: every entry counts as looked up, in file order (a save
   * with nothing changed writes nothing). Returns a function reading their
   * digests in that order, from the entries as they are now (valid after a
   * later save).
   */
  adoptAll(): () => Digest[] {
    this.#adopted = true;
    this.#read = this.#count;
    this.#seenInFile = this.#count;
    const b = this.#buf;
    const count = this.#count;
    return () => {
      const out: Digest[] = new Array(count);
      let pos = MAGIC.length + 4;
      for (let k = 0; k < count; k++) {
        const off = pos + 2 + (b[pos] | (b[pos + 1] << 8));
        out[k] = `sha256:${b.toString('hex', off + 33, off + 65)}`;
        pos = off + FIXED;
      }
      return out;
    };
  }

  /** The cached digest when the stat is unchanged and the entry was not racy. */
  lookup(path: string, key: StatKey, exec?: boolean): Digest | undefined {
    const [b, off] = this.#record(path);
    if (off < 0) return undefined;
    const digest = trustedDigestAt(b, off, key);
    if (digest !== undefined && exec !== undefined) this.#keepKind(path, b, off, exec);
    return digest;
  }

  /**
   * lookup() for a number-valued lstat (see the header): the caller passes
   * only stats whose inode is a safe integer.
   */
  lookupStats(path: string, st: LooseStat, exec?: boolean): Digest | undefined {
    const [b, off] = this.#record(path);
    if (off < 0) return undefined;
    const digest = trustedDigestAtLoose(b, off, st);
    if (digest !== undefined && exec !== undefined) this.#keepKind(path, b, off, exec);
    return digest;
  }

  /**
   * A trusted entry recorded with another kind (format 2, or a chmod between
   * a hashed file's lstat and its read): the digest holds, the executable
   * bit is corrected, so the entries stay the tree's files (the summary).
   */
  #keepKind(path: string, b: Buffer, off: number, exec: boolean): void {
    if (((b[off] & EXEC) !== 0) === exec) return;
    let at = off;
    if (b !== this.#overlayBuf) {
      at = this.#overlayRecord(path);
      b.copy(this.#overlayBuf, at, off, off + FIXED);
    }
    this.#overlayBuf[at] ^= EXEC;
    this.#changed();
  }

  /** Where `path`'s record is (the overlay first), offset -1 when none; recorded as used (#seen). */
  #record(path: string): [Buffer, number] {
    if (this.#overlay.size > 0) {
      const at = this.#overlay.get(path);
      if (at !== undefined) {
        this.#offsetOf(path);
        return [this.#overlayBuf, at];
      }
    }
    return [this.#buf, this.#offsetOf(path)];
  }

  /**
   * The digest last recorded for `path`, trusted or not (racy, stat changed):
   * only for skipping work that is redone anyway, never as the file's content.
   */
  lastDigest(path: string): Digest | undefined {
    return this.#entry(path)?.digest;
  }

  /** Records `path`'s digest for this stat; `exec`: the file's kind in the tree (default: a plain file). */
  set(path: string, key: StatKey, digest: Digest, observedAtMs: number, exec = false): void {
    const racy = isRacy(key, observedAtMs);
    const prev = this.#entry(path);
    if (prev && prev.digest === digest && prev.racy === racy && prev.exec === exec && sameStat(prev, key))
      return;
    const at = this.#overlayRecord(path); // may grow #overlayBuf: before reading it
    encodeFixed(this.#overlayBuf, at, { ...key, digest, racy, exec });
    this.#changed();
  }

  /**
   * Judges `path`'s entry, set by this session, racy or not as if its stat
   * were observed at `observedAtMs` (a pull's file, recorded when written:
   * written-log.ts). Only ever clears the flag the set() gave it.
   */
  observedAt(path: string, observedAtMs: number): void {
    const at = this.#overlay.get(path);
    if (at === undefined || at < 0) return;
    const b = this.#overlayBuf;
    if ((b[at] & RACY) !== 0 && !isRacy(decodeAt(b, at), observedAtMs)) b[at] &= ~RACY;
  }

  /** The offset of `path`'s record in the overlay, made (uninitialised) when it has none. */
  #overlayRecord(path: string): number {
    let at = this.#overlay.get(path) ?? -1;
    if (at < 0) {
      if (this.#overlayEnd + FIXED > this.#overlayBuf.byteLength) {
        const grown = Buffer.allocUnsafe(Math.max(64 * FIXED, this.#overlayBuf.byteLength * 2));
        this.#overlayBuf.copy(grown, 0, 0, this.#overlayEnd);
        this.#overlayBuf = grown;
      }
      at = this.#overlayEnd;
      this.#overlayEnd += FIXED;
      this.#overlay.set(path, at);
    }
    return at;
  }

  delete(path: string): void {
    if (this.#entry(path) === undefined) return;
    this.#overlay.set(path, -1);
    this.#changed();
  }

  /**
   * After a scan: keeps the entries of the files it found, which are the
   * paths it looked up or set except `absent` (files it looked up that were
   * gone, or kept changing, when it read them), and drops every other:
   * those in `absent` and those of the loaded file it never asked about
   * (their files are gone). `order` is the scan's walk order, the order a
   * first scan's entries are saved in (see #order). No set of the kept
   * paths is made: the scan's own lookups say which they are. (Entries an
   * earlier scan of this same object, before any save, set or looked up
   * and this one did not find stay until the next scan that loads them: an
   * entry is only ever trusted for its path's exact stat, and that scan's
   * summary check fails on the extra entry, so it compares every file.)
   */
  retainOnly(absent: readonly string[], order: readonly string[]): void {
    const drop = (path: string) => {
      if (this.#entry(path) !== undefined) {
        this.#overlay.set(path, -1);
        this.#changed();
      }
    };
    for (const path of absent) drop(path);
    // Entries of the file no scan asked about (their files are gone), or adopted
    // without their paths: only then is the file indexed.
    if (this.#seenInFile < this.#count || this.#adopted)
      for (const path of this.#index().keys())
        if (!this.#seen.has(path) && !this.#overlay.has(path)) drop(path);
    if (this.#count === 0) this.#order = order;
  }

  /** Room for `n` more changed entries (a scan's misses): the overlay grows once, not by doubling. */
  reserve(n: number): void {
    const need = this.#overlayEnd + n * FIXED;
    if (need <= this.#overlayBuf.byteLength) return;
    const grown = Buffer.allocUnsafe(need);
    this.#overlayBuf.copy(grown, 0, 0, this.#overlayEnd);
    this.#overlayBuf = grown;
  }

  /**
   * Writes the cache atomically if anything changed, or if this session
   * looked entries up out of the file's order (it had to index the file):
   * rewritten in this session's order, the next scan reads it at the
   * cursor again. A pull saves its entries in the order it wrote the
   * files; without this, every later no-op push in that folder would
   * index the whole file.
   */
  async save(): Promise<void> {
    if (!this.#dirty && this.#map === undefined) return;
    const stateDir = join(this.dir, STATE_DIR);
    await mkdir(stateDir, { recursive: true });
    const buf = this.#encode();
    await writeFileAtomic(join(stateDir, FILE), buf, stateDir);
    // The JSON of format 1 is stale from now on.
    await unlink(join(stateDir, OLD_FILE)).catch(() => {});
    // What was saved is the new base, in the order this session used.
    this.#buf = buf;
    this.#count = checkFile(buf)?.count ?? 0;
    this.#cursor = MAGIC.length + 4;
    this.#read = 0;
    this.#adopted = false;
    this.#map = undefined;
    this.#order = undefined;
    this.#seen.clear();
    this.#seenInFile = 0;
    this.#overlay.clear();
    this.#overlayBuf = Buffer.alloc(0);
    this.#overlayEnd = 0;
    this.#dirty = false;
  }

  /**
   * The offset of `path`'s entry in #buf, or -1 — at the cursor when asked in
   * file order, else from the index — recorded in #seen (this session used it).
   */
  #offsetOf(path: string): number {
    // Nothing loaded: every lookup misses, none is recorded (see #order).
    if (this.#count === 0) return -1;
    const known = this.#seen.get(path);
    if (known !== undefined) return known;
    let off = -1;
    const b = this.#buf;
    if (this.#map === undefined && this.#read < this.#count) {
      const len = b[this.#cursor] | (b[this.#cursor + 1] << 8);
      const at = this.#cursor + 2;
      if (pathIs(b, at, len, path)) {
        this.#cursor = at + len + FIXED;
        this.#read++;
        off = at + len;
      }
    }
    if (off < 0) off = this.#index().get(path) ?? -1;
    this.#seen.set(path, off);
    // Adopted entries are counted already.
    if (off >= 0 && !this.#adopted) this.#seenInFile++;
    return off;
  }

  #index(): Map<string, number> {
    this.#map ??= indexOf(this.#buf, this.#count);
    return this.#map;
  }

  /** The entry of `path` (overlay first), decoded; undefined when none. */
  #entry(path: string): StatCacheEntry | undefined {
    const at = this.#overlay.get(path);
    if (at !== undefined) return at < 0 ? undefined : decodeAt(this.#overlayBuf, at);
    const off = this.#offsetOf(path);
    return off < 0 ? undefined : decodeAt(this.#buf, off);
  }

  /**
   * The file's bytes: this session's order first (the next scan's), then
   * what it did not touch. Entries taken from the loaded file are copied as
   * they are (length, path, fixed part), consecutive ones in one copy, so a
   * save after a scan that changed one file at 50,000 is a few copies, not
   * a path encoded and a row made per entry.
   */
  #encode(): Buffer {
    /** Per entry: [source buffer, start, end] of its whole record, or a path and an overlay offset. */
    const rows: (number | string | Buffer)[] = [];
    let size = MAGIC.length + 4 + 4;
    let count = 0;
    const emit = (path: string) => {
      const at = this.#overlay.get(path);
      if (at !== undefined && at < 0) return;
      const len = Buffer.byteLength(path, 'utf8');
      // Longer than any tree path can be (tree-path.ts): such a file is simply never cached.
      if (len > MAX_PATH_BYTES) return;
      if (at !== undefined) {
        rows.push(path, at, len);
      } else {
        const off = this.#offsetOf(path);
        if (off < 0) return;
        const start = off - len - 2;
        const last = rows.length - 3;
        // Right after the previous record copied from the file: one copy for both.
        if (last >= 0 && rows[last] === this.#buf && rows[last + 2] === start) rows[last + 2] = off + FIXED;
        else rows.push(this.#buf, start, off + FIXED);
      }
      size += 2 + len + FIXED;
      count++;
    };
    if (this.#adopted) {
      // The file's order is this session's; then paths it did not have.
      const index = this.#index();
      for (const path of index.keys()) emit(path);
      for (const path of this.#seen.keys()) if (!index.has(path)) emit(path);
      for (const path of this.#overlay.keys()) if (!this.#seen.has(path) && !index.has(path)) emit(path);
    } else if (this.#order !== undefined) {
      // A first scan's entries in its walk order (the overlay's is the order
      // files were hashed in: large ones finish out of order); then any set
      // since that the order does not hold.
      let fromOrder = 0;
      for (const path of this.#order)
        if ((this.#overlay.get(path) ?? -1) >= 0) {
          emit(path);
          fromOrder++;
        }
      let live = 0;
      for (const at of this.#overlay.values()) if (at >= 0) live++;
      if (fromOrder < live) {
        const ordered = new Set(this.#order);
        for (const path of this.#overlay.keys()) if (!ordered.has(path)) emit(path);
      }
    } else {
      for (const path of this.#seen.keys()) emit(path);
      for (const path of this.#overlay.keys()) if (!this.#seen.has(path)) emit(path);
      if (this.#seenInFile < this.#count)
        for (const path of this.#index().keys())
          if (!this.#seen.has(path) && !this.#overlay.has(path)) emit(path);
    }
    const summary = this.#summary;
    if (summary !== undefined) size += SUMMARY;
    const out = Buffer.allocUnsafe(size + 1);
    let pos = MAGIC.copy(out, 0);
    pos = out.writeUInt32LE(count, pos);
    for (let i = 0; i < rows.length; i += 3) {
      const src = rows[i];
      if (typeof src === 'string') {
        pos = out.writeUInt16LE(rows[i + 2] as number, pos);
        pos += out.write(src, pos, 'utf8');
        const at = rows[i + 1] as number;
        pos += this.#overlayBuf.copy(out, pos, at, at + FIXED);
      } else {
        pos += (src as Buffer).copy(out, pos, rows[i + 1] as number, rows[i + 2] as number);
      }
    }
    out[pos++] = summary === undefined ? 0 : 1;
    if (summary !== undefined) {
      pos += out.write(hexOf(summary.tree), pos, 32, 'hex');
      pos += out.write(hexOf(summary.others), pos, 32, 'hex');
    }
    pos = out.writeUInt32LE(crc32(out.subarray(0, pos)), pos);
    return out.subarray(0, pos);
  }
}

/** Whether the `len` UTF-8 bytes of `b` at `at` spell `path` (ASCII compared in place, no string made). */
function pathIs(b: Buffer, at: number, len: number, path: string): boolean {
  if (len < path.length) return false; // UTF-8 is never shorter than the UTF-16 length
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 0x80) return b.toString('utf8', at, at + len) === path;
    if (i >= len || b[at + i] !== c) return false;
  }
  return len === path.length;
}

/**
 * Checks a saved cache whole — magic, CRC, every entry's bounds — and
 * returns its entry count and summary, or undefined when it is not a whole,
 * intact cache of format 3 or 2. No path is decoded.
 */
function checkFile(buf: Buffer): { count: number; summary?: ScanSummary } | undefined {
  if (buf.length < MAGIC.length + 8) return undefined;
  const head = buf.subarray(0, MAGIC.length);
  const v3 = head.equals(MAGIC);
  if (!v3 && !head.equals(MAGIC_2)) return undefined;
  const end = buf.length - 4;
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32LE(end)) return undefined;
  const count = buf.readUInt32LE(MAGIC.length);
  const maxFlags = v3 ? RACY | EXEC : RACY;
  let pos = MAGIC.length + 4;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > end) return undefined;
    const len = buf[pos] | (buf[pos + 1] << 8);
    pos += 2 + len;
    if (pos + FIXED > end || buf[pos] > maxFlags) return undefined;
    pos += FIXED;
  }
  if (!v3) return pos === end ? { count } : undefined;
  if (pos + 1 > end) return undefined;
  const present = buf[pos++];
  if (present === 0) return pos === end ? { count } : undefined;
  if (present !== 1 || pos + SUMMARY !== end) return undefined;
  const summary: ScanSummary = {
    tree: `sha256:${buf.toString('hex', pos, pos + 32)}`,
    others: `sha256:${buf.toString('hex', pos + 32, pos + 64)}`,
  };
  return { count, summary };
}

/** path → offset of its fixed part, for a file checkFile accepted. */
function indexOf(buf: Buffer, count: number): Map<string, number> {
  const index = new Map<string, number>();
  let pos = MAGIC.length + 4;
  for (let i = 0; i < count; i++) {
    const len = buf[pos] | (buf[pos + 1] << 8);
    pos += 2;
    index.set(buf.toString('utf8', pos, pos + len), pos + len);
    pos += len + FIXED;
  }
  return index;
}

/** The digest of the record at `off` when it is trusted (not racy) and its stat is `key`. */
function trustedDigestAt(b: Buffer, off: number, key: StatKey): Digest | undefined {
  // Cheapest differences first; no entry object is built for a hit.
  if ((b[off] & RACY) !== 0 || Number(b.readBigUInt64LE(off + 1)) !== key.size) return undefined;
  if (b.readBigInt64LE(off + 9) !== key.mtimeNs || b.readBigInt64LE(off + 17) !== key.ctimeNs)
    return undefined;
  if (b.readBigUInt64LE(off + 25) !== key.ino) return undefined;
  return `sha256:${b.toString('hex', off + 33, off + 65)}`;
}

/** trustedDigestAt for a number-valued stat: size and inode exact, times to within SAME_TIME_MS. */
function trustedDigestAtLoose(b: Buffer, off: number, st: LooseStat): Digest | undefined {
  if ((b[off] & RACY) !== 0 || u64At(b, off + 1) !== st.size || u64At(b, off + 25) !== st.ino)
    return undefined;
  if (Math.abs(i64At(b, off + 9) / 1e6 - st.mtimeMs) >= SAME_TIME_MS) return undefined;
  if (Math.abs(i64At(b, off + 17) / 1e6 - st.ctimeMs) >= SAME_TIME_MS) return undefined;
  return `sha256:${b.toString('hex', off + 33, off + 65)}`;
}

/** A u64 as a number (exact below 2^53), without a BigInt. */
function u64At(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 0x1_0000_0000;
}

/** An i64 as a number (nanoseconds: within 128 ns of the value today), without a BigInt. */
function i64At(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readInt32LE(off + 4) * 0x1_0000_0000;
}

/** Writes an entry's fixed part (racy, size, mtime, ctime, inode, digest) at `off`. */
function encodeFixed(out: Buffer, off: number, e: StatCacheEntry): void {
  out[off] = (e.racy ? RACY : 0) | (e.exec ? EXEC : 0);
  out.writeBigUInt64LE(BigInt(e.size), off + 1);
  out.writeBigInt64LE(e.mtimeNs, off + 9);
  out.writeBigInt64LE(e.ctimeNs, off + 17);
  out.writeBigUInt64LE(e.ino, off + 25);
  out.write(hexOf(e.digest), off + 33, 32, 'hex');
}

function decodeAt(buf: Buffer, off: number): StatCacheEntry {
  return {
    racy: (buf[off] & RACY) !== 0,
    exec: (buf[off] & EXEC) !== 0,
    size: Number(buf.readBigUInt64LE(off + 1)),
    mtimeNs: buf.readBigInt64LE(off + 9),
    ctimeNs: buf.readBigInt64LE(off + 17),
    ino: buf.readBigUInt64LE(off + 25),
    digest: `sha256:${buf.toString('hex', off + 33, off + 65)}`,
  };
}
