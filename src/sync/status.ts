// `hoard status`: what a push or a pull would do, without doing it. One ref
// read and one stat walk (only files whose stat changed are hashed, against
// the stat cache); the tree of the last sync comes from `.hoard/trees/`.
// Takes no lock and writes nothing, so it never disturbs a running sync.

import { resolve } from 'node:path';
import type { Digest } from '../core/digest.ts';
import { validateRefName } from '../core/ref-name.ts';
import type { Remote } from '../remote/remote.ts';
import { readRef, requireDirectory } from './common.ts';
import { readTree } from './history.ts';
import { scanDirectory } from './scan.ts';
import { StatCache } from './stat-cache.ts';
import { loadLocalTree, loadState } from './sync-state.ts';
import { EMPTY_TREE } from './transfer.ts';
import { diffTrees, type TreeDiff } from './tree-diff.ts';

export interface StatusOptions {
  dir: string;
  remote: Remote;
  ref: string;
  warn?: (message: string) => void;
}

/**
 * - `up-to-date`: nothing to push or pull;
 * - `ahead`: local changes to push, the remote has not moved;
 * - `behind`: the remote has versions to pull, no local changes;
 * - `diverged`: both (a push merges, a pull merges; conflicts are found then);
 * - `unsynced`: this folder never synced with this remote and ref.
 */
export type SyncSummary = 'up-to-date' | 'ahead' | 'behind' | 'diverged' | 'unsynced';

export interface StatusResult {
  dir: string;
  remote: string;
  ref: string;
  summary: SyncSummary;
  /** The version this folder last synced with, or null. */
  synced: { snapshot: Digest; syncedAt: string } | null;
  /** The ref now, or null when it does not exist. */
  head: { snapshot: Digest; version: string } | null;
  wouldPush: boolean;
  wouldPull: boolean;
  /** The folder against its last sync (against nothing when never synced). */
  local: TreeDiff;
}

export async function status(opts: StatusOptions): Promise<StatusResult> {
  const { remote } = opts;
  const ref = validateRefName(opts.ref);
  const root = resolve(opts.dir);
  await requireDirectory(root);
  const state = await loadState(root, remote.url, ref);
  const cur = await readRef(remote, ref);
  let base = EMPTY_TREE;
  if (state) base = (await loadLocalTree(root, state.base)) ?? (await readTree(remote, state.base));
  const scan = await scanDirectory(root, await StatCache.load(root), { warn: opts.warn });
  const local = diffTrees(base, scan.tree);
  const changedHere = local.added.length + local.removed.length + local.changed.length > 0;
  // A push that merged someone else's changes leaves them to be pulled (base ≠ tree).
  const wouldPull =
    cur !== undefined && (!state || cur.target !== state.snapshot || state.base !== state.tree);
  const wouldPush = changedHere || (cur === undefined && scan.tree.entries.length > 0);
  const summary: SyncSummary = !state
    ? 'unsynced'
    : wouldPush && wouldPull
      ? 'diverged'
      : wouldPush
        ? 'ahead'
        : wouldPull
          ? 'behind'
          : 'up-to-date';
  return {
    dir: root,
    remote: remote.url,
    ref,
    summary,
    synced: state ? { snapshot: state.snapshot, syncedAt: state.syncedAt } : null,
    head: cur ? { snapshot: cur.target, version: cur.version } : null,
    wouldPush,
    wouldPull,
    local,
  };
}
