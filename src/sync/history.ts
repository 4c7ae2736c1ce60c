// The history of a sync ref: every push writes a snapshot record naming its
// parents, so a ref's versions are the records reachable from its target.
// This module names versions (`resolveVersion`: a digest, `R~N`, an ISO
// time) and lists them (`log`), reading only snapshot records and trees,
// each verified against its digest. Walks are bounded by historyMaxWalk:
// records come from the remote, so a crafted chain must not run forever.

import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, isDigest } from '../core/digest.ts';
import { HoardError, isHoardError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName } from '../core/ref-name.ts';
import type { SnapshotRecord } from '../core/snapshot-record.ts';
import { decodeTree, type Tree } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { readRef } from './common.ts';
import { EMPTY_TREE, fetchSnapshot, readSmallBlob } from './transfer.ts';
import { type DiffStat, diffTrees, treeTotals } from './tree-diff.ts';

/** A version of a ref: the snapshot digest and its record. */
export interface Version {
  snapshot: Digest;
  record: SnapshotRecord;
}

/** A tree read straight from the remote (no local directory to keep it in). */
export async function readTree(remote: Remote, digest: Digest): Promise<Tree> {
  return decodeTree(await readSmallBlob(remote, digest, DEFAULTS.syncMaxTreeBytes));
}

async function snapshotAt(remote: Remote, digest: Digest, what: string): Promise<SnapshotRecord> {
  try {
    return await fetchSnapshot(remote, digest);
  } catch (err) {
    if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND'))
      throw new HoardError('HOARD_EBLOB_NOT_FOUND', `${what}: snapshot ${digest} is not on ${remote.url}`, {
        hint: 'the version may have been garbage-collected; `hoard log` lists the ones that exist',
        cause: err,
        details: { digest },
      });
    throw err;
  }
}

async function head(remote: Remote, ref: string): Promise<Version> {
  const cur = await readRef(remote, validateRefName(ref));
  if (!cur) throw new RefNotFoundError(ref, { hint: `nothing has been pushed to ${ref} on ${remote.url}` });
  return { snapshot: cur.target, record: await snapshotAt(remote, cur.target, `ref ${ref}`) };
}

const TILDE_RE = /^(.*)~(\d+)$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * A version named by `spec`, relative to `ref` when the spec does not name a
 * ref itself:
 *
 * - absent: the ref's current version;
 * - `sha256:<hex>`: that snapshot (it must be a snapshot record);
 * - `<ref>` or `<ref>~N` (or `~N` for --ref): N first parents back;
 * - an ISO-8601 time (`2026-12-01`, `2026-12-01T09:30Z`): the newest version
 *   on the first-parent chain created at or before it.
 */
export async function resolveVersion(
  remote: Remote,
  ref: string | undefined,
  spec?: string,
): Promise<Version> {
  const needRef = (): string => {
    if (ref === undefined)
      throw new HoardError('HOARD_EUSAGE', `${JSON.stringify(spec ?? '')} needs a ref`, {
        hint: 'pass --ref <name>, or name the ref in the version (<ref>~N)',
      });
    return ref;
  };
  if (spec === undefined || spec === '') return head(remote, needRef());
  if (isDigest(spec)) return { snapshot: spec, record: await snapshotAt(remote, spec, 'version') };
  if (ISO_RE.test(spec)) {
    const when = Date.parse(spec.length === 10 ? `${spec}T23:59:59.999Z` : spec);
    if (Number.isNaN(when)) throw new HoardError('HOARD_EUSAGE', `invalid time ${JSON.stringify(spec)}`);
    return firstParentWhere(
      remote,
      await head(remote, needRef()),
      spec,
      (v) => Date.parse(v.record.createdAt) <= when,
    );
  }
  const m = TILDE_RE.exec(spec);
  const name = m ? m[1] || needRef() : spec;
  const steps = m ? Number(m[2]) : 0;
  if (!Number.isSafeInteger(steps))
    throw new HoardError('HOARD_EUSAGE', `invalid version ${JSON.stringify(spec)}`);
  let n = 0;
  return firstParentWhere(remote, await head(remote, name), spec, () => n++ === steps);
}

