// Writing a tree into a directory (the second half of pull and of a cache
// restore). Every file is written to a temp file in its own folder, verified
// against its digest, then renamed into place, so a crash at any instant
// leaves each file old or new. Symlinks are created the same way (symlink at
// a temp name, rename) and never followed: before anything is written, every
// parent folder of every path is checked with lstat to be a real folder (or
// absent: materialize-preflight.ts), and again at the moment of writing
// (local-folders.ts; for batched small files: at most RECENT_FOLDER_MS
// before). Blobs that several files share are fetched once; blobs already
// in the directory are copied locally instead of downloaded
// (materialize-files.ts, blob-group-writer.ts).
// Small blobs come in batches and are written with synchronous calls as
// they arrive (small-file-writer.ts). Without fsync (a cache restore, as
// tar), files in folders this materialize created are created under their
// final names instead (see small-file-writer.ts for why that keeps every
// guarantee a restore gives).
// A folder the target replaces by a file or symlink is emptied and removed
// first, and only when everything in it is tracked content this pull deletes
// (merge already made un-pushed local changes there a conflict).
//
// The order: plan (materialize-plan.ts), pre-flight, removals that make
// room, folders and symlinks, files, chmods, the other removals and the
// folders they emptied (materialize-removals.ts), then (with fsync) the
// folders written into, and the stat cache's entries of what was written.

import { chmod, lstat, mkdir, rename, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import type { Tree } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { isErrno, tempName } from '../store/fs-atomic.ts';
import { execMode } from './blob-group-writer.ts';
import { syncFolders } from './file-system-sync.ts';
import { deepestFirst, FolderGuard, parentsOf } from './local-folders.ts';
import { writeFiles } from './materialize-files.ts';
import { planMaterialize } from './materialize-plan.ts';
import { checkBeforeWriting } from './materialize-preflight.ts';
import { LocalRemovals } from './materialize-removals.ts';
import type { StatCache } from './stat-cache.ts';
import type { ProgressSink } from './transfer.ts';
import { WrittenLog } from './written-log.ts';

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
   * when there are at least WRITER_THREAD_MIN_BLOBS of them: materialize-files.ts).
   */
  writerThread?: boolean;
}

export interface MaterializeResult {
  filesDownloaded: number;
  bytesDownloaded: number;
  filesDeleted: number;
  filesWritten: number;
}

export async function materialize(input: MaterializeInput): Promise<MaterializeResult> {
  const { root, cache } = input;
  const fsync = input.fsync ?? DEFAULTS.syncFsyncFiles;
  const plan = planMaterialize(input.current, input.target);
  const { tgt, targetFolders, removals, writes, chmods } = plan;

  // Pre-flight: nothing is written unless every write can land safely.
  const replacedFolders = await checkBeforeWriting(root, plan);
  const inReplaced = (p: string) =>
    replacedFolders.size > 0 && parentsOf(p).some((q) => replacedFolders.has(q));

  const removal = new LocalRemovals(root, tgt, cache);
  // Removals that make room for writes go first; the rest after the writes,
  // so a renamed file can still be copied from its old place.
  const makesRoom = (p: string) => tgt.has(p) || targetFolders.has(p) || inReplaced(p);
  const structural = deepestFirst([...removals].filter(makesRoom));
  const later = deepestFirst([...removals].filter((p) => !makesRoom(p)));
  for (const p of structural) await removal.remove(p);
  await removal.removeReplaced(replacedFolders);

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

  /** Files written or chmod-ed, with the time just after (their ctime cannot be later unless someone else changed them). */
  const written = new WrittenLog(cache);
  const downloaded = await writeFiles({
    root,
    remote: input.remote,
    ref: input.ref,
    localByDigest: input.localByDigest,
    progress: input.progress,
    concurrency: input.concurrency,
    fsync,
    writerThread: input.writerThread,
    writes,
    deleted: removal.deleted,
    folders,
    touchedDirs,
    written,
  });

  for (const e of chmods) {
    folders.ensureParents(e.path);
    const abs = join(root, e.path);
    const st = await lstat(abs);
    if (st.isFile()) await chmod(abs, execMode(st.mode, e.kind === 'exec'));
    written.push({ entry: e, doneAt: Date.now() });
  }

  for (const p of later) await removal.remove(p);
  // Folders left empty by deletions go too, unless the target keeps them.
  await removal.removeEmptied((q) => targetFolders.has(q) || replacedFolders.has(q) || inReplaced(q));

  if (fsync) await syncFolders(touchedDirs);

  // Record the puller's own stat values, so the next push re-reads nothing.
  written.finish(root);

  return {
    filesDownloaded: downloaded.files,
    bytesDownloaded: downloaded.bytes,
    filesDeleted: removal.filesDeleted,
    filesWritten: written.length,
  };
}
