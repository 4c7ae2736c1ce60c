// Reachability and garbage collection of a filesystem store (the disk tier of
// a server without a shared remote, or any `--data DIR`).
//
// Live = every ref's target blob; if that blob is a snapshot record, its tree;
// if a tree (directly or through a snapshot), every file blob it lists.
// Parents of a snapshot are not followed: superseded snapshots and their trees
// are garbage once no ref points at them (issue 6), so the disk keeps the
// current version of each ref, not its history.
//
// Blobs used or written within `graceMs` are never collected: a push uploads
// its blobs before it moves the ref, and those blobs are unreferenced until
// then.

import { readFile, stat } from 'node:fs/promises';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { decodeSnapshot, MAX_SNAPSHOT_BYTES } from '../core/snapshot-record.ts';
import { decodeTree, fileEntries } from '../core/tree.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { FsRefStore } from '../store/fs-ref-store.ts';
import type { RefStore } from '../store/ref-store.ts';

const SNAPSHOT_PREFIX = Buffer.from('{"hoard":"snapshot/1"');
const TREE_PREFIX = Buffer.from('{"hoard":"tree/1"}');

/** Largest tree blob read while marking (a tree of millions of files is ~150 MB). */
const MAX_TREE_BYTES = 1024 * 1024 * 1024;

/** The set of blobs reachable from the refs of `refs`, read from the filesystem store `disk`. */
export async function liveSet(disk: FsBlobStore, refs: RefStore): Promise<Set<Digest>> {
  const live = new Set<Digest>();
  const visitedTrees = new Set<Digest>();
  /** Marks a tree and its files; `read` is the blob when the caller already holds it. */
  const markTree = async (digest: Digest, read?: Buffer) => {
    live.add(digest);
    if (visitedTrees.has(digest)) return;
    visitedTrees.add(digest);
    const bytes = read ?? (await readSmall(disk, digest, MAX_TREE_BYTES));
    if (!bytes?.subarray(0, TREE_PREFIX.length).equals(TREE_PREFIX)) return;
    try {
      for (const e of fileEntries(decodeTree(bytes))) live.add(e.digest);
    } catch {
      // Not a valid tree: only the blob itself is live.
    }
  };
  for await (const ref of refs.list('')) {
    live.add(ref.target);
    const head = await readSmall(disk, ref.target, MAX_TREE_BYTES);
    if (!head) continue;
    if (
      head.subarray(0, SNAPSHOT_PREFIX.length).equals(SNAPSHOT_PREFIX) &&
      head.length <= MAX_SNAPSHOT_BYTES
    ) {
      try {
        await markTree(decodeSnapshot(head).tree);
      } catch {
        // not a snapshot record after all
      }
    } else if (head.subarray(0, TREE_PREFIX.length).equals(TREE_PREFIX)) await markTree(ref.target, head);
  }
  return live;
}

async function readSmall(disk: FsBlobStore, digest: Digest, limit: number): Promise<Buffer | undefined> {
  const path = disk.pathOf(digest);
  try {
    const st = await stat(path);
    if (st.size > limit) return undefined;
    return await readFile(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

export interface GcReport {
  blobsScanned: number;
  bytesScanned: number;
  live: number;
  removed: { digest: Digest; size: number }[];
  bytesRemoved: number;
  /** Unreachable but younger than the grace period. */
  keptRecent: number;
  dryRun: boolean;
}

export interface GcOptions {
  dryRun?: boolean;
  graceMs?: number;
  /** Only collect until the store is at most this big (0 = collect all garbage). */
  targetBytes?: number;
  now?: number;
}

/**
 * Collects unreachable blobs of a filesystem store, least recently used
 * first (atime when the file system keeps it, else mtime).
 */
export async function collectGarbage(root: string, opts: GcOptions = {}): Promise<GcReport> {
  const disk = await FsBlobStore.open(root);
  const refs = await FsRefStore.open(root);
  const live = await liveSet(disk, refs);
  const grace = opts.graceMs ?? DEFAULTS.gcGraceMs;
  const now = opts.now ?? Date.now();
  const report: GcReport = {
    blobsScanned: 0,
    bytesScanned: 0,
    live: 0,
    removed: [],
    bytesRemoved: 0,
    keptRecent: 0,
    dryRun: Boolean(opts.dryRun),
  };
  const garbage: { digest: Digest; size: number; used: number }[] = [];
  for await (const b of disk.list()) {
    report.blobsScanned++;
    report.bytesScanned += b.size;
    if (live.has(b.digest)) {
      report.live++;
      continue;
    }
    const st = await stat(disk.pathOf(b.digest)).catch(() => undefined);
    if (!st) continue;
    const used = Math.max(st.atimeMs, st.mtimeMs);
    if (now - used < grace) {
      report.keptRecent++;
      continue;
    }
    garbage.push({ digest: b.digest, size: b.size, used });
  }
  garbage.sort((a, b) => a.used - b.used);
  let total = report.bytesScanned;
  for (const g of garbage) {
    if (opts.targetBytes && total <= opts.targetBytes) break;
    if (!opts.dryRun) await disk.delete(g.digest);
    report.removed.push({ digest: g.digest, size: g.size });
    report.bytesRemoved += g.size;
    total -= g.size;
  }
  return report;
}
