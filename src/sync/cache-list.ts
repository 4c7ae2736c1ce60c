// `hoard cache list` and `hoard cache delete`: the entries of a scope (one
// ref list, then each entry's small snapshot record for its creation time
// and paths; listing does not count as a use for the server's expiry), and
// deleting by compare-and-set against the version listed, so an entry saved
// again meanwhile is not lost.

import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, isHoardError, toHoardError } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';
import type { Remote } from '../remote/remote.ts';
import {
  cacheRefPrefix,
  cacheVersion,
  DEFAULT_SCOPE,
  parseCacheRef,
  scopePrefix,
  validateKey,
  validatePathList,
} from './cache-key.ts';
import { fetchSnapshot } from './transfer.ts';

export interface CacheEntryInfo {
  key: string;
  version: string;
  scope: string;
  ref: string;
  snapshot: Digest;
  /** When it was saved; null when its record cannot be read. */
  createdAt: string | null;
  /** The paths it was saved from, as typed. */
  paths: string[] | null;
  platform: string | null;
}

export interface CacheListOptions {
  remote: Remote;
  scope?: string;
  /** Only keys starting with this. */
  prefix?: string;
}

export async function cacheList(opts: CacheListOptions): Promise<CacheEntryInfo[]> {
  const { remote } = opts;
  const scope = opts.scope ?? DEFAULT_SCOPE;
  const prefix = opts.prefix ? cacheRefPrefix(scope, opts.prefix) : scopePrefix(scope);
  const found: { name: string; target: Digest; key: string; version: string }[] = [];
  try {
    for await (const r of remote.refs.list(prefix)) {
      const p = parseCacheRef(r.name);
      if (p && p.scope === scope && (!opts.prefix || p.key.startsWith(opts.prefix)))
        found.push({ name: r.name, target: r.target, key: p.key, version: p.version });
    }
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `listing cache entries on ${remote.url}`);
  }
  const out = await mapLimit(found, DEFAULTS.transferConcurrency, async (f): Promise<CacheEntryInfo> => {
    const info: CacheEntryInfo = {
      key: f.key,
      version: f.version,
      scope,
      ref: f.name,
      snapshot: f.target,
      createdAt: null,
      paths: null,
      platform: null,
    };
    try {
      const rec = await fetchSnapshot(remote, f.target);
      info.createdAt = rec.createdAt;
      info.platform = rec.meta.platform ?? null;
      const paths: unknown = rec.meta.paths === undefined ? null : JSON.parse(rec.meta.paths);
      if (Array.isArray(paths) && paths.every((p) => typeof p === 'string')) info.paths = paths;
    } catch (err) {
      if (!isHoardError(err) && !(err instanceof SyntaxError)) throw err;
    }
    return info;
  });
  // Newest first, as restore-key matching picks them.
  return out.sort(
    (a, b) =>
      (b.createdAt ?? '').localeCompare(a.createdAt ?? '') || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
}

export interface CacheDeleteOptions {
  remote: Remote;
  key: string;
  scope?: string;
  /** Delete only the entry of this path list (its version); absent: every version of the key. */
  paths?: string[];
  platform?: boolean;
}

export interface CacheDeleteResult {
  key: string;
  scope: string;
  deleted: { ref: string; version: string; snapshot: Digest }[];
}

export async function cacheDelete(opts: CacheDeleteOptions): Promise<CacheDeleteResult> {
  const { remote } = opts;
  const scope = opts.scope ?? DEFAULT_SCOPE;
  validateKey(opts.key);
  let version: string | undefined;
  if (opts.paths && opts.paths.length > 0) {
    validatePathList(opts.paths);
    version = cacheVersion(opts.paths, { platform: opts.platform });
  }
  const targets: { name: string; version: string; storeVersion: string; target: Digest }[] = [];
  try {
    for await (const r of remote.refs.list(cacheRefPrefix(scope, opts.key))) {
      const p = parseCacheRef(r.name);
      if (p && p.key === opts.key && (version === undefined || p.version === version))
        targets.push({ name: r.name, version: p.version, storeVersion: r.version, target: r.target });
    }
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `listing cache entries on ${remote.url}`);
  }
  if (targets.length === 0)
    throw new HoardError(
      'HOARD_EREF_NOT_FOUND',
      `no cache entry ${JSON.stringify(opts.key)} in scope ${scope}`,
      {
        hint: '`hoard cache list` shows the entries there are',
        details: { key: opts.key, scope },
      },
    );
  const deleted: CacheDeleteResult['deleted'] = [];
  for (const t of targets) {
    try {
      await remote.refs.delete(t.name, t.storeVersion);
      deleted.push({ ref: t.name, version: t.version, snapshot: t.target });
    } catch (err) {
      if (isHoardError(err, 'HOARD_EREF_NOT_FOUND')) continue; // gone meanwhile (expired, deleted)
      if (isHoardError(err, 'HOARD_EREF_CONFLICT'))
        throw new HoardError('HOARD_EREF_CONFLICT', `cache entry ${t.name} changed while being deleted`, {
          hint: 'it was saved again since it was listed; nothing of it was deleted (run the delete again)',
          cause: err,
          details: { ref: t.name, deleted: deleted.map((d) => d.ref) },
        });
      throw toHoardError(err, 'HOARD_EREMOTE', `deleting cache ref ${t.name} on ${remote.url}`);
    }
  }
  return { key: opts.key, scope, deleted };
}
