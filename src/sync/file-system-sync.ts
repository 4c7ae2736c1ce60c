// Many new files made durable at once: syncfs(2) of the file system they
// are on, instead of an fsync per file.
//
// Why: a pull of 50,000 small files spent two thirds of its wall time in
// per-file fsyncs (each one writes the file, its inode and — on ext4 —
// its new directory entry, then flushes the device cache: a device round
// trip per file, four at a time in Node's thread pool), while writing the
// same files without any fsync took 6 s against 17 s. One syncfs after a
// group of files is written flushes all of them in one pass (measured:
// 0.6 s for 50,000 files of 4 KiB). The rule does not change: a file is
// renamed into place only after a call that made it durable returned
// success (small-file-writer.ts), and the folders are flushed before the
// pull reports success.
//
// Node has no binding for syncfs, so it runs as `sync -f <path>` (GNU
// coreutils since 8.24, busybox), from fixed system paths (never a PATH
// lookup), without a shell. syncfs reports a writeback error of the file
// system that nobody has seen yet (errseq), so an I/O error on one of our
// files fails the call; any failure — no such program, an old one without
// -f, an error — answers false and the caller fsyncs each file instead
// (which reports its own file's error), and this process stops trying.
// Not Linux: false (the caller fsyncs each file).

import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fsyncDir } from '../store/fs-atomic.ts';

const SYNC_PROGRAMS = ['/usr/bin/sync', '/bin/sync'];

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
    // `path` is absolute (never read as an option); no `--`, which busybox may not take.
    execFile(bin, ['-f', path], { shell: false, windowsHide: true }, (err) => {
      if (err) program = null;
      resolve(!err);
    });
  });
}

/**
 * syncFileSystem for every file system the folders `paths` are on (a
 * folder inside the pull may be another file system's mount point: a flush
 * of the root's would not cover it). True once each is done.
 */
export async function syncFileSystemsOf(paths: Iterable<string>): Promise<boolean> {
  const byDevice = new Map<number, string>();
  let last: string | undefined;
  for (const p of paths) {
    if (p === last) continue; // files arrive folder by folder
    last = p;
    const { dev } = statSync(p);
    if (!byDevice.has(dev)) byDevice.set(dev, p);
  }
  for (const p of byDevice.values()) if (!(await syncFileSystem(p))) return false;
  return true;
}

/** Forgets what was found (tests). */
export function resetSyncFileSystem(value?: string | null): void {
  program = value;
}

/** Below this many folders, an fsync of each costs less than flushing the whole file system. */
const SYNCFS_MIN_FOLDERS = 16;

/**
 * Makes the entries of `folders` (absolute paths) durable: one syncfs (per
 * file system) for many — a fresh pull touches a folder per ~100 files —
 * else an fsync of each.
 */
export async function syncFolders(folders: ReadonlySet<string>): Promise<void> {
  if (folders.size >= SYNCFS_MIN_FOLDERS && (await syncFileSystemsOf(folders))) return;
  for (const d of folders) await fsyncDir(d);
}
