// fsync of many files by path, a bounded number at a time in the thread
// pool: a journal checkpoint's and replay's blob files (blob-journal.ts,
// blob-journal-replay.ts) and a batch's temps when syncfs cannot run
// (fs-blob-batch.ts).

import { closeSync, fsync, openSync } from 'node:fs';
import { promisify } from 'node:util';
import { isErrno } from './fs-atomic.ts';

const fsyncFd = promisify(fsync);

/**
 * fsync each file, `limit` at a time in the thread pool. `skipGone`: a file
 * gone since (deleted, quarantined) is skipped; otherwise its absence fails.
 */
export async function fsyncFiles(paths: readonly string[], limit: number, skipGone: boolean): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++];
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch (err) {
        if (skipGone && isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      try {
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, paths.length)) }, worker));
}
