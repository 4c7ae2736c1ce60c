// Reachability check of any store (a data directory, a bucket, a server):
// every ref's target must be present; when the target is a snapshot record,
// its tree must be present and decode, and every file blob that tree names
// must be present. Missing blobs are reported with the refs and paths that
// need them, so a user knows what is lost and which directory can put it
// back (`hoard push --verify`). Presence is asked with the store's batched
// `missing`, so a remote is never downloaded; only snapshot records and trees
// are read (bounded, verified against their digests); trees are streamed and
// decoded line by line (tree-stream.ts), so a tree's size costs no memory.
//
// A ref whose target is a cache entry record (core/entry-record.ts) needs
// the record's content blob too. Any other target (a git snapshot archive, a
// raw blob) is "opaque": only its presence is checked.

import type { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher, sha256 } from '../core/digest.ts';
import { DigestSet } from '../core/digest-set.ts';
import { decodeEntry, ENTRY_PREFIX, type EntryRecord } from '../core/entry-record.ts';
import { isHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import { decodeSnapshot, MAX_SNAPSHOT_BYTES } from '../core/snapshot-record.ts';
import { readAllBounded } from '../core/streams.ts';
import { decodeTreeStream } from '../core/tree-stream.ts';
import type { BlobStore } from './blob-store.ts';
import type { RefStore } from './ref-store.ts';

/** Paths listed per ref that needs a missing blob (the rest are counted). */
const SHOWN_PATHS = 20;
/** Refs checked at once (each costs a stat and a small read). */
const REF_CONCURRENCY = 8;
const SNAPSHOT_PREFIX = Buffer.from('{"hoard":"snapshot/1"');

export interface BlobNeed {
  ref: string;
  /** Paths (in the ref's tree) whose content is the blob; empty for a snapshot record or tree. */
  paths: string[];
  /** Paths needing it beyond those listed. */
  morePaths: number;
}

export interface MissingBlob {
  digest: Digest;
  /** What the blob is to the refs that need it. */
  kind: 'target' | 'tree' | 'file';
  neededBy: BlobNeed[];
}

export interface UnreadableBlob {
  ref: string;
  digest: Digest;
  kind: 'snapshot' | 'tree' | 'entry';
  reason: string;
}

export interface ReachabilityReport {
  refsChecked: number;
  /** Refs whose target is not a snapshot record: only its presence was checked. */
  opaqueRefs: number;
  treesChecked: number;
  /** Distinct file blobs asked about. */
  blobsReferenced: number;
  missing: MissingBlob[];
  unreadable: UnreadableBlob[];
}

type TreeOutcome =
  | { state: 'missing' }
  | { state: 'unreadable'; reason: string }
  | { state: 'ok'; missingFiles: Map<Digest, { paths: string[]; count: number }> };

export async function checkReachability(
  blobs: BlobStore,
  refs: RefStore,
  opts: { maxTreeBytes?: number } = {},
): Promise<ReachabilityReport> {
  const maxTreeBytes = opts.maxTreeBytes ?? DEFAULTS.syncMaxTreeBytes;
  const report: ReachabilityReport = {
    refsChecked: 0,
    opaqueRefs: 0,
    treesChecked: 0,
    blobsReferenced: 0,
    missing: [],
    unreadable: [],
  };
  const missing = new Map<Digest, MissingBlob>();
  const need = (digest: Digest, kind: MissingBlob['kind'], n: BlobNeed) => {
    let m = missing.get(digest);
    if (!m) missing.set(digest, (m = { digest, kind, neededBy: [] }));
    m.neededBy.push(n);
  };
  // Refs often share a tree (branches, cache keys): each tree is checked once.
  const trees = new Map<Digest, Promise<TreeOutcome>>();
  const referenced = new DigestSet();

  const checkTree = async (digest: Digest): Promise<TreeOutcome> => {
    // No presence check first: a missing tree is the read's HOARD_EBLOB_NOT_FOUND (one round trip, not two).
    let source: Readable;
    try {
      source = await blobs.read(digest);
    } catch (err) {
      if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) return { state: 'missing' };
      throw err;
    }
    // Streamed (issue 11): the tree is never held whole, only the digests it names
    // (a compact set) and the paths of those found missing (SHOWN_PATHS each).
    // Entries are provisional until the stream ends with a valid tree and the right digest.
    const hasher = new Hasher();
    async function* hashed() {
      for await (const chunk of source) {
        hasher.update(chunk);
        yield chunk as Uint8Array;
      }
    }
    const seen = new DigestSet();
    /** Asked about in the next `missing` batch, with the paths that need them. */
    let pending = new Map<Digest, { paths: string[]; count: number }>();
    const missingFiles = new Map<Digest, { paths: string[]; count: number }>();
    const flush = async () => {
      const batch = pending;
      pending = new Map();
      if (batch.size === 0) return;
      for (const d of await blobs.missing([...batch.keys()])) missingFiles.set(d, batch.get(d)!);
    };
    const note = (m: { paths: string[]; count: number }, path: string) => {
      if (m.paths.length < SHOWN_PATHS) m.paths.push(path);
      m.count++;
    };
    try {
      for await (const e of decodeTreeStream(hashed(), { maxBytes: maxTreeBytes })) {
        if (e.kind !== 'file' && e.kind !== 'exec') continue;
        const m = missingFiles.get(e.digest) ?? pending.get(e.digest);
        if (m) note(m, e.path);
        else if (seen.add(e.digest)) {
          referenced.add(e.digest);
          const fresh = { paths: [], count: 0 };
          note(fresh, e.path);
          pending.set(e.digest, fresh);
          if (pending.size >= DEFAULTS.missingBatchSize) await flush();
        }
      }
    } catch (err) {
      if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) return { state: 'missing' };
      if (isHoardError(err, 'HOARD_ETOO_LARGE'))
        return { state: 'unreadable', reason: `larger than ${maxTreeBytes} bytes` };
      if (isHoardError(err, 'HOARD_ETREE_INVALID') || isHoardError(err, 'HOARD_EPATH_INVALID'))
        return { state: 'unreadable', reason: err.message };
      throw err;
    } finally {
      source.destroy();
    }
    if (hasher.digest() !== digest)
      return { state: 'unreadable', reason: 'content does not match its digest' };
    await flush();
    report.treesChecked++;
    return { state: 'ok', missingFiles };
  };

  const list = [];
  for await (const r of refs.list()) list.push(r);
  await forEachLimit(list, REF_CONCURRENCY, async ({ name, target }) => {
    report.refsChecked++;
    const info = await blobs.stat(target);
    if (!info) {
      need(target, 'target', { ref: name, paths: [], morePaths: 0 });
      return;
    }
    if (info.size > MAX_SNAPSHOT_BYTES) {
      report.opaqueRefs++;
      return;
    }
    let bytes: Buffer;
    try {
      bytes = await readAllBounded(await blobs.read(target), MAX_SNAPSHOT_BYTES);
    } catch (err) {
      if (!isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) throw err;
      need(target, 'target', { ref: name, paths: [], morePaths: 0 }); // removed since the stat
      return;
    }
    if (bytes.subarray(0, ENTRY_PREFIX.length).equals(ENTRY_PREFIX)) {
      // A cache entry record: its content blob must be there too.
      let rec: EntryRecord | undefined;
      try {
        if (sha256(bytes) !== target) throw new Error('content does not match its digest');
        rec = decodeEntry(bytes);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        report.unreadable.push({ ref: name, digest: target, kind: 'entry', reason });
        return;
      }
      if (rec) {
        referenced.add(rec.blob);
        if ((await blobs.missing([rec.blob])).length > 0)
          need(rec.blob, 'file', { ref: name, paths: [], morePaths: 0 });
        return;
      }
    }
    if (!bytes.subarray(0, SNAPSHOT_PREFIX.length).equals(SNAPSHOT_PREFIX)) {
      report.opaqueRefs++;
      return;
    }
    let tree: Digest;
    try {
      if (sha256(bytes) !== target) throw new Error('content does not match its digest');
      tree = decodeSnapshot(bytes).tree;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      report.unreadable.push({ ref: name, digest: target, kind: 'snapshot', reason });
      return;
    }
    let outcome = trees.get(tree);
    if (!outcome) trees.set(tree, (outcome = checkTree(tree)));
    const o = await outcome;
    if (o.state === 'missing') need(tree, 'tree', { ref: name, paths: [], morePaths: 0 });
    else if (o.state === 'unreadable')
      report.unreadable.push({ ref: name, digest: tree, kind: 'tree', reason: o.reason });
    else
      for (const [d, m] of o.missingFiles)
        need(d, 'file', { ref: name, paths: m.paths, morePaths: m.count - m.paths.length });
  });
  report.blobsReferenced = referenced.size;
  report.missing = [...missing.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
  for (const m of report.missing) m.neededBy.sort((a, b) => (a.ref < b.ref ? -1 : 1));
  report.unreadable.sort((a, b) => (a.ref < b.ref ? -1 : 1));
  return report;
}
