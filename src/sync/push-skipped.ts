// --skip-changing: a push without the files that kept changing while they
// were hashed or uploaded. Each is taken back to its state at the last sync
// (the remote keeps its version; a file new since then is simply absent),
// and none is a local copy to upload from: the remote has its last-synced
// blob from that sync.

import type { Digest } from '../core/digest.ts';
import { type Tree, type TreeEntry, treeDigest } from '../core/tree.ts';
import { comparePathBytes } from '../core/tree-path.ts';
import type { ScanResult } from './scan-result.ts';
import { treeTotals } from './tree-diff.ts';

/** The scan with the files in `skipped` at their last-synced entries in `base`. */
export function withoutSkipped(scan: ScanResult, base: Tree, skipped: ReadonlySet<string>): ScanResult {
  const old = new Map(base.entries.map((e) => [e.path, e]));
  const entries: TreeEntry[] = [];
  for (const e of scan.tree.entries) {
    if (!skipped.has(e.path)) entries.push(e);
    else {
      const b = old.get(e.path);
      if (b && b.kind !== 'dir') entries.push(b);
    }
  }
  // A file the scan could not hash (it kept changing) is absent from it: its last-synced entry, if any.
  const scanned = new Set(scan.tree.entries.map((e) => e.path));
  for (const p of skipped) {
    const b = old.get(p);
    if (b && b.kind !== 'dir' && !scanned.has(p)) entries.push(b);
  }
  entries.sort((a, b) => comparePathBytes(a.path, b.path));
  const { digest, bytes } = treeDigest(entries);
  const localByDigest = new Map<Digest, string>();
  for (const e of entries)
    if ((e.kind === 'file' || e.kind === 'exec') && !skipped.has(e.path) && !localByDigest.has(e.digest))
      localByDigest.set(e.digest, e.path);
  const { staleTemps, filesHashed, bytesHashed, changing } = scan;
  const tree = { entries };
  return {
    tree,
    digest,
    bytes,
    totals: treeTotals(tree),
    localByDigest,
    staleTemps,
    filesHashed,
    bytesHashed,
    changing,
  };
}
