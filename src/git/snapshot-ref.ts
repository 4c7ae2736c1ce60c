// The ref naming a commit's snapshot blob, `git-snapshots/<repo-key>/<commit>`,
// and its publication: create-if-absent, so when two servers race on one
// commit the first writer wins and the loser adopts its digest (through a
// shared bucket every server serves the same bytes for a commit). A ref is
// never trusted on its own (snapshot-trust-records.ts).

import { type Digest, hexOf, sha256 } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import { validateRefName } from '../core/ref-name.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { RefStore } from '../store/ref-store.ts';

/** The ref holding a commit's snapshot digest. */
export function snapshotRefName(key: string, commit: string): string {
  // Repo keys may hold `~`, which ref names do not allow; `=` never occurs in keys.
  const enc = key.replace(/[~]/g, (c) => `=${c.charCodeAt(0).toString(16)}`);
  const name = `git-snapshots/${enc}/${commit}`;
  try {
    return validateRefName(name);
  } catch {
    const h = hexOf(sha256(key));
    return `git-snapshots/=${h}/${commit}`;
  }
}

/**
 * Writes the commit → digest ref create-if-absent. Returns 'created' (or
 * replaced a ref whose blob is gone), 'same' (the ref already named these
 * bytes: another server generated them, now verified), or 'foreign' (the ref
 * names other bytes whose blob exists: left as it is, never served by us).
 */
export async function publishSnapshotRef(
  refs: RefStore,
  blobs: BlobStore,
  refName: string,
  digest: Digest,
): Promise<'created' | 'same' | 'foreign'> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await refs.get(refName);
    try {
      if (!cur) await refs.set(refName, digest, null);
      else if (cur.target === digest) return 'same';
      else {
        if (await blobs.stat(cur.target)) return 'foreign';
        await refs.set(refName, digest, cur.version); // its blob is gone: replace
      }
      return 'created';
    } catch (err) {
      if (!isHoardError(err, 'HOARD_EREF_CONFLICT')) throw err;
      // Lost a race: look at what the winner wrote on the next round.
    }
  }
  throw new HoardError('HOARD_EREF_CONFLICT', `could not publish snapshot ref ${refName}`);
}