/** Walks first parents from `start` to the first version `pick` accepts. */
async function firstParentWhere(
  remote: Remote,
  start: Version,
  spec: string,
  pick: (v: Version) => boolean,
): Promise<Version> {
  let v = start;
  for (let i = 0; i < DEFAULTS.historyMaxWalk; i++) {
    if (pick(v)) return v;
    const parent = v.record.parents[0];
    if (parent === undefined) break;
    v = { snapshot: parent, record: await snapshotAt(remote, parent, spec) };
  }
  throw new HoardError('HOARD_EREF_NOT_FOUND', `no version ${JSON.stringify(spec)} in the history`, {
    hint: '`hoard log <remote> --ref <name>` lists the versions',
    details: { version: spec },
  });
}

export interface LogEntry {
  snapshot: Digest;
  tree: Digest;
  parents: Digest[];
  createdAt: string;
  /** `push --message`, when given. */
  message?: string;
  /** Who pushed it (meta.user) and from where (meta.host). */
  user?: string;
  host?: string;
  meta: Record<string, string>;
  /** More than one parent: a push that merged someone else's version in. */
  merge: boolean;
  files: number;
  bytes: number;
  /** Against the first parent (against nothing for the first version). */
  changes: DiffStat;
}

export interface LogOptions {
  remote: Remote;
  ref: string;
  /** At most this many versions (default: all, up to historyMaxWalk). */
  limit?: number;
  signal?: AbortSignal;
}

export interface LogResult {
  ref: string;
  head: Digest;
  entries: LogEntry[];
  /** True when the walk stopped at `limit` with older versions left. */
  more: boolean;
}

/**
 * Versions reachable from the ref, newest first by creation time (a merge's
 * second parents are listed too, interleaved by time, like `git log`).
 */
export async function log(opts: LogOptions): Promise<LogResult> {
  const { remote, ref } = opts;
  const limit = opts.limit ?? DEFAULTS.historyMaxWalk;
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new HoardError('HOARD_EUSAGE', `the number of versions must be a whole number ≥ 1, got ${limit}`);
  const start = await head(remote, ref);
  const records = new Map<Digest, SnapshotRecord>([[start.snapshot, start.record]]);
  // Trees of neighbouring versions are read twice (as a version, then as the
  // next one's parent); a few kept decoded save those reads.
  const trees = new Map<Digest, Tree>();
  const treeOf = async (digest: Digest): Promise<Tree> => {
    const kept = trees.get(digest);
    if (kept) return kept;
    const t = await readTree(remote, digest);
    trees.set(digest, t);
    if (trees.size > 4) trees.delete(trees.keys().next().value as Digest);
    return t;
  };
  const recordOf = async (d: Digest): Promise<SnapshotRecord | undefined> => {
    const kept = records.get(d);
    if (kept) return kept;
    try {
      const r = await fetchSnapshot(remote, d);
      records.set(d, r);
      return r;
    } catch (err) {
      if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) return undefined; // history cut (gc): stop there
      throw err;
    }
  };

  const entries: LogEntry[] = [];
  const queued = new Set<Digest>([start.snapshot]);
  const frontier: Version[] = [start];
  let walked = 0;
  while (frontier.length > 0 && entries.length < limit && walked++ < DEFAULTS.historyMaxWalk) {
    opts.signal?.throwIfAborted();
    // Newest first; ties by digest so the order is the same everywhere.
    frontier.sort(
      (a, b) => b.record.createdAt.localeCompare(a.record.createdAt) || a.snapshot.localeCompare(b.snapshot),
    );
    const v = frontier.shift()!;
    const rec = v.record;
    const tree = await treeOf(rec.tree);
    const firstParent = rec.parents[0] === undefined ? undefined : await recordOf(rec.parents[0]);
    const parentTree = firstParent ? await treeOf(firstParent.tree) : EMPTY_TREE;
    const totals = treeTotals(tree);
    const e: LogEntry = {
      snapshot: v.snapshot,
      tree: rec.tree,
      parents: rec.parents,
      createdAt: rec.createdAt,
      meta: rec.meta,
      merge: rec.parents.length > 1,
      files: totals.files,
      bytes: totals.bytes,
      changes: diffTrees(parentTree, tree).stat,
    };
    if (rec.meta.message !== undefined) e.message = rec.meta.message;
    if (rec.meta.user !== undefined) e.user = rec.meta.user;
    if (rec.meta.host !== undefined) e.host = rec.meta.host;
    entries.push(e);
    for (const p of rec.parents) {
      if (queued.has(p)) continue;
      queued.add(p);
      const r = await recordOf(p);
      if (r) frontier.push({ snapshot: p, record: r });
    }
    // Records no longer in the frontier are not needed again.
    records.delete(v.snapshot);
  }
  return { ref, head: start.snapshot, entries, more: frontier.length > 0 };
}
