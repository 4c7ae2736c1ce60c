// push: scan → tree → merge with the remote if the ref moved → upload the
// missing blobs (one batched question, bounded parallel uploads) → write the
// tree and the snapshot record → compare-and-set the ref against the version
// read. Losing the race re-reads the ref and merges again (bounded retries).
// A no-op push is one stat walk plus one ref read and writes nothing.
// --verify (and the push after a pull that found blobs missing) also asks
// about every blob of the tree and re-uploads what the remote lost.
//
// The parts: push-merge.ts (the tree to write, what the remote has),
// push-uploads.ts, push-snapshot-record.ts, push-skipped.ts (--skip-changing).

import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { isHoardError, toHoardError } from '../core/errors.ts';
import { validateRefName } from '../core/ref-name.ts';
import { backoffDelay } from '../core/retry.ts';
import { type Tree, treeDigest } from '../core/tree.ts';
import { comparePathBytes } from '../core/tree-path.ts';
import { abortableRemote } from '../remote/abortable-remote.ts';
import type { Remote } from '../remote/remote.ts';
import { type BlobBatch, isBatching } from '../store/blob-batch.ts';
import type { RefValue } from '../store/ref-store.ts';
import {
  cancellable,
  conflictError,
  loadBase,
  missingBlobsError,
  readRef,
  requireDirectory,
  withDirLock,
} from './common.ts';
import { mergeWithRemote } from './push-merge.ts';
import { withoutSkipped } from './push-skipped.ts';
import { writeSmallBlob, writeSnapshotRecord } from './push-snapshot-record.ts';
import { uploadMerged } from './push-uploads.ts';
import { scanDirectory } from './scan.ts';
import type { ScanResult } from './scan-result.ts';
import { StatCache } from './stat-cache.ts';
import {
  clearNeedsVerify,
  loadState,
  needsVerify,
  type SyncState,
  saveState,
  storeLocalTree,
} from './sync-state.ts';
import { fetchTree, noProgress, type ProgressSink } from './transfer.ts';
import { treeTotals } from './tree-diff.ts';
import { type VerifyResult, verifyTree } from './verify.ts';

export type { VerifyResult } from './verify.ts';

export interface PushOptions {
  dir: string;
  remote: Remote;
  ref: string;
  /** On conflicts, ours wins instead of failing. */
  force?: boolean;
  message?: string;
  /**
   * Ask the remote about every blob of the tree, not only the changed ones,
   * and re-upload what it lacks, even when the ref is up to date; fail when
   * a blob the tree needs is missing and this folder does not hold it. The
   * push after a pull that found blobs missing verifies by itself (without
   * failing on what it cannot supply).
   */
  verify?: boolean;
  /**
   * A file that keeps changing while it is hashed or uploaded (after
   * pushChangingRetries fresh starts) is left out with a warning, as if
   * unchanged since the last sync, instead of failing the push with
   * HOARD_EFILE_CHANGING.
   */
  skipChanging?: boolean;
  /** Parallel uploads (default transferConcurrency). */
  concurrency?: number;
  progress?: ProgressSink;
  warn?: (message: string) => void;
  /**
   * Cancels the push: it stops before the ref moves and rejects with
   * HOARD_EABORTED (blobs already uploaded stay, unreferenced until gc).
   */
  signal?: AbortSignal;
}

export interface PushResult {
  ref: string;
  snapshot: Digest;
  tree: Digest;
  filesTotal: number;
  filesUploaded: number;
  bytesUploaded: number;
  filesReused: number;
  bytesReused: number;
  upToDate: boolean;
  durationMs: number;
  /** Present when the push verified the whole tree on the remote. */
  verified?: VerifyResult;
  /** Files left out because they kept changing (--skip-changing); present when any were. */
  skipped?: string[];
}

