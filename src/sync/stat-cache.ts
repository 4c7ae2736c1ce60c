// The stat cache of a synced directory: path → (size, mtime ns, ctime ns,
// inode, digest), so a scan re-reads only files whose stat changed. mtimes
// are only a cache key, never a decision: any difference in size, mtime,
// ctime or inode means "hash again", and ctime cannot be set by a user, so a
// same-size edit with its mtime restored is still seen. Entries observed
// too close to their last change are stored but never trusted
// (racy-stat.ts); a scan compares number-valued lstats (stat-key.ts).
//
// Persisted as one binary file in `<dir>/.hoard/` (stat-cache.bin,
// stat-cache-format.ts), written atomically (temp + rename). Loading it must
// cost milliseconds at 50,000 entries: a no-op push is little more than
// this load plus one lstat per file. So the file is read whole and checked
// (CRC, bounds), nothing more: entries are saved in the order the last scan
// asked for them, the next scan asks in the same order, and each lookup
// finds its entry at a cursor by comparing bytes in place — no string, no
// map. Only a lookup out of that order (files added, renamed) indexes the
// file (path → offset) once. An entry's fields are decoded when looked up,
// and entries changed since the load live in an overlay until the next save
// (stat-cache-overlay.ts). A folder unchanged since the save is recognised
// whole by the saved summary (stat-cache-summary.ts).

import { readFileSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../core/digest.ts';
import { isErrno, writeFileAtomic } from '../store/fs-atomic.ts';
import { STATE_DIR } from './ignore-rules.ts';
import { isRacy } from './racy-stat.ts';
import {
  checkFile,
  decodeAt,
  EXEC,
  emptyFile,
  encodeFixed,
  FILE,
  FIRST_ENTRY,
  FIXED,
  indexOf,
  MAX_PATH_BYTES,
  OLD_FILE,
  pathIs,
  RACY,
  type StatCacheEntry,
  StatCacheFileWriter,
  trustedDigestAt,
  trustedDigestAtLoose,
} from './stat-cache-format.ts';
import { StatCacheOverlay } from './stat-cache-overlay.ts';
import { digestsReader, matchesAll, type ScanSummary } from './stat-cache-summary.ts';
import { type LooseStat, type StatKey, sameStat } from './stat-key.ts';

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
  /** Entries set since the load (or deleted). */
  readonly #overlay = new StatCacheOverlay();
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
    this.#cursor = FIRST_ENTRY;
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
    return new StatCache(dir, emptyFile(), 0);
  }

  get size(): number {
    let n = this.#count;
    for (const [path, at] of this.#overlay.offsets)
      n += (at >= 0 ? 1 : 0) - (this.#offsetOf(path) >= 0 ? 1 : 0);
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
    if (this.#overlay.offsets.size > 0 || this.#seen.size > 0 || this.#read > 0 || this.#map !== undefined)
      return false;
    return matchesAll(this.#buf, this.#count, paths, values);
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
    return digestsReader(this.#buf, this.#count);
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
    if (b !== this.#overlay.buf) {
      at = this.#overlay.record(path);
      b.copy(this.#overlay.buf, at, off, off + FIXED);
    }
    this.#overlay.buf[at] ^= EXEC;
    this.#changed();
  }

  /** Where `path`'s record is (the overlay first), offset -1 when none; recorded as used (#seen). */
  #record(path: string): [Buffer, number] {
    if (this.#overlay.offsets.size > 0) {
      const at = this.#overlay.offsets.get(path);
      if (at !== undefined) {
        this.#offsetOf(path);
        return [this.#overlay.buf, at];
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
    const at = this.#overlay.record(path); // may grow the overlay's buf: before reading it
    encodeFixed(this.#overlay.buf, at, { ...key, digest, racy, exec });
    this.#changed();
  }

  /**
   * Judges `path`'s entry, set by this session, racy or not as if its stat
   * were observed at `observedAtMs` (a pull's file, recorded when written:
   * written-log.ts). Only ever clears the flag the set() gave it.
   */
  observedAt(path: string, observedAtMs: number): void {
    const at = this.#overlay.offsets.get(path);
    if (at === undefined || at < 0) return;
    const b = this.#overlay.buf;
    if ((b[at] & RACY) !== 0 && !isRacy(decodeAt(b, at), observedAtMs)) b[at] &= ~RACY;
  }

  delete(path: string): void {
    if (this.#entry(path) === undefined) return;
    this.#overlay.offsets.set(path, -1);
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
        this.#overlay.offsets.set(path, -1);
        this.#changed();
      }
    };
    for (const path of absent) drop(path);
    // Entries of the file no scan asked about (their files are gone), or adopted
    // without their paths: only then is the file indexed.
    if (this.#seenInFile < this.#count || this.#adopted)
      for (const path of this.#index().keys())
        if (!this.#seen.has(path) && !this.#overlay.offsets.has(path)) drop(path);
    if (this.#count === 0) this.#order = order;
  }

  /** Room for `n` more changed entries (a scan's misses): the overlay grows once, not by doubling. */
  reserve(n: number): void {
    this.#overlay.reserve(n);
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
    this.#cursor = FIRST_ENTRY;
    this.#read = 0;
    this.#adopted = false;
    this.#map = undefined;
    this.#order = undefined;
    this.#seen.clear();
    this.#seenInFile = 0;
    this.#overlay.clear();
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
    const at = this.#overlay.offsets.get(path);
    if (at !== undefined) return at < 0 ? undefined : decodeAt(this.#overlay.buf, at);
    const off = this.#offsetOf(path);
    return off < 0 ? undefined : decodeAt(this.#buf, off);
  }

  /** The file's bytes: this session's order first (the next scan's), then what it did not touch. */
  #encode(): Buffer {
    const out = new StatCacheFileWriter();
    const overlay = this.#overlay.offsets;
    const emit = (path: string) => {
      const at = overlay.get(path);
      if (at !== undefined && at < 0) return;
      const len = Buffer.byteLength(path, 'utf8');
      // Longer than any tree path can be (tree-path.ts): such a file is simply never cached.
      if (len > MAX_PATH_BYTES) return;
      if (at !== undefined) {
        out.addRecord(path, at, len);
      } else {
        const off = this.#offsetOf(path);
        if (off < 0) return;
        out.addCopy(this.#buf, off, len);
      }
    };
    if (this.#adopted) {
      // The file's order is this session's; then paths it did not have.
      const index = this.#index();
      for (const path of index.keys()) emit(path);
      for (const path of this.#seen.keys()) if (!index.has(path)) emit(path);
      for (const path of overlay.keys()) if (!this.#seen.has(path) && !index.has(path)) emit(path);
    } else if (this.#order !== undefined) {
      // A first scan's entries in its walk order (the overlay's is the order
      // files were hashed in: large ones finish out of order); then any set
      // since that the order does not hold.
      let fromOrder = 0;
      for (const path of this.#order)
        if ((overlay.get(path) ?? -1) >= 0) {
          emit(path);
          fromOrder++;
        }
      let live = 0;
      for (const at of overlay.values()) if (at >= 0) live++;
      if (fromOrder < live) {
        const ordered = new Set(this.#order);
        for (const path of overlay.keys()) if (!ordered.has(path)) emit(path);
      }
    } else {
      for (const path of this.#seen.keys()) emit(path);
      for (const path of overlay.keys()) if (!this.#seen.has(path)) emit(path);
      if (this.#seenInFile < this.#count)
        for (const path of this.#index().keys()) if (!this.#seen.has(path) && !overlay.has(path)) emit(path);
    }
    return out.finish(this.#overlay.buf, this.#summary);
  }
}
