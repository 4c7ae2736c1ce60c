// Pieces push and pull share: the conflict error, the merge base, the
// directory check, cancellation.

import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, SyncConflictError, toHoardError } from '../core/errors.ts';
import { abortedError } from '../core/retry.ts';
import type { Tree } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { withLockFile } from '../store/lock-file.ts';
import type { RefValue } from '../store/ref-store.ts';
import { STATE_DIR } from './ignore-rules.ts';
import type { SyncState } from './sync-state.ts';
import { loadLocalTree } from './sync-state.ts';
import { EMPTY_TREE, fetchTreeOrUndefined } from './transfer.ts';

const SHOWN_CONFLICTS = 20;

export function conflictError(ref: string, paths: readonly string[], op: 'push' | 'pull'): SyncConflictError {
  const shown = paths.slice(0, SHOWN_CONFLICTS).join(', ');
  const more = paths.length > SHOWN_CONFLICTS ? ` and ${paths.length - SHOWN_CONFLICTS} more` : '';
  return new SyncConflictError(
    ref,
    paths,
    `conflict on ${ref}: ${paths.length} path(s) changed both here and on the remote: ${shown}${more}`,
    {
      hint:
        op === 'push'
          ? 'nothing was written; reconcile these paths (or pass --force to overwrite the remote versions)'
          : 'nothing was written; reconcile these paths (or pass --force to take the remote versions)',
    },
  );
}

const SHOWN_MISSING = 10;
const SHOWN_PATHS = 5;

/** A blob the remote lacks and the tree paths that need it (sorted). */
export interface MissingBlob {
  digest: Digest;
  paths: string[];
}

/**
 * The error for blobs a tree needs that the remote does not have (lost,
 * deleted, quarantined): it names the paths and the fix, re-pushing with
 * --verify from a folder that still holds them.
 */
export function missingBlobsError(
  ref: string,
  remoteUrl: string,
  missing: readonly MissingBlob[],
  op: 'push' | 'pull',
): HoardError {
  const sorted = [...missing].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  const shown = sorted
    .slice(0, SHOWN_MISSING)
    .map((m) => {
      const more = m.paths.length > SHOWN_PATHS ? `, and ${m.paths.length - SHOWN_PATHS} more` : '';
      return `${m.digest} (needed by ${m.paths.slice(0, SHOWN_PATHS).join(', ')}${more})`;
    })
    .join('; ');
  const more = sorted.length > SHOWN_MISSING ? `; and ${sorted.length - SHOWN_MISSING} more blob(s)` : '';
  const fix = `hoard push <dir> ${remoteUrl} --ref ${ref} --verify`;
  return new HoardError(
    'HOARD_EBLOB_NOT_FOUND',
    `${ref} on ${remoteUrl} needs ${sorted.length} blob(s) the remote does not have: ${shown}${more}`,
    {
      hint:
        op === 'pull'
          ? `the remote lost them; re-push from a machine that has them: ${fix}, then pull again`
          : `nothing was committed; this folder does not hold them either: push --verify from a machine that has them (${fix}), or push without --verify`,
      details: { ref, missing: sorted },
    },
  );
}

export async function readRef(remote: Remote, ref: string): Promise<RefValue | undefined> {
  try {
    return await remote.refs.get(ref);
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `reading ref ${ref} from ${remote.url}`);
  }
}

/**
 * The tree local changes are measured against: the directory as of its last
 * sync. `known` is a tree already read (usually the remote's, which is the
 * base after most syncs), so it is not read and decoded a second time.
 */
export async function loadBase(
  remote: Remote,
  root: string,
  state: SyncState | undefined,
  known?: { digest: Digest; tree: Tree },
): Promise<Tree> {
  if (!state) return EMPTY_TREE;
  if (known?.digest === state.base) return known.tree;
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

/**
 * Runs `fn` holding `<dir>/.hoard/lock`, so two hoard processes never sync
 * the same directory at once. A lock whose process is gone (same host, dead
 * pid) is taken over; a live one is waited for up to refLockTimeoutMs.
 */
export async function withDirLock<T>(root: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(root, STATE_DIR);
  await mkdir(dir, { recursive: true });
  const lock = join(dir, 'lock');
  return withLockFile(lock, fn, {
    timeoutMs: DEFAULTS.refLockTimeoutMs,
    onTimeout: (owner) =>
      new HoardError('HOARD_ELOCK_TIMEOUT', `another hoard process (${owner}) is syncing ${root}`, {
        hint: `wait for it to finish; if none is running, remove ${lock}`,
      }),
  });
}

/**
 * Runs a sync operation that `signal` may cancel: whatever an abort made
 * fail (a destroyed stream, a refused remote call, the AbortError of a
 * check) is reported as one HOARD_EABORTED, so callers test one code.
 */
export async function cancellable<T>(
  what: string,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw abortedError(what, signal);
  try {
    return await fn();
  } catch (err) {
    if (signal?.aborted) throw abortedError(what, signal);
    throw err;
  }
}
