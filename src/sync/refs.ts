// Refs as people see them: `hoard ls` (each ref with its target and, for
// sync refs, when it last changed and how many files and bytes it holds) and
// `hoard rm` (a compare-and-set delete). A ref's target is "a sync ref" when
// it is a small blob that decodes as a snapshot record; anything else (a
// cache entry's blob, a size that cannot be a record) is listed as a plain
// blob ref without reading it.

import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { isHoardError, RefConflictError, RefNotFoundError, toHoardError } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import { MAX_SNAPSHOT_BYTES } from '../core/snapshot-record.ts';
import type { Remote } from '../remote/remote.ts';
import type { RefListing } from '../store/ref-store.ts';
import { readRef } from './common.ts';
import { readTree } from './history.ts';
import { fetchSnapshot } from './transfer.ts';
import { treeTotals } from './tree-diff.ts';

export interface RefInfo {
  name: string;
  target: Digest;
  version: string;
  /** `snapshot` for sync refs (push/pull), `blob` for anything else. */
  kind: 'snapshot' | 'blob';
  /** Sync refs: when the current version was pushed, its message, files and bytes. */
  updatedAt?: string;
  message?: string;
  files?: number;
  bytes?: number;
}

export interface ListRefsOptions {
  remote: Remote;
  prefix?: string;
  signal?: AbortSignal;
}

export interface ListRefsResult {
  prefix: string;
  refs: RefInfo[];
}

async function describe(remote: Remote, r: RefListing): Promise<RefInfo> {
  const info: RefInfo = { name: r.name, target: r.target, version: r.version, kind: 'blob' };
  const st = await remote.blobs.stat(r.target).catch(() => undefined);
  if (!st || st.size > MAX_SNAPSHOT_BYTES) return info;
  try {
    const rec = await fetchSnapshot(remote, r.target);
    const totals = treeTotals(await readTree(remote, rec.tree));
    info.kind = 'snapshot';
    info.updatedAt = rec.createdAt;
    if (rec.meta.message !== undefined) info.message = rec.meta.message;
    info.files = totals.files;
    info.bytes = totals.bytes;
  } catch (err) {
    // Not a snapshot record (or its tree is gone): listed as a plain blob ref.
    if (!isHoardError(err)) throw err;
  }
  return info;
}

export async function listRefs(opts: ListRefsOptions): Promise<ListRefsResult> {
  const { remote } = opts;
  const prefix = validateRefPrefix(opts.prefix ?? '');
  const listed: RefListing[] = [];
  try {
    for await (const r of remote.refs.list(prefix, opts.signal)) listed.push(r);
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `listing refs on ${remote.url}`);
  }
  const refs = await mapLimit(listed, DEFAULTS.transferConcurrency, (r) => {
    opts.signal?.throwIfAborted();
    return describe(remote, r);
  });
  return { prefix, refs };
}

export interface RemoveRefOptions {
  remote: Remote;
  ref: string;
  /** The version the caller read (`hoard ls` shows it); absent: the version read now. */
  expect?: string;
}

export interface RemoveRefResult {
  ref: string;
  target: Digest;
  version: string;
}

/**
 * Deletes a ref by compare-and-set: only when it is still at `expect` (or
 * at the version this call read). The blobs it named stay until gc.
 */
export async function removeRef(opts: RemoveRefOptions): Promise<RemoveRefResult> {
  const { remote } = opts;
  const ref = validateRefName(opts.ref);
  const cur = await readRef(remote, ref);
  if (!cur) throw new RefNotFoundError(ref, { hint: `there is no ref ${ref} on ${remote.url}` });
  const version = opts.expect ?? cur.version;
  try {
    await remote.refs.delete(ref, version);
  } catch (err) {
    if (isHoardError(err, 'HOARD_EREF_CONFLICT'))
      throw new RefConflictError(ref, version, {
        hint: 'nothing was deleted (`hoard ls` shows the current version)',
        cause: err,
        details: { current: cur.version },
      });
    if (isHoardError(err)) throw err;
    throw toHoardError(err, 'HOARD_EREMOTE', `deleting ref ${ref} on ${remote.url}`);
  }
  return { ref, target: cur.target, version };
}
