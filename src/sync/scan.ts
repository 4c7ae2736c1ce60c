// Scanning a synced directory into a tree: one walk with lstat (symlinks are
// never followed, their targets are data), files hashed only when their stat
// differs from the stat cache, hashing bounded in parallel. Executable bit =
// the owner's x bit. Empty folders become `dir` entries. Temp files of dead
// pull processes are collected so pull can remove them.

import type { BigIntStats, Dirent } from 'node:fs';
import { lstatSync, readlinkSync } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import { type Tree, type TreeEntry, treeDigest } from '../core/tree.ts';
import { validateTreePath } from '../core/tree-path.ts';
import { isErrno, isPidAlive, pidOfTempName } from '../store/fs-atomic.ts';
import { IgnoreRules, isTempName } from './ignore-rules.ts';
import { type StatCache, type StatKey, sameStat, statKeyOf } from './stat-cache.ts';
import type { ProgressSink } from './transfer.ts';

export interface ScanResult {
  tree: Tree;
  digest: Digest;
  bytes: Buffer;
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
}

export async function scanDirectory(
  root: string,
  cache: StatCache,
  opts: ScanOptions = {},
): Promise<ScanResult> {
  const warn = opts.warn ?? (() => {});
  const files: string[] = [];
  const dirs: string[] = [];
  const staleTemps: string[] = [];

  // Phase 1: walk folders (readdir only), applying ignore rules.
  const walk = async (rel: string, rules: IgnoreRules): Promise<number> => {
    opts.signal?.throwIfAborted();
    let dirents: Dirent[];
    try {
      dirents = await readdir(join(root, rel), { withFileTypes: true });
    } catch (err) {
      if (rel !== '' && isErrno(err, 'ENOENT', 'ENOTDIR')) return 0; // removed while scanning
      if (rel === '' && isErrno(err, 'ENOENT'))
        throw new HoardError('HOARD_EUSAGE', `directory ${root} does not exist`);
      throw err;
    }
    const here = await rules.enter(root, rel, new Set(dirents.map((d) => d.name)));
    let kept = 0;
    for (const d of dirents) {
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`;
      if (!d.isDirectory() && isTempName(d.name)) {
        const pid = pidOfTempName(d.name);
        if (pid !== undefined && pid !== process.pid && !isPidAlive(pid))
          staleTemps.push(join(root, childRel));
        continue;
      }
      if (here.ignores(childRel, d.isDirectory())) continue;
      try {
        validateTreePath(childRel);
      } catch (err) {
        warn(`skipping ${JSON.stringify(childRel)}: ${(err as Error).message}`);
        continue;
      }
      if (d.isDirectory()) {
        const n = await walk(childRel, here);
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
  await walk('', IgnoreRules.empty());

  // Phase 2: lstat every entry (synchronously: metadata is cached by the
  // kernel and a thread-pool round trip per file costs more than the call),
  // then hash only the cache misses, in parallel.
  const entries: TreeEntry[] = dirs.map((path) => ({ path, kind: 'dir' as const }));
  /** Paths of the file entries: the stat cache keeps only these. */
  const filePaths = new Set<string>();
  const misses: { rel: string; kind: 'file' | 'exec' }[] = [];
  for (const rel of files) {
    const abs = join(root, rel);
    let st: BigIntStats;
    try {
      st = lstatSync(abs, { bigint: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue; // deleted while scanning
      throw err;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(abs, 'utf8');
      if (target.length > 0) entries.push({ path: rel, kind: 'symlink', target });
      continue;
    }
    if (!st.isFile()) continue;
    const kind = (st.mode & 0o100n) !== 0n ? 'exec' : 'file';
    const key = statKeyOf(st);
    const digest = cache.lookup(rel, key);
    if (digest === undefined) {
      misses.push({ rel, kind });
      continue;
    }
    // A hit is a trusted entry with this very stat: re-setting it would change nothing.
    filePaths.add(rel);
    entries.push({ path: rel, kind, size: key.size, digest });
  }
  let filesHashed = 0;
  let bytesHashed = 0;
  const changing: string[] = [];
  const progress = opts.progress;
  if (progress && misses.length > 0) {
    let expected = 0;
    for (const m of misses) expected += lstatSync(join(root, m.rel), { throwIfNoEntry: false })?.size ?? 0;
    progress.start('hash', misses.length, expected);
  }
  const onBytes = progress ? (n: number) => progress.bytes(n) : undefined;
  try {
    await forEachLimit(misses, DEFAULTS.hashConcurrency, async ({ rel, kind }) => {
      opts.signal?.throwIfAborted();
      let hashed: Awaited<ReturnType<typeof hashFile>>;
      try {
        hashed = await hashFile(join(root, rel), onBytes, rel);
      } catch (err) {
        if (!opts.skipChanging || !isHoardError(err, 'HOARD_EFILE_CHANGING')) throw err;
        changing.push(rel);
        return;
      } finally {
        progress?.blobDone();
      }
      if (hashed === undefined) return; // deleted while scanning
      filesHashed++;
      bytesHashed += hashed.key.size;
      cache.set(rel, hashed.key, hashed.digest, Date.now());
      filePaths.add(rel);
      entries.push({ path: rel, kind, size: hashed.key.size, digest: hashed.digest });
    });
  } finally {
    if (progress && misses.length > 0) progress.stop();
  }
  changing.sort();

  // Sort once with precomputed byte keys (the canonical order), so the
  // tree encoder finds its input already sorted.
  const keyed = entries.map((e) => ({ k: Buffer.from(e.path, 'utf8'), e }));
  keyed.sort((a, b) => Buffer.compare(a.k, b.k));
  const sorted = keyed.map((x) => x.e);

  cache.retain(filePaths);
  const { digest, bytes } = treeDigest(sorted);
  const tree: Tree = { entries: sorted };
  const localByDigest = new Map<Digest, string>();
  for (const e of tree.entries) {
    if ((e.kind === 'file' || e.kind === 'exec') && !localByDigest.has(e.digest))
      localByDigest.set(e.digest, e.path);
  }
  return { tree, digest, bytes, localByDigest, staleTemps, filesHashed, bytesHashed, changing };
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
