// `hoard cache restore`: find the entry (exact key, else the newest entry
// whose key starts with the key itself, then with each restore key in
// order, as actions/cache does), then bring each path to it incrementally.
//
// Matching: the exact key's ref is read (a read is a "use" for the server's
// last-access expiry); prefix candidates are one ref list per prefix, kept
// when their version is ours, and ordered by the `createdAt` of their
// snapshot records (small reads, bounded in parallel); the chosen one's ref
// is then read, which is its use.
//
// Writing: the entry's tree is split by its top-level names `0`, `1`, …
// (cache-save.ts); anything else in it refuses the whole entry before a byte
// is written, and so do names hoard reserves (`.hoard`, temp names) and
// symlinked roots. Each folder is scanned (its stat cache means unchanged
// files are not re-read), merged with the entry (entry wins; files the entry
// does not have stay unless --delete) and written by materialize(): files
// already right are kept, blobs found elsewhere in the folder are copied,
// only the rest is downloaded, each file verified and renamed into place.
// Nothing is written outside the paths the command names: tree paths are
// relative and checked, parents are checked to be real folders, symlinks
// are data and never followed.

import { lstat, mkdir, readlink, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, isHoardError, toHoardError } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';
import type { SnapshotRecord } from '../core/snapshot-record.ts';
import type { FileEntry, Tree, TreeEntry } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import {
  cacheRefName,
  cacheRefPrefix,
  cacheVersion,
  DEFAULT_SCOPE,
  parseCacheRef,
  resolveCachePaths,
  validateKey,
  validatePathList,
} from './cache-key.ts';
import { readRef, requireDirectory, withDirLock } from './common.ts';
import { hashFile } from './hash-file.ts';
import { readTree } from './history.ts';
import { isTempName, STATE_DIR, TEMP_PREFIX } from './ignore-rules.ts';
import { materialize } from './materialize.ts';
import { mergeTrees } from './merge.ts';
import { scanDirectory } from './scan.ts';
import { StatCache } from './stat-cache.ts';
import { EMPTY_TREE, fetchSnapshot, noProgress, type ProgressSink } from './transfer.ts';

export type CacheHit = 'exact' | 'partial' | 'miss';

export interface CacheLookupOptions {
  remote: Remote;
  key: string;
  version: string;
  restoreKeys?: readonly string[];
  scope?: string;
  warn?: (message: string) => void;
}

export interface CacheMatch {
  hit: CacheHit;
  /** The key of the entry found (absent on a miss). */
  matchedKey?: string;
  ref?: string;
  snapshot?: Digest;
  record?: SnapshotRecord;
}

