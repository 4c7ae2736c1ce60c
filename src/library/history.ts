// Looking at versions from code: log, diff, the refs of a remote, one file's
// bytes, deleting a ref. The same functions `hoard log`, `hoard diff`,
// `hoard ls`, `hoard cat` and `hoard rm` run, resolving to the objects their
// `--json` prints.

import type { Writable } from 'node:stream';
import { type CatResult, catFile as syncCatFile } from '../sync/cat-file.ts';
import { cancellable } from '../sync/common.ts';
import { type DiffResult, diffLocal, diffVersions } from '../sync/diff.ts';
import { type LogResult, log as syncLog } from '../sync/history.ts';
import {
  type ListRefsResult,
  type RemoveRefResult,
  listRefs as syncListRefs,
  removeRef as syncRemoveRef,
} from '../sync/refs.ts';
import { usingRemote } from './remote-arg.ts';
import type { RemoteCallOptions } from './sync.ts';

export type { CatResult } from '../sync/cat-file.ts';
export type { DiffResult } from '../sync/diff.ts';
export type { LogEntry, LogResult } from '../sync/history.ts';
export type { ListRefsResult, RefInfo, RemoveRefResult } from '../sync/refs.ts';
export type { DiffStat, TreeDiff } from '../sync/tree-diff.ts';

export interface LogOptions extends RemoteCallOptions {
  ref: string;
  /** At most this many versions, newest first. */
  limit?: number;
}

/** The versions of a sync ref, newest first, merges marked (`hoard log`). */
export function log(opts: LogOptions): Promise<LogResult> {
  return usingRemote(opts.remote, { what: 'log', token: opts.token, signal: opts.signal }, (remote) =>
    syncLog({ remote, ref: opts.ref, limit: opts.limit, signal: opts.signal }),
  );
}

/** Two versions of a ref: `sha256:<hex>`, `<ref>~N`, `~N` or an ISO time. */
export interface DiffVersionsOptions extends RemoteCallOptions {
  ref: string;
  /** Default: the first parent of `to`. */
  from?: string;
  /** Default: the ref's current version. */
  to?: string;
  dir?: undefined;
}

/** A synced directory against its last sync (with `ref` on `remote`, or the last one it made). */
export interface DiffDirectoryOptions {
  dir: string;
  remote?: RemoteCallOptions['remote'];
  token?: string;
  ref?: string;
  signal?: AbortSignal;
  onWarning?: (message: string) => void;
}

export type DiffOptions = DiffVersionsOptions | DiffDirectoryOptions;

/** Added, removed and changed paths with sizes (`hoard diff`). */
export async function diff(opts: DiffOptions): Promise<DiffResult> {
  const { signal } = opts;
  if (opts.dir !== undefined) {
    const { dir, ref } = opts;
    const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, 'HoardWarning'));
    if (opts.remote === undefined)
      return cancellable('diff', signal, () => diffLocal(dir, { ref, warn, signal }));
    return usingRemote(opts.remote, { what: 'diff', token: opts.token, signal }, (remote) =>
      diffLocal(dir, { remote, ref, warn, signal }),
    );
  }
  const { ref, from, to } = opts as DiffVersionsOptions;
  return usingRemote(opts.remote, { what: 'diff', token: opts.token, signal }, (remote) =>
    diffVersions({ remote, ref, from, to }),
  );
}

export interface ListRefsOptions extends RemoteCallOptions {
  /** Only refs whose names start with this. */
  prefix?: string;
}

/** The refs of a remote; sync refs with last change, files and bytes (`hoard ls`). */
export function listRefs(opts: ListRefsOptions): Promise<ListRefsResult> {
  return usingRemote(opts.remote, { what: 'listRefs', token: opts.token, signal: opts.signal }, (remote) =>
    syncListRefs({ remote, prefix: opts.prefix, signal: opts.signal }),
  );
}

export interface RemoveRefOptions extends RemoteCallOptions {
  ref: string;
  /** Delete only if the ref is still at this version (`listRefs` shows it); default: the version read now. */
  expect?: string;
}

/** Deletes a ref by compare-and-set (`hoard rm`); a stale `expect` is a RefConflictError. */
export function removeRef(opts: RemoveRefOptions): Promise<RemoveRefResult> {
  return usingRemote(opts.remote, { what: 'removeRef', token: opts.token, signal: opts.signal }, (remote) =>
    syncRemoveRef({ remote, ref: opts.ref, expect: opts.expect }),
  );
}

export interface CatFileOptions extends RemoteCallOptions {
  /** `<ref>:<path>`, `<ref>~N:<path>` or `sha256:<hex>:<path>`. */
  spec: string;
  /** Where the bytes go (streamed, verified against the file's digest; not ended). */
  out: Writable;
}

/** One file of a version, streamed to `out` (`hoard cat`). */
export function catFile(opts: CatFileOptions): Promise<CatResult> {
  return usingRemote(opts.remote, { what: 'catFile', token: opts.token, signal: opts.signal }, (remote) =>
    syncCatFile({ remote, spec: opts.spec, out: opts.out, signal: opts.signal }),
  );
}
