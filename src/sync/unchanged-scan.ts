// A scan that finds the folder as the stat cache's summary describes it
// (stat-cache-summary.ts): every file trusted with the same kind, no file
// more or less, the same folders and symlinks. That scan's tree is this
// one: its digest is known, and the tree is built and encoded only if
// someone asks for it (a no-op push asks only the digest and the totals).

import { constants } from 'node:fs';
import { type Digest, Hasher } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { encodeEntry, type Tree, type TreeEntry, treeDigestOfWalk } from '../core/tree.ts';
import type { EntryCompare } from './scan-entry-order.ts';
import { LSTAT_FIELDS } from './scan-lstat.ts';
import { type ScanResult, withLocalPaths } from './scan-result.ts';

const { S_IFMT, S_IFREG } = constants;

/**
 * The digest of a scan's entries that are not files (empty folders,
 * symlinks with their targets), in canonical order: with the stat cache's
 * entries, all a tree is made of.
 */
export function otherEntriesDigest(others: readonly TreeEntry[], compare: EntryCompare): Digest {
  const h = new Hasher();
  for (const e of [...others].sort(compare)) h.update(Buffer.from(`${encodeEntry(e)}\n`, 'utf8'));
  return h.digest();
}

/**
 * The result of a scan that found the folder as the stat cache's summary
 * describes it: the digest is the summary's; the tree (and its bytes) is
 * made on first use from the files' lstats and the cache's digests, and
 * checked against that digest.
 */
export function unchangedScan(
  files: readonly string[],
  values: Float64Array,
  others: readonly TreeEntry[],
  compare: EntryCompare,
  digest: Digest,
  digests: () => Digest[],
  staleTemps: string[],
): ScanResult {
  let filesTotal = 0;
  let bytesTotal = 0;
  for (let o = 0; o < values.length; o += LSTAT_FIELDS) {
    if (values[o] < 0 || (values[o] & S_IFMT) !== S_IFREG) continue;
    filesTotal++;
    bytesTotal += values[o + 1];
  }
  let made: { tree: Tree; bytes: Buffer } | undefined;
  const make = () => {
    if (made !== undefined) return made;
    const d = digests();
    const entries: TreeEntry[] = others.slice();
    for (let i = 0, o = 0, k = 0; i < files.length; i++, o += LSTAT_FIELDS) {
      const mode = values[o];
      if (mode < 0 || (mode & S_IFMT) !== S_IFREG) continue;
      entries.push({
        path: files[i],
        kind: (mode & 0o100) !== 0 ? 'exec' : 'file',
        size: values[o + 1],
        digest: d[k++],
      });
    }
    entries.sort(compare);
    const encoded = treeDigestOfWalk(entries);
    if (encoded.digest !== digest)
      throw new HoardError(
        'HOARD_EINTERNAL',
        `unchanged scan made tree ${encoded.digest}, expected ${digest}`,
      );
    made = { tree: { entries }, bytes: encoded.bytes };
    return made;
  };
  const r = {
    digest,
    totals: { files: filesTotal, bytes: bytesTotal },
    staleTemps,
    filesHashed: 0,
    bytesHashed: 0,
    changing: [],
  } as unknown as Omit<ScanResult, 'localByDigest'>;
  Object.defineProperty(r, 'tree', { enumerable: true, get: () => make().tree });
  Object.defineProperty(r, 'bytes', { enumerable: true, get: () => make().bytes });
  return withLocalPaths(r);
}
