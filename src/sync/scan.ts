// Scanning a synced directory into a tree: one walk with lstat (symlinks are
// never followed, their targets are data), files hashed only when their stat
// differs from the stat cache, hashing bounded in parallel. Executable bit =
// the owner's x bit. Empty folders become `dir` entries. Temp files of dead
// pull processes are collected so pull can remove them.
//
// The walk is scan-walk.ts; files are read for their digest by
// hash-file.ts; a folder unchanged since the stat cache's save is
// unchanged-scan.ts; the result's shape is scan-result.ts.

import { constants, lstatSync, readlinkSync } from 'node:fs';
import { join, sep } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, sha256 } from '../core/digest.ts';
import { isHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import { type Tree, type TreeEntry, treeDigestOfWalk } from '../core/tree.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { hashFile, readSmallFile } from './hash-file.ts';
import { compareCodeUnits, compareUtf8 } from './scan-entry-order.ts';
import { LSTAT_FIELDS, LSTAT_GONE, lstatAll } from './scan-lstat.ts';
import { type ScanResult, withLocalPaths } from './scan-result.ts';
import { walkDirectory } from './scan-walk.ts';
import type { StatCache } from './stat-cache.ts';
import { type LooseStat, type StatKey, statKeyOf } from './stat-key.ts';
import type { ProgressSink } from './transfer.ts';
import { treeTotals } from './tree-diff.ts';
import { otherEntriesDigest, unchangedScan } from './unchanged-scan.ts';

const { S_IFMT, S_IFLNK, S_IFREG } = constants;

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
  // Phase 1: walk folders (readdir only), applying ignore rules (scan-walk.ts).
  const { files, dirs, staleTemps, wide } = await walkDirectory(root, warn, opts.signal);

  // Phase 2: lstat every entry (synchronously: metadata is cached by the
  // kernel and a thread-pool round trip per file costs more than the call),
  // then hash only the cache misses, in parallel.
  // root is absolute and resolved, rel validated: plain concatenation is the join.
  const base = root.endsWith(sep) ? root : root + sep;
  // Number-valued stats: no BigInt per field (see stat-key.ts on why
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
  // That scan's tree is this one (stat-cache-summary.ts): its digest is
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
  // finds its input already sorted; without encoding every path
  // (scan-entry-order.ts).
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
