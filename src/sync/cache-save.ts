// `hoard cache save`: several paths (folders or files) stored as one
// snapshot under a cache ref (see cache-key.ts for the ref and version).
//
// The tree of an entry has one top-level name per path, its position in the
// list as typed: `0`, `1`, … A folder's contents are under `<i>/`, a file is
// the entry `<i>` itself, an empty folder is a `dir` entry `<i>`, and a path
// that did not exist is left out. Where each root goes back is decided by
// the restoring command's own path list (which has the same version, so the
// same list), never by anything stored in the entry.
//
// Keys are immutable, as in actions/cache: an existing entry is left alone
// ("already exists", exit 0), and the ref is created with compare-and-set
// "must not exist", so of two concurrent saves of one key exactly one wins
// and the other reports that the entry exists. Blobs go up before the ref,
// so no entry ever names bytes that are not stored.

import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import type { Digest } from '../core/digest.ts';
import { HoardError, isHoardError, toHoardError } from '../core/errors.ts';
import { snapshotDigest } from '../core/snapshot-record.ts';
import { type TreeEntry, treeDigest } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { isErrno } from '../store/fs-atomic.ts';
import {
  cacheRefName,
  cacheVersion,
  DEFAULT_SCOPE,
  resolveCachePaths,
  validatePathList,
} from './cache-key.ts';
import { readRef, withDirLock } from './common.ts';
import { hashFile } from './hash-file.ts';
import { scanDirectory } from './scan.ts';
import { StatCache } from './stat-cache.ts';
import { noProgress, type ProgressSink, type UploadItem, uploadMissing } from './transfer.ts';

/** The `meta.hoard` of a cache entry's snapshot record. */
export const CACHE_ENTRY_KIND = 'cache/1';

export interface CacheSaveOptions {
  remote: Remote;
  key: string;
  /** The paths as typed (they make the version; relative ones are relative to `cwd`). */
  paths: string[];
  scope?: string;
  /** Make the platform (OS and CPU) part of the version. */
  platform?: boolean;
  cwd?: string;
  progress?: ProgressSink;
  warn?: (message: string) => void;
}

export interface CacheSaveResult {
  key: string;
  version: string;
  scope: string;
  ref: string;
  /** True when this call created the entry. */
  saved: boolean;
  /** True when the entry existed already (before or concurrently): nothing was changed. */
  exists: boolean;
  snapshot?: Digest;
  /** Paths (as typed) that did not exist and were left out. */
  skipped: string[];
  filesTotal: number;
  bytesTotal: number;
  filesUploaded: number;
  bytesUploaded: number;
  durationMs: number;
}

async function writeSmallBlob(remote: Remote, digest: Digest, bytes: Buffer): Promise<void> {
  try {
    await remote.blobs.write(digest, Readable.from([bytes]), { size: bytes.byteLength });
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `writing ${digest} to ${remote.url}`);
  }
}

export async function cacheSave(opts: CacheSaveOptions): Promise<CacheSaveResult> {
  const started = performance.now();
  const { remote } = opts;
  const scope = opts.scope ?? DEFAULT_SCOPE;
  validatePathList(opts.paths);
  const version = cacheVersion(opts.paths, { platform: opts.platform });
  const ref = cacheRefName(scope, opts.key, version);
  const abs = resolveCachePaths(opts.paths, opts.cwd);
  const result: CacheSaveResult = {
    key: opts.key,
    version,
    scope,
    ref,
    saved: false,
    exists: false,
    skipped: [],
    filesTotal: 0,
    bytesTotal: 0,
    filesUploaded: 0,
    bytesUploaded: 0,
    durationMs: 0,
  };
  const finish = (): CacheSaveResult => {
    result.durationMs = Math.round(performance.now() - started);
    return result;
  };

  // An existing key is never scanned nor uploaded again.
  const existing = await readRef(remote, ref);
  if (existing) {
    result.exists = true;
    result.snapshot = existing.target;
    return finish();
  }

  const entries: TreeEntry[] = [];
  const uploads: UploadItem[] = [];
  for (let i = 0; i < abs.length; i++) {
    const at = abs[i];
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(at); // the path itself may be a symlink to a folder: the user named it
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
      opts.warn?.(`${opts.paths[i]} does not exist; it is left out of the cache entry`);
      result.skipped.push(opts.paths[i]);
      continue;
    }
    const top = String(i);
    if (st.isFile()) {
      const hashed = await hashFile(at);
      if (hashed === undefined) {
        result.skipped.push(opts.paths[i]);
        continue;
      }
      const kind = (st.mode & 0o100) !== 0 ? 'exec' : 'file';
      entries.push({ path: top, kind, size: hashed.key.size, digest: hashed.digest });
      uploads.push({ digest: hashed.digest, size: hashed.key.size, path: at });
    } else if (st.isDirectory()) {
      const scan = await withDirLock(at, async () => {
        const cache = await StatCache.load(at);
        const s = await scanDirectory(at, cache, { warn: opts.warn });
        await cache.save();
        return s;
      });
      if (scan.tree.entries.length === 0) entries.push({ path: top, kind: 'dir' });
      for (const e of scan.tree.entries) {
        entries.push({ ...e, path: `${top}/${e.path}` });
        if (e.kind === 'file' || e.kind === 'exec')
          uploads.push({ digest: e.digest, size: e.size, path: `${at}/${e.path}` });
      }
    } else {
      throw new HoardError('HOARD_EUSAGE', `${opts.paths[i]} is not a file or folder`, {
        hint: 'cache folders, regular files, and symlinks inside folders',
      });
    }
  }
  if (uploads.length === 0 && entries.length === 0) {
    opts.warn?.('none of the paths exist: nothing was saved');
    return finish();
  }
  for (const e of entries)
    if (e.kind === 'file' || e.kind === 'exec') {
      result.filesTotal++;
      result.bytesTotal += e.size;
    }

  // Absolute paths joined to "/" stay themselves: one batched question for every root.
  const up = await uploadMissing(remote, '/', uploads, opts.progress ?? noProgress);
  result.filesUploaded = up.blobs;
  result.bytesUploaded = up.bytes;
  const tree = treeDigest(entries);
  await writeSmallBlob(remote, tree.digest, tree.bytes);
  const meta: Record<string, string> = {
    hoard: CACHE_ENTRY_KIND,
    key: opts.key,
    version,
    scope,
    paths: JSON.stringify(opts.paths),
    host: hostname(),
  };
  if (opts.platform) meta.platform = `${process.platform}-${process.arch}`;
  const snap = snapshotDigest({ tree: tree.digest, parents: [], createdAt: new Date().toISOString(), meta });
  await writeSmallBlob(remote, snap.digest, snap.bytes);
  try {
    await remote.refs.set(ref, snap.digest, null);
  } catch (err) {
    if (isHoardError(err, 'HOARD_EREF_CONFLICT')) {
      // Another save of this key won the race: its entry stands, ours is garbage for gc.
      result.exists = true;
      result.snapshot = (await readRef(remote, ref))?.target;
      return finish();
    }
    if (isHoardError(err)) throw err;
    throw toHoardError(err, 'HOARD_EREMOTE', `creating cache ref ${ref} on ${remote.url}`);
  }
  result.saved = true;
  result.snapshot = snap.digest;
  return finish();
}
