// The files of a batch of small blobs (fs-blob-batch.ts) before they are
// blobs: temp files in the store's tmp/ written with synchronous calls (a
// page-cached small write costs microseconds), closed with the deferred write
// error checked, and removed quietly on failure (the first error is the one
// reported; a temp left behind is swept at the next open). Also the paths the
// batch builds by concatenation, and whether a blob's file is there.

import { closeSync, mkdirSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join, normalize } from 'node:path';
import type { Digest } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import { isErrno } from './fs-atomic.ts';

/**
 * A folder's path as `path.join` gives it (normalized, no trailing
 * separator), so a name is appended with one concatenation: the batch makes
 * three to five paths per blob, and `join` (which normalizes every time) was
 * ~3% of a 50,000-file first push's CPU.
 */
export function folderPrefix(dir: string): string {
  return join(normalize(dir), '.');
}

/** A new temp file holding `bytes`, still open; on failure nothing is left behind. */
export function writeTemp(tmp: string, tmpDir: string, bytes: Uint8Array, digest: Digest): number {
  let fd: number;
  try {
    fd = openTemp(tmp, tmpDir);
  } catch (err) {
    throw noSpaceOr(err, `blob ${digest}`);
  }
  try {
    for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
  } catch (err) {
    closeQuietly(fd);
    unlinkQuietly(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
  return fd;
}

/** A new temp file holding `bytes`, written and closed (no fsync); on failure nothing is left behind. */
export function writeClosedTemp(tmp: string, tmpDir: string, bytes: Uint8Array, digest: Digest): void {
  const fd = writeTemp(tmp, tmpDir, bytes, digest);
  try {
    // close can report a deferred write error (NFS): the data is not known to be there.
    closeSync(fd);
  } catch (err) {
    unlinkQuietly(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
}

/** Creates the temp file, and tmp/ with it when a store opened read-only never made it. */
function openTemp(tmp: string, tmpDir: string): number {
  try {
    return openSync(tmp, 'wx');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    mkdirSync(tmpDir, { recursive: true });
    return openSync(tmp, 'wx');
  }
}

/** Whether a blob file is there; a shard that is not a folder counts as absent (its publish fails, at flush). */
export function blobFileExists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    if (isErrno(err, 'ENOTDIR')) return false;
    throw err;
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing: the first error is the one reported
  }
}

export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or the next open's stale-temp sweep removes it
  }
}
