// A push's tree against the remote's: the tree to write (the scan's, or the
// scan merged with the remote's head) and the blob digests the remote's
// tree already references (not uploaded again). Three cases: the ref is
// where this folder last synced and that sync left the folder equal to it
// (no merge needed), the ref moved (three-way merge with the last-synced
// base), or there is no ref (a first push).

import type { Digest } from '../core/digest.ts';
import { fileDigestsOfTreeBytes, type Tree, type TreeEntry, treeDigest } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import type { RefValue } from '../store/ref-store.ts';
import { loadBase } from './common.ts';
import { mergeTrees } from './merge.ts';
import type { ScanResult } from './scan-result.ts';
import { loadLocalTreeBytes, type SyncState } from './sync-state.ts';
import { fetchSnapshot, fetchTree } from './transfer.ts';

export interface PushMerge {
  /** The remote's tree (undefined: no ref). */
  theirsDigest: Digest | undefined;
  /** Blob digests the remote's current tree references (uploaded already). */
  known: ReadonlySet<Digest>;
  merged: { entries: TreeEntry[]; conflicts: string[] };
  mergedDigest: Digest;
  mergedBytes: Buffer;
}

/** The blob digests a tree references. */
function digestsOf(tree: Tree): Set<Digest> {
  const out = new Set<Digest>();
  for (const e of tree.entries) if (e.kind === 'file' || e.kind === 'exec') out.add(e.digest);
  return out;
}

/**
 * The blob digests of the tree `digest` names: from its bytes kept in this
 * folder (checked against the digest, read without decoding), else the tree
 * fetched and decoded as usual.
 */
async function knownDigests(remote: Remote, root: string, digest: Digest): Promise<Set<Digest>> {
  const bytes = await loadLocalTreeBytes(root, digest);
  if (bytes !== undefined) return fileDigestsOfTreeBytes(bytes);
  return digestsOf(await fetchTree(remote, root, digest));
}

/** The tree this push writes given the ref's current value `cur`; conflicts are the caller's to judge. */
export async function mergeWithRemote(
  remote: Remote,
  root: string,
  cur: RefValue | undefined,
  state: SyncState | undefined,
  scan: ScanResult,
  force: boolean | undefined,
): Promise<PushMerge> {
  if (cur && state && cur.target === state.snapshot && state.base === state.tree) {
    // The ref is where this folder last synced and that sync left the
    // folder equal to it: base and theirs are one tree, so the three-way
    // merge takes ours for every path (no conflict is possible) and the
    // result is the scan's tree, already encoded. Only the digests the
    // remote's tree references are needed (what not to upload), read from
    // its kept bytes without decoding 50,000 entries into objects.
    return {
      theirsDigest: state.tree,
      known: await knownDigests(remote, root, state.tree),
      merged: { entries: scan.tree.entries, conflicts: [] },
      mergedDigest: scan.digest,
      mergedBytes: scan.bytes,
    };
  }
  if (cur) {
    const theirsDigest =
      state && cur.target === state.snapshot ? state.tree : (await fetchSnapshot(remote, cur.target)).tree;
    const theirs = await fetchTree(remote, root, theirsDigest);
    const base = await loadBase(remote, root, state, { digest: theirsDigest, tree: theirs });
    const merged = mergeTrees(base, scan.tree, theirs, force ? 'ours' : undefined);
    const known = digestsOf(theirs);
    const { digest, bytes } = treeDigest(merged.entries);
    return { theirsDigest, known, merged, mergedDigest: digest, mergedBytes: bytes };
  }
  // No ref (a first push, or the ref was removed): nothing to merge with,
  // the tree is the scan's, already encoded — not merged and encoded again.
  return {
    theirsDigest: undefined,
    known: new Set(),
    merged: { entries: scan.tree.entries, conflicts: [] },
    mergedDigest: scan.digest,
    mergedBytes: scan.bytes,
  };
}
