// `hoard cache` for library callers (`hoard.cache.save`, `.restore`, `.list`,
// `.delete`): the functions the commands run, taking a remote URL or an open
// Remote, an AbortSignal (binding the remote: nothing new starts after an
// abort, and an entry's ref is only ever created whole), progress events and
// a warning callback, resolving to the objects `--json` prints.

import { type CacheDeleteResult, type CacheEntryInfo, cacheDelete, cacheList } from '../sync/cache-list.ts';
import { type CacheRestoreResult, cacheRestore } from '../sync/cache-restore.ts';
import { type CacheSaveResult, cacheSave } from '../sync/cache-save.ts';
import { type ProgressListener, progressSink } from './progress-events.ts';
import { usingRemote } from './remote-arg.ts';
import type { RemoteCallOptions } from './sync.ts';

export type { CacheDeleteResult, CacheEntryInfo } from '../sync/cache-list.ts';
export type { CacheHit, CacheRestoreResult } from '../sync/cache-restore.ts';
export type { CacheSaveResult } from '../sync/cache-save.ts';

const defaultWarning = (message: string) => process.emitWarning(message, 'HoardWarning');

interface EntryCallOptions extends RemoteCallOptions {
  /** The cache key, e.g. `npm-linux-<hash of the lockfile>`. */
  key: string;
  /** Namespace of the entries (default `default`; a token may be limited to one). */
  scope?: string;
  /** Make the OS and CPU part of the version. */
  platform?: boolean;
}

interface PathsCallOptions extends EntryCallOptions {
  /** Folders or files as typed: they make the version; relative ones are relative to `cwd`. */
  paths: string[];
  /** Default: process.cwd(). */
  cwd?: string;
  /** Progress events (one `blob` event per blob moved). */
  onProgress?: ProgressListener;
  /** Non-fatal problems (a path that does not exist); default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

export type CacheSaveOptions = PathsCallOptions;

/** Stores `paths` under `key` (an existing key is left alone: `exists` says so). */
export function save(opts: CacheSaveOptions): Promise<CacheSaveResult> {
  const { remote, token, signal } = opts;
  return usingRemote(remote, { what: 'cache save', create: true, token, signal }, (r) =>
    cacheSave({
      remote: r,
      key: opts.key,
      paths: opts.paths,
      scope: opts.scope,
      platform: opts.platform,
      cwd: opts.cwd,
      progress: progressSink(opts.onProgress),
      warn: opts.onWarning ?? defaultWarning,
    }),
  );
}

export interface CacheRestoreOptions extends PathsCallOptions {
  /** Key prefixes tried in order when `key` has no entry, newest entry first. */
  restoreKeys?: string[];
  /** Only find the entry; write nothing. */
  lookupOnly?: boolean;
  /** Also delete files under the paths that the entry does not hold. */
  delete?: boolean;
}

/** Restores the entry of `key`, else the newest matching a restore key; moves only what is missing. */
export function restore(opts: CacheRestoreOptions): Promise<CacheRestoreResult> {
  const { remote, token, signal } = opts;
  return usingRemote(remote, { what: 'cache restore', token, signal }, (r) =>
    cacheRestore({
      remote: r,
      key: opts.key,
      paths: opts.paths,
      restoreKeys: opts.restoreKeys,
      scope: opts.scope,
      platform: opts.platform,
      lookupOnly: opts.lookupOnly,
      delete: opts.delete,
      cwd: opts.cwd,
      progress: progressSink(opts.onProgress),
      warn: opts.onWarning ?? defaultWarning,
    }),
  );
}

export interface CacheListOptions extends RemoteCallOptions {
  scope?: string;
  /** Only keys starting with this. */
  prefix?: string;
}

/** The entries of a scope, newest first. */
export function list(opts: CacheListOptions): Promise<CacheEntryInfo[]> {
  const { remote, token, signal } = opts;
  return usingRemote(remote, { what: 'cache list', token, signal }, (r) =>
    cacheList({ remote: r, scope: opts.scope, prefix: opts.prefix }),
  );
}

export interface CacheDeleteOptions extends EntryCallOptions {
  /** Only the entry of this path list (its version); absent: every version of the key. */
  paths?: string[];
}

/** Deletes the entries of a key (compare-and-set). */
function deleteEntries(opts: CacheDeleteOptions): Promise<CacheDeleteResult> {
  const { remote, token, signal } = opts;
  return usingRemote(remote, { what: 'cache delete', token, signal }, (r) =>
    cacheDelete({ remote: r, key: opts.key, scope: opts.scope, paths: opts.paths, platform: opts.platform }),
  );
}

export { deleteEntries as delete };
