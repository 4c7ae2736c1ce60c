// Scanning a synced directory into a tree: one walk with lstat (symlinks are
// never followed, their targets are data), files hashed only when their stat
// differs from the stat cache, hashing bounded in parallel. Executable bit =
// the owner's x bit. Empty folders become `dir` entries. Temp files of dead
// pull processes are collected so pull can remove them.

import type { Dirent } from 'node:fs';
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join, sep } from 'node:path';

const { S_IFMT, S_IFLNK, S_IFREG } = constants;

import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher, sha256 } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import { encodeEntry, type Tree, type TreeEntry, treeDigestOfWalk } from '../core/tree.ts';
import { MAX_PATH_BYTES, validateTreePath } from '../core/tree-path.ts';
import { isErrno, isPidAlive, pidOfTempName } from '../store/fs-atomic.ts';
import { IgnoreRules, isTempName, STATE_DIR } from './ignore-rules.ts';
import { LSTAT_FIELDS, LSTAT_GONE, lstatAll } from './scan-lstat.ts';
import type { StatCache } from './stat-cache.ts';
import { type LooseStat, type StatKey, sameLooseStat, sameStat, statKeyOf } from './stat-key.ts';
import type { ProgressSink } from './transfer.ts';
import { treeTotals } from './tree-diff.ts';

export interface ScanResult {
  tree: Tree;
  digest: Digest;
  bytes: Buffer;
  /** Files (regular and executable) and their bytes: the tree's totals, without walking it. */
  totals: { files: number; bytes: number };
  /** One local path holding each file digest (to upload from, or to copy instead of downloading). */
  localByDigest: Map<Digest, string>;
  /** Absolute paths of temp files left by pull processes that are gone. */
  staleTemps: string[];
  filesHashed: number;
  bytesHashed: number;
  /** With skipChanging: files left out because they kept changing while being read. */
  changing: string[];
}

export interface ScanOptions {
  warn?: (message: string) => void;
  /** Stops the scan between folders and between files hashed (push/pull cancellation). */
  signal?: AbortSignal;
  /** Leave out files that keep changing while hashed (listed in `changing`) instead of failing. */
  skipChanging?: boolean;
  /** The hash phase's progress: one "blob" per file hashed, bytes as read. */
  progress?: ProgressSink;
  /**
   * Called with the bytes of each small file the scan read and hashed (a
   * stat-cache miss up to syncSmallFileBytes), so a push can store them
   * without reading the file again. `bytes` is a reused buffer: valid only
   * until the returned promise settles. A rejection fails the scan.
   */
  onContent?: (rel: string, digest: Digest, bytes: Buffer) => Promise<void> | void;
  /** The wall clock a hashed file's stat is observed at (the racy window is measured on it); tests. */
  now?: () => number;
}

