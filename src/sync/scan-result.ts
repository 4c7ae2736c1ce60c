// What a scan returns, and the one part of it made lazily by every scan:
// the local path of each file digest.

import type { Digest } from '../core/digest.ts';
import type { Tree } from '../core/tree.ts';

export interface ScanResult {
  tree: Tree;
  digest: Digest;
  bytes: Buffer;
  /** Files (regular and executable) and their bytes: the tree's totals, without walking it. */
  totals: { files: number; bytes: number };
  /** One local path holding each file digest (to upload from, or to copy instead of downloading). */
  localByDigest: Map<Digest, string>;
  /** Absolute paths of temp files left by pull processes that are gone. */
  staleTemps: string[];
  filesHashed: number;
  bytesHashed: number;
  /** With skipChanging: files left out because they kept changing while being read. */
  changing: string[];
}

/**
 * The result with `localByDigest` made on first use: a no-op push and a push
 * whose blobs the scan already stored never ask it, and at 50,000 files the
 * map is one more copy of every digest held until the process ends.
 */
export function withLocalPaths(r: Omit<ScanResult, 'localByDigest'>): ScanResult {
  let map: Map<Digest, string> | undefined;
  return Object.defineProperty(r as ScanResult, 'localByDigest', {
    enumerable: true,
    get: () => {
      if (map === undefined) {
        map = new Map();
        for (const e of r.tree.entries)
          if ((e.kind === 'file' || e.kind === 'exec') && !map.has(e.digest)) map.set(e.digest, e.path);
      }
      return map;
    },
  });
}
