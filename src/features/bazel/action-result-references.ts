// What an action cache entry keeps alive through gc: the blobs its
// ActionResult names (output files, stdout, stderr, output-directory roots
// and Trees, and every file a Tree lists) — the same set the action cache's
// integrity check requires on a hit (action-cache.ts). Those CAS blobs have
// no ref of their own; without this, `hoard gc` and the disk bound's
// eviction treat them as garbage and every action cache entry turns into a
// miss (see server/entry-references.ts).

import type { Digest } from '../../core/digest.ts';
import type { EntryReferences } from '../../server/entry-references.ts';
import { FORMAT_ACTION_RESULT, MAX_ACTION_RESULT_BYTES, MAX_TREE_BYTES } from './action-cache.ts';
import { decodeActionResult, treeFileDigests } from './action-result.ts';

export const actionResultReferences: EntryReferences = {
  format: FORMAT_ACTION_RESULT,
  maxContentBytes: MAX_ACTION_RESULT_BYTES,
  async references(content, read) {
    const refs = decodeActionResult(content);
    const out: Digest[] = [...refs.blobs, ...refs.trees];
    for (const tree of refs.trees) {
      // A Tree larger than the hit check reads makes the entry a miss: its files need not be kept.
      const bytes = await read(tree, MAX_TREE_BYTES);
      if (!bytes) continue;
      try {
        out.push(...treeFileDigests(bytes));
      } catch {
        // Not a Tree: the hit check fails the same way, nothing more to keep.
      }
    }
    return out;
  },
};