export async function scanDirectory(
  root: string,
  cache: StatCache,
  opts: ScanOptions = {},
): Promise<ScanResult> {
  const warn = opts.warn ?? (() => {});
  const now = opts.now ?? Date.now;
  const files: string[] = [];
  const dirs: string[] = [];
  const staleTemps: string[] = [];
  /** Some name has a character above U+D7FF (where code-unit order and byte order can differ). */
  let wide = false;

  // Phase 1: walk folders (readdir only), applying ignore rules. The
  // readdir is synchronous, like the lstats below: a folder listing is
  // kernel-cached metadata, and a thread-pool round trip per folder (a
  // node_modules has thousands) costs more than the call, most of all on a
  // loaded machine where each hand-off waits for a time slice.
  const walk = async (rel: string, relBytes: number, rules: IgnoreRules): Promise<number> => {
    opts.signal?.throwIfAborted();
    let dirents: Dirent[];
    try {
      dirents = readdirSync(join(root, rel), { withFileTypes: true });
    } catch (err) {
      if (rel !== '' && isErrno(err, 'ENOENT', 'ENOTDIR')) return 0; // removed while scanning
      if (rel === '' && isErrno(err, 'ENOENT'))
        throw new HoardError('HOARD_EUSAGE', `directory ${root} does not exist`);
      throw err;
    }
    // Not a Set of every name per folder: only whether the ignore file is among them.
    const here = await rules.enter(root, rel, { has: (name) => dirents.some((d) => d.name === name) });
    /** Rules from .hoardignore files apply here (else only the built-in ones, checked below). */
    const scoped = here.scopes.length > 0;
    let kept = 0;
    for (const d of dirents) {
      const name = d.name;
      const isDir = d.isDirectory();
      if (!wide && WIDE.test(name)) wide = true;
      if (!isDir && isTempName(name)) {
        const pid = pidOfTempName(name);
        if (pid !== undefined && pid !== process.pid && !isPidAlive(pid))
          staleTemps.push(join(root, rel, name));
        continue;
      }
      // IgnoreRules.ignores' built-in rule for folders (temp files: above).
      if (isDir && name === STATE_DIR) continue;
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (scoped && here.ignores(childRel, isDir)) continue;
      // A name from readdir has no '/' or NUL and is never '.' or '..'; a
      // plain ASCII one (no backslash) under a valid folder makes a valid
      // path unless too long or, at the top, drive-letter-like. Only other
      // names pay the full check (which splits the whole path).
      let childBytes = relBytes + (rel === '' ? 0 : 1) + name.length;
      if (!PLAIN_NAME.test(name) || childBytes > MAX_PATH_BYTES || (rel === '' && DRIVE_LETTER.test(name))) {
        try {
          validateTreePath(childRel);
        } catch (err) {
          warn(`skipping ${JSON.stringify(childRel)}: ${(err as Error).message}`);
          continue;
        }
        childBytes = Buffer.byteLength(childRel);
      }
      if (isDir) {
        const n = await walk(childRel, childBytes, here);
        if (n === 0) dirs.push(childRel);
        kept++;
      } else if (d.isFile() || d.isSymbolicLink()) {
        files.push(childRel);
        kept++;
      } else {
        warn(`skipping ${JSON.stringify(childRel)}: not a regular file, folder or symlink`);
      }
    }
    return kept;
  };
  await walk('', 0, IgnoreRules.empty());

  // Phase 2: lstat every entry (synchronously: metadata is cached by the
  // kernel and a thread-pool round trip per file costs more than the call),
  // then hash only the cache misses, in parallel.
  // root is absolute and resolved, rel validated: plain concatenation is the join.
  const base = root.endsWith(sep) ? root : root + sep;
  // Number-valued stats: no BigInt per field (see stat-cache.ts on why
  // comparing them is as safe); the exact stat is recorded when hashed.
  // On this thread alone (scan-lstat.ts says why not with a worker).
  const values = lstatAll(base, files);
  /** The entries that are not files: empty folders and symlinks (their targets are data, read every time). */
  const others: TreeEntry[] = dirs.map((path) => ({ path, kind: 'dir' as const }));
  for (let i = 0, o = 0; i < files.length; i++, o += LSTAT_FIELDS) {
    if ((values[o] & S_IFMT) !== S_IFLNK || values[o] < 0) continue;
    const rel = files[i];
    let target: string;
    try {
      target = readlinkSync(base + rel, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'EINVAL')) continue; // gone, or no longer a symlink
      throw err;
    }
    if (target.length > 0) others.push({ path: rel, kind: 'symlink', target });
  }
  const compare = wide ? compareUtf8 : compareCodeUnits;

  // Nothing changed since the scan that saved the cache: every file trusted
  // with the same kind, no file more or less, the same folders and symlinks.
  // That scan's tree is this one (stat-cache.ts, "summary"): its digest is
  // known, and the tree is built and encoded only if someone asks for it.
  const summary = cache.summary;
  if (
    summary !== undefined &&
    cache.matchesAll(files, values) &&
    otherEntriesDigest(others, compare) === summary.others
  ) {
    return unchangedScan(files, values, others, compare, summary.tree, cache.adoptAll(), staleTemps);
  }

  const entries: TreeEntry[] = others.slice();
  /**
   * Files looked up in the stat cache that are not in the tree after all
   * (gone, or kept changing, when read): the cache drops their entries and
   * keeps every other it was asked about (retainOnly), without a set of
   * every path.
   */
  const absent: string[] = [];
  /**
   * The files to hash, as indices into `files` (their lstat in `values`): no
   * object per file, which at 50,000 files was ~5 MiB promoted to the old
   * generation and left there as garbage once hashed.
   */
  const misses: number[] = [];
  let expected = 0;
  const seen: LooseStat = { size: 0, ino: 0, mtimeMs: 0, ctimeMs: 0 };
  for (let i = 0, o = 0; i < files.length; i++, o += LSTAT_FIELDS) {
    const rel = files[i];
    const mode = values[o];
    if (mode === LSTAT_GONE) continue; // deleted while scanning
    if ((mode & S_IFMT) !== S_IFREG) continue; // symlinks: above
    const kind = kindOf(mode);
    const size = values[o + 1];
    const ino = values[o + 2];
    seen.size = size;
    seen.ino = ino;
    seen.mtimeMs = values[o + 3];
    seen.ctimeMs = values[o + 4];
    // An inode number beyond 2^53 does not survive a double: that file is looked up exactly.
    const digest = Number.isSafeInteger(ino)
      ? cache.lookupStats(rel, seen, kind === 'exec')
      : lookupExact(cache, rel, base + rel, kind === 'exec');
    if (digest === undefined) {
      misses.push(i);
      expected += size;
      continue;
    }
    // A hit is a trusted entry with this very stat: re-setting it would change nothing.
    entries.push({ path: rel, kind, size, digest });
  }
  let filesHashed = 0;
  let bytesHashed = 0;
  const changing: string[] = [];
  const progress = opts.progress;
  const hashing = misses.length > 0;
  cache.reserve(misses.length);
  if (progress && hashing) progress.start('hash', misses.length, expected);
  const onBytes = progress ? (n: number) => progress.bytes(n) : undefined;
  const hashed = (rel: string, kind: 'file' | 'exec', key: StatKey, digest: Digest) => {
    filesHashed++;
    bytesHashed += key.size;
    cache.set(rel, key, digest, now(), kind === 'exec');
    entries.push({ path: rel, kind, size: key.size, digest });
  };
  /** Runs one file's hashing: a file that keeps changing is left out with skipChanging, else fatal. */
  const each = async (rel: string, fn: () => Promise<void>) => {
    opts.signal?.throwIfAborted();
    try {
      await fn();
    } catch (err) {
      if (!opts.skipChanging || !isHoardError(err, 'HOARD_EFILE_CHANGING')) throw err;
      changing.push(rel);
      absent.push(rel);
    } finally {
      progress?.blobDone();
    }
  };
  // Small files: read whole into one reused buffer with synchronous calls
  // (open, read, fstat, close: page-cached, each costs less than one
  // thread-pool hand-off would), hashed once, handed to onContent. Large
  // files stream through the thread pool meanwhile.
  const isSmall = (i: number) => values[i * LSTAT_FIELDS + 1] <= DEFAULTS.syncSmallFileBytes;
  const small = misses.filter(isSmall);
  const large = misses.filter((i) => !isSmall(i));
  misses.length = 0;
  try {
    const streamed = forEachLimit(large, DEFAULTS.hashConcurrency, (i) => {
      const rel = files[i];
      const kind = kindOf(values[i * LSTAT_FIELDS]);
      return each(rel, async () => {
        const h = await hashFile(join(root, rel), onBytes, rel);
        if (h !== undefined) hashed(rel, kind, h.key, h.digest);
        else absent.push(rel); // deleted while scanning
      });
    });
    const readSmall = async () => {
      const buf = Buffer.allocUnsafe(DEFAULTS.syncSmallFileBytes + 1);
      let yielded = performance.now();
      for (let i = 0; i < small.length; i++) {
        // Every call in this loop is synchronous and onContent's promise is
        // already settled when the store writes in place, so without this the
        // event loop would not turn until the last file: a store's
        // background work (a batch's syncfs round ending, its links, the next
        // round) would wait for the end of the scan, and so would progress
        // output and a signal's handler. A turn every few ms costs ~20 µs.
        if (performance.now() - yielded >= SCAN_YIELD_MS) {
          await new Promise<void>((r) => setImmediate(r));
          yielded = performance.now();
        }
        const at = small[i];
        const o = at * LSTAT_FIELDS;
        const rel = files[at];
        const kind = kindOf(values[o]);
        seen.size = values[o + 1];
        seen.ino = values[o + 2];
        seen.mtimeMs = values[o + 3];
        seen.ctimeMs = values[o + 4];
        await each(rel, async () => {
          const abs = base + rel;
          const got = readSmallFile(abs, rel, seen, buf);
          if (got === 'gone') {
            absent.push(rel);
            return;
          }
          if (got === 'large') {
            // Grew past the small-file size since its lstat: stream it like the others.
            const h = await hashFile(abs, onBytes, rel);
            if (h !== undefined) hashed(rel, kind, h.key, h.digest);
            else absent.push(rel);
            return;
          }
          const bytes = buf.subarray(0, got.key.size);
          onBytes?.(bytes.byteLength);
          const digest = sha256(bytes);
          await opts.onContent?.(rel, digest, bytes);
          hashed(rel, kind, got.key, digest);
        });
      }
    };
    const settled = await Promise.allSettled([streamed, readSmall()]);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
  } finally {
    if (progress && hashing) progress.stop();
  }
  changing.sort();

  // Sort once in the canonical order (UTF-8 bytes), so the tree encoder
  // finds its input already sorted. Without encoding every path: for
  // well-formed strings (validateTreePath) UTF-16 code-unit order is UTF-8
  // byte order unless characters above U+D7FF meet, so the native string
  // comparison serves unless some name has one.
  const sorted = entries.sort(compare);

  cache.retainOnly(absent, files);
  const { digest, bytes } = treeDigestOfWalk(sorted);
  // What the next scan compares with: the cache's entries are this tree's files now.
  cache.setSummary({ tree: digest, others: otherEntriesDigest(others, compare) });
  const tree: Tree = { entries: sorted };
  return withLocalPaths({
    tree,
    digest,
    bytes,
    totals: treeTotals(tree),
    staleTemps,
    filesHashed,
    bytesHashed,
    changing,
  });
}

