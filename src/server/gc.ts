// Reachability and garbage collection of a filesystem store (the disk tier of
// a server without a shared remote, or any `--data DIR`).
//
// Live = every ref's target blob; if that blob is a snapshot record, its tree;
// if a cache entry record (core/entry-record.ts), its content blob and, for
// formats a feature declares (entry-references.ts), the blobs that content
// names (a Bazel ActionResult's outputs);
// if a tree (directly or through a snapshot), every file blob it lists.
// Parents of a snapshot are followed only as far as `keepVersions` says
// (default 1: superseded snapshots and their trees are garbage once no ref
// points at them, issue 6), so the disk keeps the current version of each
// ref and, if asked, the last few before it.
//
// Blobs used or written within `graceMs` are never collected: a push uploads
// its blobs before it moves the ref, and those blobs are unreferenced until
// then.
//
// Marking is bounded and never stops the world (issue 11): trees are streamed
// and decoded line by line (tree-stream.ts), yielding to the event loop every
// DEFAULTS.treeDecodeSliceMs; memory is one read chunk plus the live set, a
// compact DigestSet (the server keeps only digests on its disk); a tree above
// DEFAULTS.syncMaxTreeBytes (sync's own limit) is not followed. Bounds: docs/configuration.md (Bounded disk).

import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { DigestSet } from '../core/digest-set.ts';
import { decodeEntry, ENTRY_PREFIX, type EntryRecord, MAX_ENTRY_BYTES } from '../core/entry-record.ts';
import { isHoardError } from '../core/errors.ts';
import { decodeSnapshot, MAX_SNAPSHOT_BYTES } from '../core/snapshot-record.ts';
import { decodeTreeStream } from '../core/tree-stream.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { FsRefStore } from '../store/fs-ref-store.ts';
import type { LocalBlobFiles } from '../store/local-blob-files.ts';
import type { RefStore } from '../store/ref-store.ts';
import type { EntryReferences, ReadBounded } from './entry-references.ts';

const SNAPSHOT_PREFIX = Buffer.from('{"hoard":"snapshot/1"');
const TREE_PREFIX = Buffer.from('{"hoard":"tree/1"}');
/** Bytes read from a ref's target to tell a snapshot record or a tree from an opaque blob. */
const SNIFF_BYTES = Math.max(SNAPSHOT_PREFIX.length, TREE_PREFIX.length, ENTRY_PREFIX.length);
/** Snapshots followed per history level when keeping several versions (merges widen levels). */
const MAX_PARENTS_PER_LEVEL = 1024;
/** Read size while streaming a tree (one such buffer is all a tree costs in memory). */
const TREE_READ_CHUNK = 256 * 1024;

export interface LiveSetOptions {
  /**
   * Only digests for which this is true are kept (the disk index passes
   * "is on this disk"): the set then never outgrows the disk's own index,
   * however many blobs the trees name. A blob that joins the index while
   * the pass runs may be live without being in the set: the index leaves
   * such blobs to the next pass (disk-index.ts).
   */
  keep?: (digest: Digest) => boolean;
  /** Largest tree read (default: sync's own limit, DEFAULTS.syncMaxTreeBytes). */
  maxTreeBytes?: number;
  /** Entry formats whose content names more live blobs (the features' entryReferences). */
  entryReferences?: readonly EntryReferences[];
  /**
   * Versions kept per ref whose target is a snapshot record: 1 (the default)
   * keeps the current version only; N also keeps the snapshots up to N-1
   * parent steps back, with their trees and files (history `--at` can restore).
   */
  keepVersions?: number;
}

/**
 * The set of blobs reachable from the refs of `refs`, read from the
 * filesystem store `disk`.
 *
 * Bounded and incremental (issue 11): trees are streamed and decoded line by
 * line, yielding to the event loop every DEFAULTS.treeDecodeSliceMs, so the
 * pass costs one read buffer plus the set itself (a DigestSet: 45–90 bytes
 * per live digest, outside the V8 heap) and never holds up requests, whatever
 * the size of a tree. A tree larger than sync's limit (which no push or pull
 * accepts) or one that fails to decode keeps only what was marked before the
 * point of failure, like any blob no valid tree names.
 */
