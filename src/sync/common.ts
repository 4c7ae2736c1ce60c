// Pieces push and pull share: the conflict error, the merge base, the
// directory check.

import { stat } from 'node:fs/promises';
import { HoardError } from '../core/errors.ts';
import type { Tree } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { isErrno } from '../store/fs-atomic.ts';
import type { SyncState } from './sync-state.ts';
import { loadLocalTree } from './sync-state.ts';
import { EMPTY_TREE, fetchTreeOrUndefined } from './transfer.ts';

const SHOWN_CONFLICTS = 20;

export function conflictError(ref: string, paths: readonly string[], op: 'push' | 'pull'): HoardError {
  const shown = paths.slice(0, SHOWN_CONFLICTS).join(', ');
  const more = paths.length > SHOWN_CONFLICTS ? ` and ${paths.length - SHOWN_CONFLICTS} more` : '';
  return new HoardError(
    'HOARD_ESYNC_CONFLICT',
    `conflict on ${ref}: ${paths.length} path(s) changed both here and on the remote: ${shown}${more}`,
    {
      hint:
        op === 'push'
          ? 'nothing was written; reconcile these paths (or pass --force to overwrite the remote versions)'
          : 'nothing was written; reconcile these paths (or pass --force to take the remote versions)',
      details: { ref, paths },
    },
  );
}

/** The tree local changes are measured against: the directory as of its last sync. */
export async function loadBase(remote: Remote, root: string, state: SyncState | undefined): Promise<Tree> {
  if (!state) return EMPTY_TREE;
  return (
    (await loadLocalTree(root, state.base)) ??
    (await fetchTreeOrUndefined(remote, root, state.base)) ??
    (await fetchTreeOrUndefined(remote, root, state.tree)) ??
    EMPTY_TREE
  );
}

export async function requireDirectory(root: string): Promise<void> {
  try {
    if ((await stat(root)).isDirectory()) return;
  } catch (err) {
    if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
  }
  throw new HoardError('HOARD_EUSAGE', `${root} is not a directory`);
}