/**
 * The digest of a scan's entries that are not files (empty folders,
 * symlinks with their targets), in canonical order: with the stat cache's
 * entries, all a tree is made of.
 */
function otherEntriesDigest(others: readonly TreeEntry[], compare: typeof compareCodeUnits): Digest {
  const h = new Hasher();
  for (const e of [...others].sort(compare)) h.update(Buffer.from(`${encodeEntry(e)}\n`, 'utf8'));
  return h.digest();
}

/**
 * The result of a scan that found the folder as the stat cache's summary
 * describes it: the digest is the summary's; the tree (and its bytes) is
 * made on first use from the files' lstats and the cache's digests, and
 * checked against that digest. A no-op push asks only the digest and the
 * totals.
 */
function unchangedScan(
  files: readonly string[],
  values: Float64Array,
  others: readonly TreeEntry[],
  compare: typeof compareCodeUnits,
  digest: Digest,
  digests: () => Digest[],
  staleTemps: string[],
): ScanResult {
  let filesTotal = 0;
  let bytesTotal = 0;
  for (let o = 0; o < values.length; o += LSTAT_FIELDS) {
    if (values[o] < 0 || (values[o] & S_IFMT) !== S_IFREG) continue;
    filesTotal++;
    bytesTotal += values[o + 1];
  }
  let made: { tree: Tree; bytes: Buffer } | undefined;
  const make = () => {
    if (made !== undefined) return made;
    const d = digests();
    const entries: TreeEntry[] = others.slice();
    for (let i = 0, o = 0, k = 0; i < files.length; i++, o += LSTAT_FIELDS) {
      const mode = values[o];
      if (mode < 0 || (mode & S_IFMT) !== S_IFREG) continue;
      entries.push({
        path: files[i],
        kind: (mode & 0o100) !== 0 ? 'exec' : 'file',
        size: values[o + 1],
        digest: d[k++],
      });
    }
    entries.sort(compare);
    const encoded = treeDigestOfWalk(entries);
    if (encoded.digest !== digest)
      throw new HoardError(
        'HOARD_EINTERNAL',
        `unchanged scan made tree ${encoded.digest}, expected ${digest}`,
      );
    made = { tree: { entries }, bytes: encoded.bytes };
    return made;
  };
  const r = {
    digest,
    totals: { files: filesTotal, bytes: bytesTotal },
    staleTemps,
    filesHashed: 0,
    bytesHashed: 0,
    changing: [],
  } as unknown as Omit<ScanResult, 'localByDigest'>;
  Object.defineProperty(r, 'tree', { enumerable: true, get: () => make().tree });
  Object.defineProperty(r, 'bytes', { enumerable: true, get: () => make().bytes });
  return withLocalPaths(r);
}

