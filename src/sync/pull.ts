// pull: read the ref; when it is where this directory last synced and
// nothing changed locally, stop (one stat walk + one ref read). Otherwise
// fetch the snapshot's tree, merge it with un-pushed local edits (three-way:
// base = the directory as of its last sync), validate it, and write it with
// materialize(). State is recorded last, with the puller's own stat values,
// so an interrupted pull is simply completed by the next one. Blobs the
// remote lacks fail the pull naming the paths that need them, and flag the
// folder so its next push verifies every blob (see verify.ts).

import { mkdir, unlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Digest, isDigest } from '../core/digest.ts';
import { HoardError, isHoardError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName } from '../core/ref-name.ts';
import { type Tree, treeDigestOnly } from '../core/tree.ts';
import { abortableRemote } from '../remote/abortable-remote.ts';
import type { Remote } from '../remote/remote.ts';
import { cancellable, conflictError, loadBase, readRef, requireDirectory, withDirLock } from './common.ts';
import { resolveVersion } from './history.ts';
import { materialize } from './materialize.ts';
import { mergeTrees } from './merge.ts';
import { scanDirectory } from './scan.ts';
import { StatCache } from './stat-cache.ts';
import { loadState, markNeedsVerify, saveState } from './sync-state.ts';
import { fetchSnapshot, fetchTree, noProgress, type ProgressSink } from './transfer.ts';

export interface PullOptions {
  dir: string;
  remote: Remote;
  ref: string;
  /** On conflicts, the remote version wins instead of failing. */
  force?: boolean;
  /**
   * An older version to materialise instead of the ref's current one: a
   * snapshot digest, `<ref>~N` / `~N`, or an ISO time (see resolveVersion).
   */
  at?: string;
  /**
   * Make the folder equal the version: local edits are overwritten and local
   * files the version lacks are deleted (ignored files and `.hoard/` stay).
   */
  exact?: boolean;
  /** Parallel downloads (default transferConcurrency). */
  concurrency?: number;
  progress?: ProgressSink;
  warn?: (message: string) => void;
  /**
   * Cancels the pull: it rejects with HOARD_EABORTED. Files already written
   * are whole (each lands by rename); the next pull completes the rest.
   */
  signal?: AbortSignal;
}

export interface PullResult {
  ref: string;
  snapshot: Digest;
  tree: Digest;
  filesTotal: number;
  filesDownloaded: number;
  bytesDownloaded: number;
  filesDeleted: number;
  upToDate: boolean;
  durationMs: number;
  /** The --at version spec, when one was given (`snapshot` is what it named). */
  at?: string;
}

function countFiles(tree: Tree): number {
  return tree.entries.filter((e) => e.kind === 'file' || e.kind === 'exec').length;
}

export async function pull(opts: PullOptions): Promise<PullResult> {
  validateRefName(opts.ref);
  const root = resolve(opts.dir);
  await mkdir(root, { recursive: true }).catch(() => {}); // requireDirectory says what is wrong
  await requireDirectory(root);
  const remote = abortableRemote(opts.remote, opts.signal);
  return cancellable('pull', opts.signal, () => withDirLock(root, () => pullLocked({ ...opts, remote })));
}

