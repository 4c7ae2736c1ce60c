// Reading a file for its digest so that the digest belongs to the stat
// recorded with it (the stat cache trusts that pair): a small file is read
// whole through one descriptor and an fstat after the read must equal the
// walk's lstat; a larger one is hashed as it streams, its stat taken
// before and after. A file that changes meanwhile is read again, a few
// times (hashChangingAttempts), then reported as changing.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { type LooseStat, type StatKey, sameLooseStat, sameStat, statKeyOf } from './stat-key.ts';

function keepsChanging(rel: string): HoardError {
  return new HoardError('HOARD_EFILE_CHANGING', `${rel} keeps changing while being read`, {
    hint: 'stop whatever is writing to it and sync again, or push with --skip-changing to leave it out',
    details: { path: rel },
  });
}

/**
 * Reads a small file whole into `buf` through one descriptor: the walk's
 * lstat is the "before" stat and an fstat after the read must equal it, so
 * the bytes belong to the stat recorded with them (a file replaced, grown or
 * rewritten in between is read again, a few times). 'large' when the file no
 * longer fits `buf`; 'gone' when it was deleted.
 */
export function readSmallFile(
  abs: string,
  rel: string,
  seen: LooseStat,
  buf: Buffer,
): { key: StatKey } | 'large' | 'gone' {
  /** The exact stat a previous attempt ended with (the first compares with the walk's lstat). */
  let before: StatKey | undefined;
  let size = seen.size;
  for (let attempt = 0; attempt < DEFAULTS.hashChangingAttempts; attempt++) {
    let fd: number;
    try {
      fd = openSync(abs, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 'gone';
      throw err;
    }
    try {
      let n = 0;
      for (;;) {
        const got = readSync(fd, buf, n, buf.byteLength - n, n);
        if (got === 0) break;
        n += got;
        // The common case ends here without a read that returns 0: the size
        // is known, and a file that changed after the read fails the check below.
        if (n === size || n === buf.byteLength) break;
      }
      if (n === buf.byteLength) return 'large';
      const after = statKeyOf(fstatSync(fd, { bigint: true }));
      const same = before === undefined ? sameLooseStat(seen, after) : sameStat(before, after);
      if (same && n === after.size) return { key: after };
      before = after;
      size = after.size;
      if (after.size >= buf.byteLength) return 'large';
    } finally {
      closeSync(fd);
    }
  }
  throw keepsChanging(rel);
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
  throw keepsChanging(rel);
}