/**
 * The result with `localByDigest` made on first use: a no-op push and a push
 * whose blobs the scan already stored never ask it, and at 50,000 files the
 * map is one more copy of every digest held until the process ends.
 */
export function withLocalPaths(r: Omit<ScanResult, 'localByDigest'>): ScanResult {
  let map: Map<Digest, string> | undefined;
  return Object.defineProperty(r as ScanResult, 'localByDigest', {
    enumerable: true,
    get: () => {
      if (map === undefined) {
        map = new Map();
        for (const e of r.tree.entries)
          if ((e.kind === 'file' || e.kind === 'exec') && !map.has(e.digest)) map.set(e.digest, e.path);
      }
      return map;
    },
  });
}

/** A regular file's kind in the tree from its lstat mode: the owner's x bit. */
function kindOf(mode: number): 'file' | 'exec' {
  return (mode & 0o100) !== 0 ? 'exec' : 'file';
}

/** The cache's digest for a file looked up with its exact (BigInt) stat; undefined when gone. */
function lookupExact(cache: StatCache, rel: string, abs: string, exec: boolean): Digest | undefined {
  const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
  return st?.isFile() ? cache.lookup(rel, statKeyOf(st), exec) : undefined;
}

/** How long the small-file loop runs before it lets the event loop turn (see readSmall). */
const SCAN_YIELD_MS = 5;

