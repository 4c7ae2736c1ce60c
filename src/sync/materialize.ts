// Writing a tree into a directory (the second half of pull and of a cache
// restore). Every file is written to a temp file in its own folder, verified
// against its digest, then renamed into place, so a crash at any instant
// leaves each file old or new. Symlinks are created the same way (symlink at
// a temp name, rename) and never followed: before anything is written, every
// parent folder of every path is checked with lstat to be a real folder (or
// absent), and again at the moment of writing (local-folders.ts; for batched
// small files: at most RECENT_FOLDER_MS before). Blobs that several files
// share are fetched once; blobs already in the directory are copied locally
// instead of downloaded.
// Small blobs come in batches (BlobStore.readMany: a few hundred per
// request from a hoard server) and are written with synchronous calls as
// they arrive (small-file-writer.ts): for a folder of many small files the
// per-file costs (a request, thread-pool hand-offs for open/write/close/
// rename) are the time. Without fsync (a cache restore, as tar), files in
// folders this materialize created are created under their final names
// instead (see small-file-writer.ts for why that keeps every guarantee a
// restore gives).
// A folder the target replaces by a file or symlink is emptied and removed
// first, and only when everything in it is tracked content this pull deletes
// (merge already made un-pushed local changes there a conflict).

import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  fsync,
  openSync,
  readSync,
  renameSync,
  type Stats,
  writeSync,
} from 'node:fs';
import { chmod, copyFile, lstat, mkdir, rename, rmdir, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { BlobWant } from '../core/blob-batch-frame.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, sha256, VerifyingStream } from '../core/digest.ts';
import { HoardError, isHoardError, isNoSpaceErrno, NoSpaceError, toHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import { SingleFlight } from '../core/single-flight.ts';
import type { FileEntry, Tree, TreeEntry } from '../core/tree.ts';
import { comparePathBytes, validateTreePath } from '../core/tree-path.ts';
import type { Remote } from '../remote/remote.ts';
import { isErrno, tempName } from '../store/fs-atomic.ts';
import { readMany, readWholeVerified } from '../store/read-many.ts';
import { type MissingBlob, missingBlobsError } from './common.ts';
import { syncFolders } from './file-system-sync.ts';
import { isTempName, STATE_DIR } from './ignore-rules.ts';
import {
  deepestFirst,
  FolderGuard,
  lstatOrUndefined,
  parentsAreFolders,
  parentsOf,
  removeEmptyFolders,
  unsafe,
  untrackedInside,
} from './local-folders.ts';
import { entryKey } from './merge.ts';
import { SmallFileWriter } from './small-file-writer.ts';
import type { StatCache } from './stat-cache.ts';
import { ThreadedFileWriter } from './threaded-writer.ts';
import { CountingStream, chunkFor, type ProgressSink } from './transfer.ts';
import { WrittenLog } from './written-log.ts';

const fsyncFd = promisify(fsync);

export interface MaterializeInput {
  root: string;
  /** What the scan saw on disk. */
  current: Tree;
  /** The tree to write (already validated and merged). */
  target: Tree;
  /** A current file path holding each digest. */
  localByDigest: ReadonlyMap<Digest, string>;
  remote: Remote;
  /** The ref being pulled, for error messages. */
  ref: string;
  cache: StatCache;
  progress: ProgressSink;
  /** Parallel downloads (default transferConcurrency). */
  concurrency?: number;
  /**
   * fsync each file and folder written (default: syncFsyncFiles). A cache
   * restore turns it off, as tar does: a crash leaves at worst a short
   * file, which the next restore re-hashes (no stat-cache entry vouches for
   * it) and rewrites. Off also means files in folders this call creates are
   * created under their final names (small-file-writer.ts).
   */
  fsync?: boolean;
  /**
   * Without fsync: write batched small files in a worker thread (default:
   * when there are at least WRITER_THREAD_MIN_BLOBS of them).
   */
  writerThread?: boolean;
}

/** Below this many batched blobs, a worker thread's start-up costs more than it saves. */
export const WRITER_THREAD_MIN_BLOBS = 1000;

export interface MaterializeResult {
  filesDownloaded: number;
  bytesDownloaded: number;
  filesDeleted: number;
  filesWritten: number;
}

/** Whether `path` has `name` as one of its segments. */
function hasSegment(path: string, name: string): boolean {
  for (let i = path.indexOf(name); i !== -1; i = path.indexOf(name, i + 1))
    if (
      (i === 0 || path[i - 1] === '/') &&
      (i + name.length === path.length || path[i + name.length] === '/')
    )
      return true;
  return false;
}

/** Whether two paths are in the same folder (both at the top, or the same text up to their last slash). */
function sameFolder(a: string, b: string): boolean {
  const slash = a.lastIndexOf('/');
  return slash === b.lastIndexOf('/') && (slash === -1 || a.startsWith(b.slice(0, slash + 1)));
}

function execMode(mode: number, exec: boolean): number {
  const perm = mode & 0o777;
  return exec ? perm | ((perm & 0o444) >> 2) : perm & ~0o111;
}

export async function materialize(input: MaterializeInput): Promise<MaterializeResult> {
  const { root, remote, cache, progress } = input;
  const fsync = input.fsync ?? DEFAULTS.syncFsyncFiles;
  const cur = new Map(input.current.entries.map((e) => [e.path, e]));
  const tgt = new Map(input.target.entries.map((e) => [e.path, e]));
  for (const p of tgt.keys()) {
    validateTreePath(p);
    if (hasSegment(p, STATE_DIR) || isTempName(p.slice(p.lastIndexOf('/') + 1)))
      throw new HoardError(
        'HOARD_EPATH_INVALID',
        `invalid path ${JSON.stringify(p)}: reserved for hoard's local state`,
        {
          hint: 'nothing was written; the remote tree was not made by hoard push',
          details: { path: p },
        },
      );
  }

  // Everything under a target path's parents must be a folder.
  const targetFolders = new Set<string>();
  let prev = '';
  for (const p of tgt.keys()) {
    // A run of paths in one folder adds its folders once.
    if (sameFolder(p, prev)) continue;
    prev = p;
    for (const q of parentsOf(p)) targetFolders.add(q);
  }
  for (const [p, e] of tgt) if (e.kind === 'dir') targetFolders.add(p);

  const isDirKind = (e: TreeEntry | undefined) => e?.kind === 'dir';
  const removals = new Set<string>();
  for (const [p, e] of cur) {
    const t = tgt.get(p);
    if (!t || isDirKind(e) !== isDirKind(t) || (!isDirKind(e) && targetFolders.has(p))) removals.add(p);
  }
  const writes: TreeEntry[] = [];
  const chmods: FileEntry[] = [];
  for (const [p, t] of tgt) {
    const c = cur.get(p);
    if (!removals.has(p) && entryKey(c) === entryKey(t)) continue;
    if (
      !removals.has(p) &&
      c &&
      (c.kind === 'file' || c.kind === 'exec') &&
      (t.kind === 'file' || t.kind === 'exec') &&
      c.digest === t.digest
    ) {
      chmods.push(t);
      continue;
    }
    writes.push(t);
  }

  // Pre-flight: nothing is written unless every write can land safely.
  // First every parent folder of every path, each once: a real folder, or
  // absent (then nothing under it exists to be in the way: a restore into an
  // empty folder looks at each of its folders once, not at each file).
  const checkedParents = new Set<string>();
  const absentParents = new Set<string>();
  const changes = [...writes, ...chmods];
  prev = '';
  for (const e of changes) {
    // The same folder as the entry before: the same parents, already checked.
    if (sameFolder(e.path, prev)) continue;
    prev = e.path;
    let underAbsent = false;
    for (const q of parentsOf(e.path)) {
      if (checkedParents.has(q)) {
        if (absentParents.has(q)) underAbsent = true;
        continue;
      }
      checkedParents.add(q);
      const st = underAbsent ? undefined : lstatOrUndefined(join(root, q));
      if (!st) {
        absentParents.add(q);
        underAbsent = true;
        continue;
      }
      if (st.isDirectory() || removals.has(q)) continue;
      unsafe(e.path, `${q} is ${st.isSymbolicLink() ? 'a symlink' : 'not a folder'} in the local directory`);
    }
  }
  /** What is at each changed path now (lstat), for the paths whose folder exists. */
  const present = new Map<string, Stats>();
  for (const e of changes) {
    const slash = e.path.lastIndexOf('/');
    if (slash !== -1 && absentParents.has(e.path.slice(0, slash))) continue;
    const st = lstatOrUndefined(join(root, e.path));
    if (st) present.set(e.path, st);
  }

  // A folder the target replaces by a file or symlink: every entry in it
  // must be a tracked one this pull removes (merge has already made a local
  // un-pushed change there a conflict); anything hoard does not sync
  // (ignored files, a nested .hoard/) would be lost, so it stops the pull.
  const replacedFolders = new Set<string>();
  for (const e of writes) {
    if (e.kind === 'dir' || removals.has(e.path) || !present.get(e.path)?.isDirectory()) continue;
    const stray = await untrackedInside(root, e.path, (q) => removals.has(q) && cur.get(q)?.kind !== 'dir');
    if (stray !== undefined)
      unsafe(
        e.path,
        `the local folder it replaces holds ${JSON.stringify(stray)}, which is not synced here (ignored or hoard state) and would be lost`,
      );
    replacedFolders.add(e.path);
  }
  const inReplaced = (p: string) =>
    replacedFolders.size > 0 && parentsOf(p).some((q) => replacedFolders.has(q));

  for (const e of changes) {
    const st = present.get(e.path);
    if (st?.isDirectory() && e.kind !== 'dir' && !removals.has(e.path) && !replacedFolders.has(e.path))
      unsafe(e.path, 'a local folder is in the way');
    if (st && !st.isDirectory() && e.kind === 'dir' && !removals.has(e.path))
      unsafe(e.path, 'a local file is in the way');
  }
  present.clear();

  let filesDeleted = 0;
  const deleted = new Set<string>();
  const remove = async (p: string) => {
    if (!parentsAreFolders(root, p)) return;
    const abs = join(root, p);
    const st = lstatOrUndefined(abs);
    if (!st) return;
    if (st.isDirectory()) {
      await rmdir(abs).catch((err) => {
        if (!isErrno(err, 'ENOTEMPTY', 'EEXIST', 'ENOENT')) throw err;
      });
    } else {
      await unlink(abs).catch((err) => {
        if (!isErrno(err, 'ENOENT')) throw err;
      });
      if (!tgt.has(p)) filesDeleted++;
    }
    deleted.add(p);
    cache.delete(p);
  };
  // Removals that make room for writes go first; the rest after the writes,
  // so a renamed file can still be copied from its old place.
  const makesRoom = (p: string) => tgt.has(p) || targetFolders.has(p) || inReplaced(p);
  const structural = deepestFirst([...removals].filter(makesRoom));
  const later = deepestFirst([...removals].filter((p) => !makesRoom(p)));
  for (const p of structural) await remove(p);
  // What is left of a replaced folder is folders only (the pre-flight
  // checked); anything that appeared since stops the pull before it is lost.
  for (const p of deepestFirst([...replacedFolders])) {
    if (!parentsAreFolders(root, p)) continue;
    await removeEmptyFolders(root, p);
    cache.delete(p);
  }

  // Folders and symlinks.
  const folders = new FolderGuard(root);
  const touchedDirs = new Set<string>();
  for (const e of writes) {
    if (e.kind === 'dir') {
      folders.ensureParents(e.path);
      await mkdir(join(root, e.path)).catch((err) => {
        if (!isErrno(err, 'EEXIST')) throw err;
      });
    } else if (e.kind === 'symlink') {
      const parent = folders.ensureParents(e.path);
      const tmp = join(parent, tempName());
      await symlink(e.target, tmp);
      try {
        await rename(tmp, join(root, e.path));
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
      touchedDirs.add(parent);
    }
  }

  // Files, grouped by digest: each blob fetched once.
  // A digest most often has one file: held as the entry itself, not an
  // array of one (at 50,000 files those arrays were ~4 MiB of a fresh
  // pull's heap, kept to its end); filesOf makes the list when it is used.
  const groups = new Map<Digest, FileEntry | FileEntry[]>();
  for (const e of writes) {
    if (e.kind !== 'file' && e.kind !== 'exec') continue;
    const g = groups.get(e.digest);
    if (g === undefined) groups.set(e.digest, e);
    else if (Array.isArray(g)) g.push(e);
    else groups.set(e.digest, [g, e]);
  }
  let filesDownloaded = 0;
  let bytesDownloaded = 0;
  let totalBytes = 0;
  for (const g of groups.values()) totalBytes += filesOf(g)[0].size;
  const flight = new SingleFlight<Digest, void>();
  /** Files written or chmod-ed, with the time just after (their ctime cannot be later unless someone else changed them). */
  const written = new WrittenLog(cache);

  /** One read buffer for small local copies: each is read, hashed and written without an await in between. */
  let copyBuf: Buffer | undefined;
  /**
   * Small files: read whole, hashed once, written to the temp file with
   * synchronous calls (page-cached: microseconds each, against a thread-pool
   * hand-off per call and a stream per file), fsynced in the thread pool.
   */
  const fillSmall = async (digest: Digest, size: number, tmp: string, mode: number): Promise<void> => {
    const local = input.localByDigest.get(digest);
    if (local !== undefined && !deleted.has(local)) {
      copyBuf ??= Buffer.allocUnsafe(DEFAULTS.syncSmallFileBytes + 1);
      const bytes = readLocalCopy(join(root, local), size, copyBuf);
      if (bytes && sha256(bytes) === digest) {
        await writeTemp(tmp, bytes, mode);
        progress.bytes(size);
        return;
      }
      // changed or gone meanwhile: download it instead
    }
    let bytes: Buffer;
    try {
      bytes = await readWholeVerified(remote.blobs, { digest, size });
    } catch (err) {
      throw downloadError(digest, err);
    }
    await writeTemp(tmp, bytes, mode);
    progress.bytes(size);
    filesDownloaded++;
    bytesDownloaded += size;
  };
  /** writeFileDurably; the local disk being full is said as such (not the remote's failure, not corruption). */
  const writeTemp = async (tmp: string, bytes: Buffer, mode: number): Promise<void> => {
    try {
      await writeFileDurably(tmp, bytes, mode, fsync);
    } catch (err) {
      if (isNoSpaceErrno(err)) throw localDiskFull(tmp, err);
      throw err;
    }
  };
  const corrupt = (digest: Digest, cause: unknown) =>
    new HoardError('HOARD_EDIGEST_MISMATCH', `download of ${digest} from ${remote.url} was corrupt`, {
      hint: 'the bytes were discarded; run `hoard fsck` on the remote and pull again',
      cause,
    });
  /** A failed download said as what it is: not found passes through (the caller lists those), corruption, the remote's failure. */
  const downloadError = (digest: Digest, err: unknown) => {
    if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH')) return corrupt(digest, err);
    if (isHoardError(err)) return err;
    return toHoardError(err, 'HOARD_EREMOTE', `downloading ${digest} from ${remote.url}`);
  };
  const localDiskFull = (tmp: string, cause: unknown) =>
    new NoSpaceError(`no space left on the local disk writing ${dirname(tmp)}`, {
      hint: 'free space on that disk (or raise its quota) and pull again',
      cause,
    });

  const fill = async (digest: Digest, size: number, tmp: string, exec: boolean): Promise<void> => {
    const mode = exec ? 0o777 : 0o666;
    if (size <= DEFAULTS.syncSmallFileBytes) return fillSmall(digest, size, tmp, mode);
    const local = input.localByDigest.get(digest);
    if (local !== undefined && !deleted.has(local)) {
      try {
        await pipeline(
          createReadStream(join(root, local), { highWaterMark: chunkFor(size) }),
          new VerifyingStream(digest, size),
          new CountingStream((n) => progress.bytes(n)),
          createWriteStream(tmp, { flags: 'wx', mode, flush: fsync }),
        );
        return;
      } catch {
        // changed or gone meanwhile: download it instead
        await unlink(tmp).catch(() => {});
      }
    }
    const counter = new CountingStream((n) => progress.bytes(n));
    try {
      await pipeline(
        await remote.blobs.read(digest),
        counter,
        new VerifyingStream(digest, size),
        createWriteStream(tmp, { flags: 'wx', mode, flush: fsync }),
      );
    } catch (err) {
      await unlink(tmp).catch(() => {});
      // The local disk is full: not the remote's failure, and not corruption.
      if (isNoSpaceErrno(err)) throw localDiskFull(tmp, err);
      if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH') || isHoardError(err, 'HOARD_ETRUNCATED'))
        throw corrupt(digest, err);
      throw toHoardError(err, 'HOARD_EREMOTE', `downloading ${digest} from ${remote.url}`);
    }
    filesDownloaded++;
    bytesDownloaded += counter.count;
  };

  // Blobs the remote does not have: every other file is still written, then
  // one error names them all with the paths that need them.
  const missing: MissingBlob[] = [];
  const missingOf = (digest: Digest, entries: FileEntry[]) =>
    missing.push({ digest, paths: entries.map((e) => e.path).sort(comparePathBytes) });

  /** One blob by the usual path: fetched (or copied locally) once, then copied to its other paths. */
  const writeGroup = async (digest: Digest, entries: FileEntry[]): Promise<void> => {
    const temps: { tmp: string; entry: FileEntry }[] = [];
    let firstMode: number | undefined;
    try {
      for (const entry of entries) {
        const parent = folders.ensureParents(entry.path);
        const tmp = join(parent, tempName());
        const exec = entry.kind === 'exec';
        if (temps.length === 0) {
          try {
            await fill(digest, entry.size, tmp, exec);
          } catch (err) {
            if (!isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) throw err;
            missingOf(digest, entries);
            return;
          }
        } else {
          await copyFile(temps[0].tmp, tmp, constants.COPYFILE_EXCL);
          firstMode ??= (await stat(temps[0].tmp)).mode;
          await chmod(tmp, execMode(firstMode, exec));
        }
        temps.push({ tmp, entry });
        touchedDirs.add(parent);
      }
      for (const { tmp, entry } of temps) {
        folders.ensureParents(entry.path);
        renameSync(tmp, join(root, entry.path));
        written.push({ entry, doneAt: Date.now() });
      }
      temps.length = 0;
    } finally {
      for (const { tmp } of temps) await unlink(tmp).catch(() => {});
    }
    progress.blobDone({ digest, size: entries[0].size, path: entries[0].path });
  };

  // Small blobs with no local copy to take them from travel in batches.
  // Each arrives whole and verified; its files are written right there
  // with synchronous calls (temp, write, close, rename); with fsync on,
  // the temps are made durable in groups (one syncfs per few thousand
  // files, small-file-writer.ts) and renamed only after that, so a crash
  // never publishes a torn file.
  const batched: BlobWant[] = [];
  const individual: [Digest, FileEntry[]][] = [];
  for (const [digest, g] of groups) {
    const entries = filesOf(g);
    const size = entries[0].size;
    const local = input.localByDigest.get(digest);
    if (size <= DEFAULTS.blobBatchFileBytes && local === undefined) batched.push({ digest, size });
    else individual.push([digest, entries]);
  }
  const writer = new SmallFileWriter({
    root,
    folders,
    fsync,
    inPlace: !fsync,
    written,
    diskFull: localDiskFull,
  });
  // A big restore without fsync hands its small files to a worker thread
  // (threaded-writer.ts): their system calls then overlap the downloads.
  // Not a pull: with its fsyncs batched (small-file-writer.ts) the main
  // thread alone was as fast at 50,000 files (7.2–9.1 s against 8.1 s),
  // with ~60 MiB less memory (the worker's isolate and heap) and less CPU.
  // (Started inside the try below, so it is always stopped.)
  let threaded: ThreadedFileWriter | undefined;
  const useThread = !fsync && (input.writerThread ?? batched.length >= WRITER_THREAD_MIN_BLOBS);
  const writeBatched = async (digest: Digest, bytes: Buffer): Promise<void> => {
    const entries = filesOf(groups.get(digest)!);
    await (threaded ?? writer).write(entries, bytes);
    if (fsync) for (const e of entries) touchedDirs.add(dirname(join(root, e.path)));
    progress.bytes(bytes.byteLength);
    progress.blobDone({ digest, size: bytes.byteLength, path: entries[0].path });
    filesDownloaded++;
    bytesDownloaded += bytes.byteLength;
  };
  /** A batch failing: corruption names the blob; anything not ours is the remote's failure. */
  const batchError = (err: unknown) => {
    if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH'))
      return corrupt((err.details?.expected as Digest | undefined) ?? ('a blob' as Digest), err);
    if (isHoardError(err)) return err;
    return toHoardError(err, 'HOARD_EREMOTE', `downloading from ${remote.url}`);
  };

  // Both paths run at once; the first failure stops the other (no new
  // blob starts), and materialize returns only once nothing is in flight.
  const stop = new AbortController();
  const stopOnFailure = (p: Promise<void>) =>
    p.catch((err) => {
      stop.abort(err);
      throw err;
    });
  progress.start('pull', groups.size, totalBytes);
  try {
    if (useThread) threaded = new ThreadedFileWriter({ root, written, diskFull: localDiskFull });
    const results = await Promise.allSettled([
      stopOnFailure(
        readMany(
          remote.blobs,
          batched,
          (rec) => {
            stop.signal.throwIfAborted();
            if (rec.status === 'missing') missingOf(rec.digest, filesOf(groups.get(rec.digest)!));
            else return writeBatched(rec.digest, rec.bytes);
          },
          { concurrency: input.concurrency ?? DEFAULTS.transferConcurrency, signal: stop.signal },
        ).then(
          () => threaded?.finish(),
          (err) => {
            throw batchError(err);
          },
        ),
      ),
      stopOnFailure(
        forEachLimit(individual, input.concurrency ?? DEFAULTS.transferConcurrency, ([digest, entries]) => {
          stop.signal.throwIfAborted();
          return flight.do(digest, () => writeGroup(digest, entries));
        }),
      ),
    ]);
    const settled = await writer.settle();
    // The first failure is the abort's reason (the other path then failed by the abort).
    if (stop.signal.aborted) throw stop.signal.reason;
    const failure = [...results, ...settled].find((r) => r.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
  } finally {
    await threaded?.close();
    progress.stop();
  }
  if (missing.length > 0) throw missingBlobsError(input.ref, remote.url, missing, 'pull');

  for (const e of chmods) {
    folders.ensureParents(e.path);
    const abs = join(root, e.path);
    const st = await lstat(abs);
    if (st.isFile()) await chmod(abs, execMode(st.mode, e.kind === 'exec'));
    written.push({ entry: e, doneAt: Date.now() });
  }

  for (const p of later) await remove(p);

  // Folders left empty by deletions go too, unless the target keeps them.
  const emptied = new Set<string>();
  for (const p of deleted)
    for (const q of parentsOf(p))
      if (!targetFolders.has(q) && !replacedFolders.has(q) && !inReplaced(q)) emptied.add(q);
  for (const q of deepestFirst([...emptied])) {
    if (!parentsAreFolders(root, q)) continue;
    const st = lstatOrUndefined(join(root, q));
    if (st?.isDirectory()) await rmdir(join(root, q)).catch(() => {});
  }

  if (fsync) await syncFolders(touchedDirs);

  // Record the puller's own stat values, so the next push re-reads nothing.
  written.finish(root);

  return { filesDownloaded, bytesDownloaded, filesDeleted, filesWritten: written.length };
}

/** The files of one digest's group (see groups in materialize). */
function filesOf(g: FileEntry | FileEntry[]): FileEntry[] {
  return Array.isArray(g) ? g : [g];
}

/**
 * A small local file's bytes when it still has `size` bytes (read into
 * `buf`, valid until its next use), or undefined when it changed size or is
 * gone; the caller checks the digest.
 */
function readLocalCopy(abs: string, size: number, buf: Buffer): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, Math.min(buf.byteLength, size + 1) - n, n);
      if (got === 0) break;
      n += got;
      if (n > size) return undefined;
    }
    return n === size ? buf.subarray(0, n) : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a new temp file (exclusive create) from memory; with `fsync`,
 * fsynced before it is closed, so the rename that follows never publishes a
 * torn file. The fsync runs in the thread pool; the write itself is
 * synchronous, so `bytes` may be reused once this returns a promise.
 */
async function writeFileDurably(tmp: string, bytes: Uint8Array, mode: number, fsync: boolean): Promise<void> {
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
      if (fsync) await fsyncFd(fd);
    } finally {
      // close can report a deferred write error (NFS): thrown like the write's.
      closeSync(fd);
    }
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