export async function push(opts: PushOptions): Promise<PushResult> {
  validateRefName(opts.ref);
  const root = resolve(opts.dir);
  await requireDirectory(root);
  const remote = abortableRemote(opts.remote, opts.signal);
  return cancellable('push', opts.signal, () =>
    withDirLock(root, async () => {
      // A file that changed between being hashed and being uploaded: start
      // over (the stat cache makes the new scan re-hash only what changed).
      // When it keeps changing, it is left out (--skip-changing) or fatal.
      const skip = new Set<string>();
      for (let attempt = 0; ; attempt++) {
        try {
          return await pushLocked({ ...opts, remote }, skip);
        } catch (err) {
          if (!isHoardError(err, 'HOARD_EFILE_CHANGING')) throw err;
          const path = err.details?.path;
          if (attempt < DEFAULTS.pushChangingRetries) continue;
          if (!opts.skipChanging || typeof path !== 'string' || skip.has(path)) throw err;
          skip.add(path);
        }
      }
    }),
  );
}

async function pushLocked(opts: PushOptions, skip: ReadonlySet<string>): Promise<PushResult> {
  const started = performance.now();
  const { remote, ref } = opts;
  const root = resolve(opts.dir);

  const cache = await StatCache.load(root);
  const state = await loadState(root, remote.url, ref);
  // A store that batches (file://) gets each small changed file while the
  // scan holds its bytes: one read serves hashing and storing. Those blobs
  // are durable before the ref moves (flush() in commit); if the push fails
  // they are unreferenced blobs, like an interrupted upload's.
  // Not when verifying: that asks the remote what it lacks, and must see it
  // as it was. The batch is made on the first changed content, so a no-op
  // push touches the remote only to read the ref.
  const flagged = await needsVerify(root, remote.url, ref);
  const blobs = remote.blobs;
  const batching = !opts.verify && !flagged && isBatching(blobs);
  let batch: BlobBatch | undefined;
  /** Digests the batch took, and whether it created them (false: the store had them). */
  const staged = new Map<Digest, boolean>();
  try {
    let scan = await scanDirectory(root, cache, {
      warn: opts.warn,
      skipChanging: opts.skipChanging,
      progress: opts.progress,
      signal: opts.signal,
      onContent: batching
        ? async (rel, digest, bytes) => {
            // Unchanged content re-hashed (a racy entry, a touch): the last
            // sync already had it, and the upload step asks about it anyway.
            if (cache.lastDigest(rel) === digest) return;
            batch ??= blobs.batch();
            const { created } = await batch.add(digest, bytes);
            if (!staged.get(digest)) staged.set(digest, created);
          }
        : undefined,
    });
    await cache.save();
    // Files the scan left out (kept changing while hashed) and those a previous
    // attempt saw change during upload (skip), if they still exist.
    const skipped = new Set(scan.changing);
    if (skip.size > 0) for (const e of scan.tree.entries) if (skip.has(e.path)) skipped.add(e.path);
    if (skipped.size > 0) {
      scan = withoutSkipped(scan, await loadBase(remote, root, state), skipped);
      for (const p of [...skipped].sort(comparePathBytes))
        opts.warn?.(`${p} kept changing while being pushed; left out (the remote keeps its version)`);
    }
    return await pushScanned(opts, started, { state, scan, flagged, batch, staged, skipped });
  } finally {
    await batch?.abort();
  }
}

interface Scanned {
  state: SyncState | undefined;
  scan: ScanResult;
  /** A failed pull asked for verification (sync-state.ts). */
  flagged: boolean;
  batch: BlobBatch | undefined;
  staged: ReadonlyMap<Digest, boolean>;
  /** Files left out of this push (--skip-changing), at their last-synced version in `scan`. */
  skipped: ReadonlySet<string>;
}

