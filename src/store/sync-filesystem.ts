// syncfs(2) for a folder's file system: every dirty page and inode of that
// file system written and the device cache flushed, in one call. Used where
// many new files must be durable before they are published: the CLI push's
// blob batches (fs-blob-batch.ts, "filesystem mode") and pull's small files
// (sync/small-file-writer.ts, sync/file-system-sync.ts).
//
// Why: made durable one fsync at a time, each small file costs a synchronous
// data write, an inode-block write and a device flush (on this project's
// machines ~0.8 ms of thread-pool time and ~0.2 ms of kernel CPU each: 7–14 s
// of a 50,000-file push or pull that takes 6 s without them, four at a time
// in Node's thread pool). One syncfs after a group of temp files is written
// settles the same durability with the writes merged (0.5–0.6 s for 50,000
// files of 4 KiB), before any of them is linked or renamed into place. The
// callers' rule does not change: a name is published only after a call that
// made its content durable returned success.
//
// Node has no syncfs binding and hoard loads no native add-on, so the call
// is `sync -f <path>` (GNU coreutils since 8.24, busybox), from fixed system
// paths (never a PATH lookup), without a shell, with an absolute path (never
// read as an option). Any failure — not Linux, no such program, an old one
// without -f, an error — answers false, the caller fsyncs each file instead
// (which reports its own file's error), and this process stops trying.
//
// Error reporting: syncfs reports a writeback error of the file system that
// no one has seen yet (errseq), so an I/O error on one of our files fails the
// call. An error that happened in background writeback *and* was already
// consumed by another process's syncfs before ours started is missed, where a
// per-file fsync would have reported it: a failing device seen by someone
// else first. Servers therefore keep per-file fsync
// (FsBlobStoreOptions.syncFilesystem is off by default). syncfs also flushes
// other processes' dirty data on that file system: under a heavy writer, a
// group waits for theirs too.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';

const SYNC_PROGRAMS = ['/usr/bin/sync', '/bin/sync'];
/** A syncfs that has not returned after this long is treated as failed (the caller falls back). */
const SYNCFS_TIMEOUT_MS = 10 * 60_000;

/** The program, once found; null once it failed or is absent here. */
let program: string | null | undefined;

/**
 * Flushes every dirty page and inode of the file system holding `path`
 * (syncfs). True once done; false when that is not possible here (the
 * caller then fsyncs each file itself).
 */
export function syncFileSystem(path: string): Promise<boolean> {
  if (!isAbsolute(path)) throw new Error(`syncFileSystem: ${path} is not an absolute path`);
  if (program === undefined)
    program = process.platform === 'linux' ? (SYNC_PROGRAMS.find((p) => existsSync(p)) ?? null) : null;
  const bin = program;
  if (bin === null) return Promise.resolve(false);
  return new Promise((resolve) => {
    // No `--`, which busybox may not take: the path is absolute.
    execFile(bin, ['-f', path], { shell: false, windowsHide: true, timeout: SYNCFS_TIMEOUT_MS }, (err) => {
      if (err) program = null;
      resolve(!err);
    });
  });
}

/** Forgets what was found, or sets the program to run (tests). */
export function resetSyncFileSystem(value?: string | null): void {
  program = value;
}

/** Runs a syncfs of the file system holding `path`; rejects when it failed or could not run. */
export type SyncFilesystem = (path: string) => Promise<void>;

/** syncFileSystem as a SyncFilesystem (FsBlobBatch's filesystem mode). */
export const syncFilesystem: SyncFilesystem = async (path) => {
  if (!(await syncFileSystem(path))) throw new Error(`syncfs of ${path} failed or is not available here`);
};
