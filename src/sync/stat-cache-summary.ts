// The unchanged-scan summary of a stat cache: what makes a no-op scan cheap
// (scan.ts, unchanged-scan.ts). The scan that saved the cache records the digest of the tree
// it produced, and the digest of that tree's entries that are not files
// (empty folders, symlinks). Its file entries are exactly the cache's
// entries (path, executable bit, size, digest). So a later scan that finds
// every one of its files trusted by the cache with the same executable bit,
// no other file, and the same other entries produces that same tree,
// without building or encoding it. Any change to the entries drops the
// summary until a scan records a new one (StatCache).
//
// matchesAll compares in one pass over the loaded file and the scan's
// lstat figures, in place: no string, object or call per file.

import { constants } from 'node:fs';
import type { Digest } from '../core/digest.ts';
import { LSTAT_FIELDS } from './scan-lstat.ts';
import { EXEC, FIRST_ENTRY, FIXED, i64At, pathIs, u64At } from './stat-cache-format.ts';
import { SAME_TIME_MS } from './stat-key.ts';

const { S_IFMT, S_IFREG } = constants;

/**
 * What the scan that last saved the cache produced: the digest of its tree,
 * and the digest of that tree's entries that are not files
 * (otherEntriesDigest in unchanged-scan.ts).
 */
export interface ScanSummary {
  tree: Digest;
  others: Digest;
}

/**
 * Whether the regular files among `paths` (their lstat figures in
 * `values`, scan-lstat.ts's layout; symlinks, other types and gone paths
 * are skipped) are exactly the `count` entries of the checked file `b`, in
 * its order, each trusted (not racy) for this very stat and with this
 * executable bit. Times compare as lookupStats's do; an inode beyond 2^53
 * is never matched here.
 */
export function matchesAll(
  b: Buffer,
  count: number,
  paths: readonly string[],
  values: Float64Array,
): boolean {
  let pos = FIRST_ENTRY;
  let k = 0;
  for (let i = 0, o = 0; i < paths.length; i++, o += LSTAT_FIELDS) {
    const mode = values[o];
    if (mode < 0 || (mode & S_IFMT) !== S_IFREG) continue;
    if (k === count) return false;
    const len = b[pos] | (b[pos + 1] << 8);
    const off = pos + 2 + len;
    if (!pathIs(b, pos + 2, len, paths[i])) return false;
    if (b[off] !== ((mode & 0o100) !== 0 ? EXEC : 0)) return false;
    const ino = values[o + 2];
    if (!Number.isSafeInteger(ino) || u64At(b, off + 25) !== ino || u64At(b, off + 1) !== values[o + 1])
      return false;
    if (Math.abs(i64At(b, off + 9) / 1e6 - values[o + 3]) >= SAME_TIME_MS) return false;
    if (Math.abs(i64At(b, off + 17) / 1e6 - values[o + 4]) >= SAME_TIME_MS) return false;
    pos = off + FIXED;
    k++;
  }
  return k === count;
}

/** A function reading the digests of the `count` entries of the checked file `b`, in file order. */
export function digestsReader(b: Buffer, count: number): () => Digest[] {
  return () => {
    const out: Digest[] = new Array(count);
    let pos = FIRST_ENTRY;
    for (let k = 0; k < count; k++) {
      const off = pos + 2 + (b[pos] | (b[pos + 1] << 8));
      out[k] = `sha256:${b.toString('hex', off + 33, off + 65)}`;
      pos = off + FIXED;
    }
    return out;
  };
}
