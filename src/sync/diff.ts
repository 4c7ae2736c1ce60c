// `hoard diff`: what changed between two versions of a ref, or between a
// directory and the version it last synced with. Reads snapshot records and
// trees (verified) or, for a directory, one stat walk against its stat cache
// (only changed files are hashed) and the tree kept from its last sync.
// Writes nothing, takes no lock: a diff never disturbs a running sync.

import { resolve } from 'node:path';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import type { Tree } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { requireDirectory } from './common.ts';
import { readTree, resolveVersion } from './history.ts';
import { scanDirectory } from './scan.ts';
import type { ScanResult } from './scan-result.ts';
import { StatCache } from './stat-cache.ts';
import { listStates, loadLocalTree, loadState, type SyncState } from './sync-state.ts';
import { EMPTY_TREE } from './transfer.ts';
import { diffTrees, type TreeDiff } from './tree-diff.ts';

export interface DiffResult extends TreeDiff {
  /** Snapshot digests compared (for a directory: `to` is absent, the directory is). */
  from: Digest | null;
  to: Digest | null;
  ref: string;
}

export interface DiffVersionsOptions {
  remote: Remote;
  ref: string;
  /** A version (see resolveVersion); absent: the first parent of `to`. */
  from?: string;
  /** A version; absent: the ref's current version. */
  to?: string;
}

export async function diffVersions(opts: DiffVersionsOptions): Promise<DiffResult> {
  const { remote, ref } = opts;
  const to = await resolveVersion(remote, ref, opts.to);
  let fromDigest: Digest | null = null;
  let fromTree: Tree = EMPTY_TREE;
  if (opts.from !== undefined) {
    const from = await resolveVersion(remote, ref, opts.from);
    fromDigest = from.snapshot;
    fromTree = await readTree(remote, from.record.tree);
  } else if (to.record.parents[0] !== undefined) {
    const from = await resolveVersion(remote, ref, to.record.parents[0]);
    fromDigest = from.snapshot;
    fromTree = await readTree(remote, from.record.tree);
  }
  const toTree = await readTree(remote, to.record.tree);
  return { ref, from: fromDigest, to: to.snapshot, ...diffTrees(fromTree, toTree) };
}

export interface LocalChanges {
  root: string;
  state: SyncState;
  scan: ScanResult;
  /** The directory's own tree at its last sync. */
  base: Tree;
  diff: TreeDiff;
}

/**
 * Scans `dir` and compares it with its tree at the last sync with `ref` on
 * `remote` (or, without them, with whatever it synced with last).
 */
export interface LocalChangesOptions {
  remote?: Remote;
  ref?: string;
  warn?: (m: string) => void;
  /** Stops the scan (see scanDirectory). */
  signal?: AbortSignal;
}

export async function localChanges(dir: string, opts: LocalChangesOptions = {}): Promise<LocalChanges> {
  const root = resolve(dir);
  await requireDirectory(root);
  let state: SyncState | undefined;
  if (opts.remote && opts.ref) state = await loadState(root, opts.remote.url, opts.ref);
  else {
    const all = await listStates(root);
    state = opts.ref ? all.find((s) => s.ref === opts.ref) : all[0];
  }
  if (!state)
    throw new HoardError(
      'HOARD_EUSAGE',
      `${root} has not been synced${opts.ref ? ` with ${opts.ref}` : ''} yet: nothing to compare with`,
      { hint: 'push or pull it first; `hoard diff <remote> --ref R` compares remote versions' },
    );
  let base = await loadLocalTree(root, state.base);
  if (!base && opts.remote) base = await readTree(opts.remote, state.base);
  if (!base)
    throw new HoardError('HOARD_EUSAGE', `the tree ${root} had at its last sync is no longer kept`, {
      hint: 'pass the remote and --ref so it can be read from there',
    });
  const cache = await StatCache.load(root);
  const scan = await scanDirectory(root, cache, { warn: opts.warn, signal: opts.signal });
  return { root, state, scan, base, diff: diffTrees(base, scan.tree) };
}

export async function diffLocal(dir: string, opts: LocalChangesOptions = {}): Promise<DiffResult> {
  const c = await localChanges(dir, opts);
  return { ref: c.state.ref, from: c.state.snapshot, to: null, ...c.diff };
}