/** Finds the entry a restore would use, without writing anything. */
export async function cacheLookup(opts: CacheLookupOptions): Promise<CacheMatch> {
  const { remote, version } = opts;
  const scope = opts.scope ?? DEFAULT_SCOPE;
  const exactRef = cacheRefName(scope, opts.key, version);
  const exact = await readRef(remote, exactRef);
  if (exact) {
    const record = await fetchSnapshot(remote, exact.target);
    return { hit: 'exact', matchedKey: opts.key, ref: exactRef, snapshot: exact.target, record };
  }
  const prefixes = [opts.key, ...(opts.restoreKeys ?? [])];
  for (const prefix of prefixes) {
    validateKey(prefix, 'restore key');
    const listed: { name: string; key: string; target: Digest }[] = [];
    try {
      for await (const r of remote.refs.list(cacheRefPrefix(scope, prefix))) {
        const parsed = parseCacheRef(r.name);
        // Versions of other path lists, and names that are not canonical entries, are not candidates.
        if (parsed && parsed.version === version && parsed.key.startsWith(prefix))
          listed.push({ name: r.name, key: parsed.key, target: r.target });
      }
    } catch (err) {
      throw toHoardError(err, 'HOARD_EREMOTE', `listing cache entries on ${remote.url}`);
    }
    if (listed.length === 0) continue;
    // Dated by their records, read at the listed targets: reading each
    // candidate's ref would count as a use and keep every one of them alive.
    const dated = await mapLimit(listed, DEFAULTS.transferConcurrency, async (c) => {
      try {
        const record = await fetchSnapshot(remote, c.target);
        return { ...c, record, t: Date.parse(record.createdAt) };
      } catch (err) {
        if (!isHoardError(err)) throw err;
        opts.warn?.(`skipping cache entry ${JSON.stringify(c.key)}: ${err.message}`);
        return undefined;
      }
    });
    const newestFirst = dated
      .filter((d) => d !== undefined)
      .sort((a, b) => b.t - a.t || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
    for (const best of newestFirst) {
      // The chosen entry's ref is read: its use, and a check that it is still there.
      const cur = await readRef(remote, best.name);
      if (!cur) continue; // deleted or expired since the listing
      const record = cur.target === best.target ? best.record : await fetchSnapshot(remote, cur.target);
      return { hit: 'partial', matchedKey: best.key, ref: best.name, snapshot: cur.target, record };
    }
  }
  return { hit: 'miss' };
}

export interface CacheRestoreOptions {
  remote: Remote;
  key: string;
  paths: string[];
  restoreKeys?: string[];
  scope?: string;
  platform?: boolean;
  /** Find the entry only; write nothing. */
  lookupOnly?: boolean;
  /** Also delete files under the paths that the entry does not hold (an exact mirror). */
  delete?: boolean;
  cwd?: string;
  progress?: ProgressSink;
  warn?: (message: string) => void;
}

export interface CacheRestoreResult {
  hit: CacheHit;
  key: string;
  matchedKey: string | null;
  version: string;
  scope: string;
  ref: string | null;
  snapshot: Digest | null;
  /** When the entry restored was saved (its snapshot record's createdAt). */
  createdAt: string | null;
  lookupOnly: boolean;
  paths: string[];
  filesTotal: number;
  bytesTotal: number;
  /** Files written (downloaded, copied within a folder, or mode changes). */
  filesRestored: number;
  filesDownloaded: number;
  bytesDownloaded: number;
  /** Files already present with the right content. */
  filesKept: number;
  filesDeleted: number;
  durationMs: number;
}

/** One path's part of the entry: a folder's entries (relative), or a single file. */
type RootPart = { kind: 'folder'; entries: TreeEntry[] } | { kind: 'file'; entry: FileEntry };

const TOP_RE = /^(0|[1-9][0-9]{0,5})$/;

function hostile(path: string, why: string): never {
  throw new HoardError('HOARD_EPATH_INVALID', `cache entry refused: ${JSON.stringify(path)} ${why}`, {
    hint: 'nothing was written; this entry was not made by `hoard cache save` (delete it with `hoard cache delete`)',
    details: { path },
  });
}

/**
 * The tree split by root, refusing (before anything is written) names
 * outside `0..n-1`, symlinked roots, and names hoard reserves for itself.
 */
export function splitEntryTree(tree: Tree, roots: number): (RootPart | undefined)[] {
  const parts: (RootPart | undefined)[] = new Array(roots).fill(undefined);
  for (const e of tree.entries) {
    const slash = e.path.indexOf('/');
    const top = slash === -1 ? e.path : e.path.slice(0, slash);
    if (!TOP_RE.test(top) || Number(top) >= roots)
      hostile(e.path, `is not under one of the ${roots} path(s)`);
    const i = Number(top);
    // A path holding neither reserved form (nearly all) is not split into segments.
    if (e.path.includes(STATE_DIR) || e.path.includes(TEMP_PREFIX))
      for (const seg of e.path.split('/'))
        if (seg === STATE_DIR || isTempName(seg))
          hostile(e.path, 'uses a name hoard reserves for its local state');
    if (slash === -1) {
      if (e.kind === 'file' || e.kind === 'exec') parts[i] = { kind: 'file', entry: e };
      else if (e.kind === 'dir') parts[i] = { kind: 'folder', entries: [] };
      else hostile(e.path, 'is a symlink in place of a cached path');
      continue;
    }
    let part = parts[i];
    if (!part) parts[i] = part = { kind: 'folder', entries: [] };
    if (part.kind !== 'folder') hostile(e.path, 'lies under a cached file');
    // Stripping a common prefix keeps the canonical (byte) order.
    part.entries.push({ ...e, path: e.path.slice(slash + 1) });
  }
  return parts;
}

interface Written {
  filesRestored: number;
  filesDownloaded: number;
  bytesDownloaded: number;
  filesDeleted: number;
}

async function restoreFolder(
  dest: string,
  entries: TreeEntry[],
  opts: CacheRestoreOptions,
  ref: string,
): Promise<Written> {
  await mkdir(dest, { recursive: true }).catch(() => {}); // requireDirectory says what is wrong
  await requireDirectory(dest);
  return withDirLock(dest, async () => {
    const cache = await StatCache.load(dest);
    const scan = await scanDirectory(dest, cache, { warn: opts.warn });
    for (const tmp of scan.staleTemps) await unlink(tmp).catch(() => {});
    const entry: Tree = { entries };
    // The entry wins where both have a path; what only the folder has stays (unless --delete).
    const target = opts.delete
      ? entry
      : { entries: mergeTrees(EMPTY_TREE, scan.tree, entry, 'theirs').entries };
    const r = await materialize({
      root: dest,
      current: scan.tree,
      target,
      localByDigest: scan.localByDigest,
      remote: opts.remote,
      ref,
      cache,
      progress: opts.progress ?? noProgress,
      fsync: false, // a cache, like tar: see MaterializeInput.fsync
    });
    await cache.save();
    return {
      filesRestored: r.filesWritten,
      filesDownloaded: r.filesDownloaded,
      bytesDownloaded: r.bytesDownloaded,
      filesDeleted: r.filesDeleted,
    };
  });
}

async function restoreFile(
  dest: string,
  entry: FileEntry,
  opts: CacheRestoreOptions,
  ref: string,
): Promise<Written> {
  const parent = dirname(dest);
  const name = basename(dest);
  await mkdir(parent, { recursive: true }).catch(() => {});
  await requireDirectory(parent);
  const current: TreeEntry[] = [];
  const localByDigest = new Map<Digest, string>();
  const st = await lstat(dest).catch(() => undefined);
  if (st?.isDirectory())
    throw new HoardError('HOARD_EUSAGE', `${dest} is a folder; the cache entry holds a file there`, {
      hint: 'remove or rename the folder, or restore with other paths',
    });
  if (st?.isFile()) {
    const h = await hashFile(dest);
    if (h) {
      current.push({
        path: name,
        kind: (st.mode & 0o100) !== 0 ? 'exec' : 'file',
        size: h.key.size,
        digest: h.digest,
      });
      localByDigest.set(h.digest, name);
    }
  } else if (st?.isSymbolicLink()) {
    current.push({ path: name, kind: 'symlink', target: await readlink(dest) }); // replaced, never followed
  }
  const cache = await StatCache.load(parent); // only for materialize's bookkeeping: never saved
  const r = await materialize({
    root: parent,
    current: { entries: current },
    target: { entries: [{ ...entry, path: name }] },
    localByDigest,
    remote: opts.remote,
    ref,
    cache,
    progress: opts.progress ?? noProgress,
    fsync: false,
  });
  return {
    filesRestored: r.filesWritten,
    filesDownloaded: r.filesDownloaded,
    bytesDownloaded: r.bytesDownloaded,
    filesDeleted: 0,
  };
}

export async function cacheRestore(opts: CacheRestoreOptions): Promise<CacheRestoreResult> {
  const started = performance.now();
  const { remote } = opts;
  const scope = opts.scope ?? DEFAULT_SCOPE;
  validatePathList(opts.paths);
  validateKey(opts.key);
  for (const k of opts.restoreKeys ?? []) validateKey(k, 'restore key');
  const version = cacheVersion(opts.paths, { platform: opts.platform });
  const abs = resolveCachePaths(opts.paths, opts.cwd);
  const match = await cacheLookup({
    remote,
    key: opts.key,
    version,
    restoreKeys: opts.restoreKeys,
    scope,
    warn: opts.warn,
  });
  const result: CacheRestoreResult = {
    hit: match.hit,
    key: opts.key,
    matchedKey: match.matchedKey ?? null,
    version,
    scope,
    ref: match.ref ?? null,
    snapshot: match.snapshot ?? null,
    createdAt: match.record?.createdAt ?? null,
    lookupOnly: Boolean(opts.lookupOnly),
    paths: abs,
    filesTotal: 0,
    bytesTotal: 0,
    filesRestored: 0,
    filesDownloaded: 0,
    bytesDownloaded: 0,
    filesKept: 0,
    filesDeleted: 0,
    durationMs: 0,
  };
  const finish = () => {
    result.durationMs = Math.round(performance.now() - started);
    return result;
  };
  if (match.hit === 'miss' || opts.lookupOnly || !match.record || !match.ref) return finish();

  const ref = match.ref;
  /** Blobs the remote lost (evicted, quarantined): the entry is broken, not this folder. */
  const lost = (err: unknown): never => {
    if (!isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) throw err;
    throw new HoardError(
      'HOARD_EBLOB_NOT_FOUND',
      `cache entry ${ref} is incomplete on ${remote.url}: ${err.message}`,
      {
        hint: `files restored so far are whole; delete the entry (hoard cache delete ${JSON.stringify(match.matchedKey)} --remote ${remote.url}) and save it again`,
        cause: err,
        details: { ref },
      },
    );
  };
  const tree = await readTree(remote, match.record.tree).catch(lost);
  const parts = splitEntryTree(tree, abs.length); // refuses a hostile entry before any write
  for (const p of parts) {
    if (!p) continue;
    for (const e of p.kind === 'file' ? [p.entry] : p.entries)
      if (e.kind === 'file' || e.kind === 'exec') {
        result.filesTotal++;
        result.bytesTotal += e.size;
      }
  }
  for (let i = 0; i < abs.length; i++) {
    const part = parts[i];
    if (!part) continue; // not in the entry (the path did not exist when it was saved): left alone
    const w = await (part.kind === 'file'
      ? restoreFile(abs[i], part.entry, opts, ref)
      : restoreFolder(abs[i], part.entries, opts, ref)
    ).catch(lost);
    result.filesRestored += w.filesRestored;
    result.filesDownloaded += w.filesDownloaded;
    result.bytesDownloaded += w.bytesDownloaded;
    result.filesDeleted += w.filesDeleted;
  }
  result.filesKept = Math.max(0, result.filesTotal - result.filesRestored);
  return finish();
}