const WIDE = /[\uD800-\uFFFF]/;
/** Printable ASCII without a backslash: a name that needs no check beyond its path's length. */
const PLAIN_NAME = /^[\x20-\x5b\x5d-\x7e]+$/;
/** What validateTreePath refuses at the start of a path. */
const DRIVE_LETTER = /^[A-Za-z]:/;

function compareCodeUnits(a: TreeEntry, b: TreeEntry): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * UTF-8 byte order of two well-formed paths without encoding them: code
 * units compare as code points, except that surrogates (code points above
 * U+FFFF) must sort after U+E000–U+FFFF; a prefix sorts first.
 */
function compareUtf8(ea: TreeEntry, eb: TreeEntry): number {
  const a = ea.path;
  const b = eb.path;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Reads a small file whole into `buf` through one descriptor: the walk's
 * lstat is the "before" stat and an fstat after the read must equal it, so
 * the bytes belong to the stat recorded with them (a file replaced, grown or
 * rewritten in between is read again, a few times). 'large' when the file no
 * longer fits `buf`; 'gone' when it was deleted.
 */
function readSmallFile(
  abs: string,
  rel: string,
  seen: LooseStat,
  buf: Buffer,
): { key: StatKey } | 'large' | 'gone' {
  /** The exact stat a previous attempt ended with (the first compares with the walk's lstat). */
  let before: StatKey | undefined;
  let size = seen.size;
  for (let attempt = 0; attempt < DEFAULTS.hashChangingAttempts; attempt++) {
    let fd: number;
    try {
      fd = openSync(abs, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 'gone';
      throw err;
    }
    try {
      let n = 0;
      for (;;) {
        const got = readSync(fd, buf, n, buf.byteLength - n, n);
        if (got === 0) break;
        n += got;
        // The common case ends here without a read that returns 0: the size
        // is known, and a file that changed after the read fails the check below.
        if (n === size || n === buf.byteLength) break;
      }
      if (n === buf.byteLength) return 'large';
      const after = statKeyOf(fstatSync(fd, { bigint: true }));
      const same = before === undefined ? sameLooseStat(seen, after) : sameStat(before, after);
      if (same && n === after.size) return { key: after };
      before = after;
      size = after.size;
      if (after.size >= buf.byteLength) return 'large';
    } finally {
      closeSync(fd);
    }
  }
  throw new HoardError('HOARD_EFILE_CHANGING', `${rel} keeps changing while being read`, {
    hint: 'stop whatever is writing to it and sync again, or push with --skip-changing to leave it out',
    details: { path: rel },
  });
}

/**
 * Hashes a file through one descriptor, checking its stat before and after:
 * a file that changes while being read is read again (a few times), so the
 * digest always belongs to the stat recorded with it. `onBytes` sees every
 * read (progress; a re-read counts again); `rel` names the file in errors.
 */
export async function hashFile(
  abs: string,
  onBytes?: (n: number) => void,
  rel: string = abs,
): Promise<{ digest: Digest; key: StatKey } | undefined> {
  for (let attempt = 0; attempt < DEFAULTS.hashChangingAttempts; attempt++) {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    try {
      const before = statKeyOf(await fh.stat({ bigint: true }));
      const h = new Hasher();
      // One buffer sized to the file (up to a chunk), reused for every read:
      // a 20 KB file must not allocate a 256 KiB stream buffer.
      const buf = Buffer.allocUnsafe(Math.max(1, Math.min(before.size + 1, DEFAULTS.streamChunkBytes)));
      let pos = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.byteLength, pos);
        if (bytesRead === 0) break;
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
        onBytes?.(bytesRead);
      }
      const after = statKeyOf(await fh.stat({ bigint: true }));
      if (sameStat(before, after) && h.size === after.size) return { digest: h.digest(), key: after };
    } finally {
      await fh.close();
    }
  }
  throw new HoardError('HOARD_EFILE_CHANGING', `${rel} keeps changing while being read`, {
    hint: 'stop whatever is writing to it and sync again, or push with --skip-changing to leave it out',
    details: { path: rel },
  });
}
