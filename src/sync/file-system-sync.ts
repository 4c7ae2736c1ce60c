// Many new files made durable at once: syncfs(2) of every file system
// their folders are on (store/sync-filesystem.ts), instead of an fsync per
// file — pull's small files (small-file-writer.ts) and the folders that
// received them (materialize.ts). A folder inside the pull may be another
// file system's mount point, so each device is flushed once.

import { statSync } from 'node:fs';
import { fsyncDir } from '../store/fs-atomic.ts';
import { syncFileSystem } from '../store/sync-filesystem.ts';

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