async function pullLocked(opts: PullOptions): Promise<PullResult> {
  const started = performance.now();
  const { remote, ref } = opts;
  const root = resolve(opts.dir);

  const cache = await StatCache.load(root);
  const state = await loadState(root, remote.url, ref);
  const scan = await scanDirectory(root, cache, {
    warn: opts.warn,
    progress: opts.progress,
    signal: opts.signal,
  });
  for (const tmp of scan.staleTemps) await unlink(tmp).catch(() => {});

  const cur = await readRef(remote, ref);
  // A snapshot digest names a version even after its ref was deleted.
  if (!cur && !(opts.at !== undefined && isDigest(opts.at)))
    throw new RefNotFoundError(ref, { hint: `nothing has been pushed to ${ref} on ${remote.url}` });
  const at = opts.at === undefined ? undefined : await resolveVersion(remote, ref, opts.at);
  const wanted: Digest = at ? at.snapshot : cur!.target;

  /** `tree` may be left out when it is the scan's (treeD is scan.digest): its totals are known. */
  const done = (tree: Tree | undefined, treeD: Digest, r: Partial<PullResult>): PullResult => ({
    ref,
    snapshot: wanted,
    tree: treeD,
    filesTotal: tree === undefined || treeD === scan.digest ? scan.totals.files : countFiles(tree),
    filesDownloaded: 0,
    bytesDownloaded: 0,
    filesDeleted: 0,
    upToDate: true,
    ...r,
    durationMs: Math.round(performance.now() - started),
    ...(opts.at !== undefined ? { at: opts.at } : {}),
  });

  // Fast path: the ref is where we left it and the directory is exactly that snapshot.
  if (state && wanted === state.snapshot && scan.digest === state.base && state.base === state.tree) {
    await cache.save();
    // Not scan.tree: an unchanged scan makes it only when asked.
    return done(undefined, scan.digest, {});
  }

  const lost = (what: string, digest: Digest) => async (err: unknown) => {
    if (!isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) throw err;
    await markNeedsVerify(root, remote.url, ref);
    throw new HoardError('HOARD_EBLOB_NOT_FOUND', `${ref} on ${remote.url}: ${what} ${digest} is missing`, {
      hint: `the remote lost it; re-push from a machine that has this version: hoard push <dir> ${remote.url} --ref ${ref} --verify`,
      details: { ref, digest },
      cause: err,
    });
  };
  const theirsDigest = at
    ? at.record.tree
    : state && wanted === state.snapshot
      ? state.tree
      : (await fetchSnapshot(remote, wanted).catch(lost('its snapshot record', wanted))).tree;
  const theirs = await fetchTree(remote, root, theirsDigest).catch(lost('its tree', theirsDigest));
  // --exact: the version as it is, whatever this folder holds (no merge, no conflicts).
  const merged = opts.exact
    ? { entries: theirs.entries, conflicts: [] }
    : mergeTrees(
        await loadBase(remote, root, state, { digest: theirsDigest, tree: theirs }),
        scan.tree,
        theirs,
        opts.force ? 'theirs' : undefined,
      );
  if (merged.conflicts.length > 0 && !opts.force) throw conflictError(ref, merged.conflicts, 'pull');
  // Merge returns theirs' own entry objects where it took them: when it took
  // all of them (no un-pushed local edits, e.g. a fresh pull), the target is
  // theirs, already validated, and needs no second validation and hashing.
  // Otherwise treeDigestOnly validates the merged entries (merge already
  // sorted them canonically) and hashes them without encoding the whole tree.
  const same =
    merged.entries.length === theirs.entries.length &&
    merged.entries.every((e, i) => e === theirs.entries[i]);
  const targetDigest = same ? theirsDigest : treeDigestOnly(merged.entries);
  const target: Tree = { entries: merged.entries };

  let r = { filesDownloaded: 0, bytesDownloaded: 0, filesDeleted: 0, filesWritten: 0 };
  if (targetDigest !== scan.digest) {
    try {
      r = await materialize({
        root,
        current: scan.tree,
        target,
        localByDigest: scan.localByDigest,
        remote,
        ref,
        cache,
        progress: opts.progress ?? noProgress,
        concurrency: opts.concurrency,
      });
    } catch (err) {
      // Lost blobs: whatever this folder pushes next should check them all.
      if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) await markNeedsVerify(root, remote.url, ref);
      throw err;
    }
  }
  await cache.save();
  // After --at the folder is synced with that older version: a later pull
  // moves it forward to the head, a later push merges its edits onto the
  // head (never silently reverting the versions after it). A version whose
  // ref is gone leaves the folder unsynced.
  if (cur)
    await saveState(root, {
      remote: remote.url,
      ref,
      snapshot: wanted,
      version: cur.version,
      tree: theirsDigest,
      base: theirsDigest,
      syncedAt: new Date().toISOString(),
    });
  return done(target, theirsDigest, {
    filesDownloaded: r.filesDownloaded,
    bytesDownloaded: r.bytesDownloaded,
    filesDeleted: r.filesDeleted,
    upToDate: targetDigest === scan.digest,
  });
}
