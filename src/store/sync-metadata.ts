// Synchronous reads of tiny, hot metadata on a local disk: a ref file
// (~100 bytes) and whether a blob's file exists. The server's hot path does
// one or two of these per cache hit. Through the thread pool each costs two
// thread hand-offs and a promise (measured here: ~40 µs for an async
// readFile vs ~2-3 µs for open+read+close done synchronously, ~9 µs vs ~1 µs
// for a stat, with 64 requests in flight); a page-cached read blocks the
// event loop for microseconds. The trade: a cold read on a slow disk blocks
// the loop for one small read, so this is only for the server's own data
// directory (a local disk by its documentation), never for a file:// remote
// that may be a network mount (there the async calls overlap).

import { closeSync, fstatSync, openSync, readSync, type Stats, statSync } from 'node:fs';
import { HoardError } from '../core/errors.ts';
import { isErrno } from './fs-atomic.ts';

/**
 * The bytes of a small file, or undefined when there is none (or `path` is a
 * directory). A file larger than `maxBytes` is an error: metadata that big is
 * not ours, and reading it whole would be unbounded.
 */
export function readSmallFileSync(path: string, maxBytes: number): Buffer | undefined {
  // A stat first, because a miss is common (a cache key never stored) and a
  // failed openSync builds an exception (~8 µs, against ~1 µs for the stat).
  const st = statSyncIfExists(path);
  if (!st || st.isDirectory()) return undefined;
  return readStatedFileSync(path, st, maxBytes);
}

/** readSmallFileSync for a file the caller has just stat'ed (`st`, not a directory). */
export function readStatedFileSync(path: string, st: Stats, maxBytes: number): Buffer | undefined {
  if (st.size > maxBytes)
    throw new HoardError('HOARD_EREMOTE', `${path} is larger than ${maxBytes} bytes: not a hoard file`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    // Deleted (or replaced by a directory) since the stat.
    if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
    throw err;
  }
  try {
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.byteLength - n, n);
      if (got === 0) break;
      n += got;
      if (n > maxBytes)
        throw new HoardError('HOARD_EREMOTE', `${path} is larger than ${maxBytes} bytes: not a hoard file`);
    }
    return buf.subarray(0, n);
  } catch (err) {
    if (isErrno(err, 'EISDIR')) return undefined;
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** The file's stats, or undefined when it does not exist. */
export function statSyncIfExists(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    if (isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

/**
 * A blob file's bytes when it holds at most `max` bytes (one read of its
 * fstat size), with the stats of the descriptor read (the file's identity
 * for a trust check); 'large' past `max`, 'absent' when there is no file.
 * Shorter than its stats when the file was truncated under the read: the
 * caller's digest check (or its size check) says what that means.
 */
export function readSmallBlobSync(
  path: string,
  max: number,
): { bytes: Buffer; stats: Stats } | 'large' | 'absent' {
  const fd = openBlobSync(path);
  if (fd === 'absent') return 'absent';
  try {
    const stats = fstatSync(fd);
    const { size } = stats;
    if (size > max) return 'large';
    const buf = Buffer.allocUnsafe(size);
    const n = readUpTo(fd, buf, size);
    return { bytes: n === size ? buf : buf.subarray(0, n), stats };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads at most `limit` bytes of a blob file into `buf` (from its start)
 * with synchronous calls: open, read until `limit` or the end, close — no
 * fstat, the caller knows the size it wants and reads one byte past it to
 * see a longer file. The count read, or 'absent' when there is no file.
 */
export function readBlobIntoSync(path: string, buf: Buffer, limit: number): number | 'absent' {
  const fd = openBlobSync(path);
  if (fd === 'absent') return 'absent';
  try {
    return readUpTo(fd, buf, limit);
  } finally {
    closeSync(fd);
  }
}

/** A descriptor reading a blob file, or 'absent'. */
function openBlobSync(path: string): number | 'absent' {
  try {
    return openSync(path, 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return 'absent';
    throw err;
  }
}

/** Reads from the start until `limit` bytes or the end; the count read. */
function readUpTo(fd: number, buf: Buffer, limit: number): number {
  let n = 0;
  while (n < limit) {
    const got = readSync(fd, buf, n, limit - n, n);
    if (got === 0) break;
    n += got;
  }
  return n;
}