async function pushScanned(opts: PushOptions, started: number, scanned: Scanned): Promise<PushResult> {
  const { state, scan, flagged, batch, staged, skipped } = scanned;
  const { remote, ref } = opts;
  const root = resolve(opts.dir);
  const progress = opts.progress ?? noProgress;

  const uploaded = new Set<Digest>();
  let filesUploaded = 0;
  let bytesUploaded = 0;
  let verified: VerifyResult | undefined;
  /** `tree` may be left out when it is the scan's (treeD is scan.digest). */
  const result = (snapshot: Digest, tree: Tree | undefined, treeD: Digest, upToDate: boolean): PushResult => {
    // The scan's own tree: its totals are known without making it (an unchanged scan makes it lazily).
    const totals = treeD === scan.digest || tree === undefined ? scan.totals : treeTotals(tree);
    return {
      ref,
      snapshot,
      tree: treeD,
      filesTotal: totals.files,
      filesUploaded,
      bytesUploaded,
      filesReused: totals.files - filesUploaded,
      bytesReused: totals.bytes - bytesUploaded,
      upToDate,
      durationMs: Math.round(performance.now() - started),
      ...(verified ? { verified } : {}),
      ...(skipped.size > 0 ? { skipped: [...skipped].sort(comparePathBytes) } : {}),
    };
  };
  /**
   * --verify (or the flag a failed pull left): every blob of `tree` is asked
   * about and what the remote lacks is uploaded from here. Runs before the
   * ref moves, so an explicit --verify that cannot complete commits nothing.
   */
  const verifyAll = async (tree: Tree, treeD: Digest, treeBytes: Uint8Array): Promise<void> => {
    if (!opts.verify && !flagged) return;
    const v = await verifyTree(
      remote,
      root,
      tree,
      treeD,
      treeBytes,
      scan.localByDigest,
      progress,
      uploaded,
      opts.concurrency,
    );
    for (const d of v.uploaded) uploaded.add(d);
    filesUploaded += v.files;
    bytesUploaded += v.bytes;
    verified = v.result;
    if (v.result.stillMissing.length === 0) {
      if (flagged) await clearNeedsVerify(root, remote.url, ref);
      return;
    }
    if (opts.verify) throw missingBlobsError(ref, remote.url, v.result.stillMissing, 'push');
    opts.warn?.(
      `${v.result.stillMissing.length} blob(s) ${ref} needs are missing on ${remote.url} and not in this folder; ` +
        'push --verify from a machine that has them',
    );
  };
  const record = async (s: Omit<SyncState, 'remote' | 'ref' | 'syncedAt'>) => {
    if (
      state &&
      state.snapshot === s.snapshot &&
      state.version === s.version &&
      state.tree === s.tree &&
      state.base === s.base
    )
      return;
    await storeLocalTree(root, scan.digest, scan.bytes);
    await saveState(root, { remote: remote.url, ref, ...s, syncedAt: new Date().toISOString() });
  };

  /** With verification on: whether the remote lost the snapshot record the ref names. */
  const snapshotLost = async (snapshot: Digest): Promise<boolean> => {
    if (!opts.verify && !flagged) return false;
    try {
      return (await remote.blobs.missing([snapshot])).includes(snapshot);
    } catch (err) {
      throw toHoardError(err, 'HOARD_EREMOTE', `asking ${remote.url} which blobs are missing`);
    }
  };
  const lostNote = (snapshot: Digest) =>
    `re-created by push --verify: snapshot record ${snapshot} was missing`;

  for (let attempt = 0; ; attempt++) {
    const cur = await readRef(remote, ref);

    // Fast path: the ref is where we left it and nothing changed here.
    if (cur && state && cur.target === state.snapshot && scan.digest === state.base) {
      if (opts.verify || flagged) {
        // The tree must be the ref's own (kept locally after the last sync, else read).
        const tree = state.tree === scan.digest ? scan.tree : await fetchTree(remote, root, state.tree);
        const bytes = state.tree === scan.digest ? scan.bytes : treeDigest(tree.entries).bytes;
        await verifyAll(tree, state.tree, bytes);
        if (!(await snapshotLost(cur.target))) return result(cur.target, tree, state.tree, true);
        // The ref names a snapshot record the remote lost: it gets a new one
        // for the same tree (no parents: the lost record's history is gone).
        const done = await commit(cur, [], tree, state.tree, bytes, attempt, lostNote(cur.target));
        if (done) return done;
        continue;
      }
      // A no-op push ends here: the scan's tree itself is not needed (nor made, when unchanged).
      if (state.tree === scan.digest) return result(cur.target, undefined, state.tree, true);
      const tree = (await fetchTree(remote, root, state.tree).catch(() => undefined)) ?? scan.tree;
      return result(cur.target, tree, state.tree, true);
    }

    // A ref that no longer exists is a fresh start: nothing on the remote to merge with.
    const { theirsDigest, known, merged, mergedDigest, mergedBytes } = await mergeWithRemote(
      remote,
      root,
      cur,
      state,
      scan,
      opts.force,
    );
    if (merged.conflicts.length > 0 && !opts.force) throw conflictError(ref, merged.conflicts, 'push');
    const mergedTree: Tree = { entries: merged.entries };

    if (cur && theirsDigest === mergedDigest) {
      // The remote already holds exactly this tree: write nothing.
      await verifyAll(mergedTree, mergedDigest, mergedBytes);
      if (state?.snapshot === cur.target && (await snapshotLost(cur.target))) {
        const done = await commit(
          cur,
          [],
          mergedTree,
          mergedDigest,
          mergedBytes,
          attempt,
          lostNote(cur.target),
        );
        if (done) return done;
        continue;
      }
      await record({ snapshot: cur.target, version: cur.version, tree: mergedDigest, base: scan.digest });
      return result(cur.target, mergedTree, mergedDigest, true);
    }

    // Upload what only we have: blobs of the merged tree the remote snapshot does not reference.
    const up = await uploadMerged({
      remote,
      root,
      entries: merged.entries,
      known,
      staged,
      uploaded,
      skipped,
      scan,
      progress,
      concurrency: opts.concurrency,
    });
    filesUploaded += up.files;
    bytesUploaded += up.bytes;

    await writeSmallBlob(remote, mergedDigest, mergedBytes);
    await verifyAll(mergedTree, mergedDigest, mergedBytes);
    // The ref moved since this folder last synced: the new version merges
    // the remote's head (first parent, the ref's history) with the version
    // these local edits started from (second parent), and `log` says so.
    const parents = cur ? [cur.target] : [];
    if (cur && state && state.snapshot !== cur.target) parents.push(state.snapshot);
    const done = await commit(cur, parents, mergedTree, mergedDigest, mergedBytes, attempt);
    if (done) return done;
  }

  /**
   * Writes the snapshot record and compare-and-sets the ref; undefined when
   * the race was lost and the caller should go round again.
   */
  async function commit(
    cur: RefValue | undefined,
    parents: Digest[],
    tree: Tree,
    treeD: Digest,
    treeBytes: Uint8Array,
    attempt: number,
    note?: string,
  ): Promise<PushResult | undefined> {
    const snapshot = await writeSnapshotRecord(remote, treeD, parents, opts.message ?? note);
    // Every blob the scan stored is durable before the ref can name it.
    await batch?.flush();

    let next: RefValue;
    try {
      next = await remote.refs.set(ref, snapshot, cur?.version ?? null);
    } catch (err) {
      if (isHoardError(err, 'HOARD_EREF_CONFLICT') && attempt < DEFAULTS.pushCasRetries) {
        await sleep(
          backoffDelay(attempt, DEFAULTS.pushCasBackoffBaseMs, DEFAULTS.pushCasBackoffMaxMs),
          undefined,
          { signal: opts.signal },
        );
        return undefined;
      }
      if (isHoardError(err)) throw err;
      throw toHoardError(err, 'HOARD_EREMOTE', `updating ref ${ref} on ${remote.url}`);
    }
    // record() keeps the scan's tree: the same file when ours is the new tree.
    if (treeD !== scan.digest) await storeLocalTree(root, treeD, treeBytes);
    await record({ snapshot, version: next.version, tree: treeD, base: scan.digest });
    return result(snapshot, tree, treeD, false);
  }
}