export async function liveSet(
  disk: BlobStore & LocalBlobFiles,
  refs: RefStore,
  opts: LiveSetOptions = {},
): Promise<DigestSet> {
  const keep = opts.keep ?? (() => true);
  const maxTreeBytes = opts.maxTreeBytes ?? DEFAULTS.syncMaxTreeBytes;
  const live = new DigestSet();
  const mark = (d: Digest) => {
    if (keep(d)) live.add(d);
  };
  const followers = new Map((opts.entryReferences ?? []).map((f) => [f.format, f]));
  const readBounded: ReadBounded = async (digest, maxBytes) => {
    try {
      const path = disk.fileOf(digest);
      if ((await stat(path)).size > maxBytes) return undefined;
      return await readFile(path);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  };
  const visitedTrees = new DigestSet();
  const keepVersions = Math.max(1, opts.keepVersions ?? 1);
  /** Versions still to keep below each snapshot walked (keepVersions > 1 only): shared history is walked once. */
  const walked = new Map<Digest, number>();
  const readSnapshot = async (digest: Digest) => {
    const bytes = await readBounded(digest, MAX_SNAPSHOT_BYTES);
    if (!bytes) return undefined;
    try {
      return decodeSnapshot(bytes);
    } catch {
      return undefined; // not a snapshot record after all
    }
  };
  /** A snapshot, its tree and files, and its ancestors up to keepVersions versions (parents of every kind). */
  const markVersions = async (head: Digest) => {
    let level: Digest[] = [head];
    for (let left = keepVersions; left > 0 && level.length > 0; left--) {
      const next: Digest[] = [];
      for (const digest of level) {
        if (keepVersions > 1) {
          if ((walked.get(digest) ?? 0) >= left) continue;
          walked.set(digest, left);
        }
        mark(digest);
        const rec = await readSnapshot(digest);
        if (!rec) continue; // gone (collected before) or not a record: the history stops here
        await markTree(rec.tree);
        // Merges could widen a level without end: a bounded number of parents per level.
        if (left > 1) for (const p of rec.parents) if (next.length < MAX_PARENTS_PER_LEVEL) next.push(p);
      }
      level = next;
    }
  };
  const markTree = async (digest: Digest) => {
    mark(digest);
    if (!visitedTrees.add(digest)) return;
    await markTreeFiles(disk.fileOf(digest), maxTreeBytes, mark);
  };
  for await (const ref of refs.list('')) {
    mark(ref.target);
    const head = await sniff(disk.fileOf(ref.target));
    if (!head) continue;
    if (head.prefix.subarray(0, SNAPSHOT_PREFIX.length).equals(SNAPSHOT_PREFIX)) {
      if (head.size > MAX_SNAPSHOT_BYTES) continue;
      await markVersions(ref.target);
    } else if (head.prefix.subarray(0, TREE_PREFIX.length).equals(TREE_PREFIX)) await markTree(ref.target);
    else if (
      head.prefix.subarray(0, ENTRY_PREFIX.length).equals(ENTRY_PREFIX) &&
      head.size <= MAX_ENTRY_BYTES
    ) {
      // A cache entry record: its content blob is live with it, and what a
      // feature says that content names (a Bazel ActionResult's outputs).
      const rec = await readFile(disk.fileOf(ref.target)).then(decodeEntryOrNone, () => undefined);
      if (!rec) continue;
      mark(rec.blob);
      const follower = rec.meta.format === undefined ? undefined : followers.get(rec.meta.format);
      if (!follower) continue;
      const content = await readBounded(rec.blob, follower.maxContentBytes);
      if (!content) continue;
      try {
        for (const d of await follower.references(content, readBounded)) mark(d);
      } catch {
        // Content that does not decode names nothing: the entry is a miss for its feature anyway.
      }
    }
  }
  return live;
}

/** Marks every file blob a tree names, streaming it (see liveSet). */
async function markTreeFiles(path: string, maxBytes: number, mark: (d: Digest) => void): Promise<void> {
  try {
    const st = await stat(path);
    if (st.size > maxBytes) return;
    const source = createReadStream(path, { highWaterMark: TREE_READ_CHUNK });
    try {
      for await (const e of decodeTreeStream(source, { maxBytes }))
        if (e.kind === 'file' || e.kind === 'exec') mark(e.digest);
    } finally {
      source.destroy();
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    // Not a valid tree (or it grew past the bound): what was marked stays marked.
    if (isHoardError(err, 'HOARD_ETREE_INVALID') || isHoardError(err, 'HOARD_EPATH_INVALID')) return;
    if (isHoardError(err, 'HOARD_ETOO_LARGE')) return;
    throw err;
  }
}

/** The first bytes and the size of a blob file; undefined when it is gone. */
async function sniff(path: string): Promise<{ prefix: Buffer; size: number } | undefined> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    const prefix = Buffer.alloc(Math.min(SNIFF_BYTES, size));
    await fh.read(prefix, 0, prefix.length, 0);
    return { prefix, size };
  } finally {
    await fh.close();
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
  /** Entry formats whose content names more live blobs (see LiveSetOptions). */
  entryReferences?: readonly EntryReferences[];
  /** Versions kept per snapshot ref (see LiveSetOptions). */
  keepVersions?: number;
}

/**
 * Collects unreachable blobs of a filesystem store, least recently used
 * first (atime when the file system keeps it, else mtime).
 */
export async function collectGarbage(root: string, opts: GcOptions = {}): Promise<GcReport> {
  const disk = await FsBlobStore.open(root);
  const refs = await FsRefStore.open(root);
  const live = await liveSet(disk, refs, {
    entryReferences: opts.entryReferences,
    keepVersions: opts.keepVersions,
  });
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
    const st = await stat(disk.fileOf(b.digest)).catch(() => undefined);
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

function decodeEntryOrNone(bytes: Buffer): EntryRecord | undefined {
  try {
    return decodeEntry(bytes);
  } catch {
    return undefined; // not a valid record: only the ref's target itself is live
  }
}
