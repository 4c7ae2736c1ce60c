// The identity of a `hoard cache` entry: scope, key and version, and the
// cache ref they name. The ref is
//
//   cache/hoard/<scope>/key=<encoded key>/<version>
//
// - under `cache/`, so the server's cache-ref expiry (`--cache-ref-ttl`,
//   last access) applies, and a token may be limited to one scope
//   (`refs = ["cache/hoard/<scope>/"]`);
// - the key is one ref segment, encoded character by character, so the
//   encoding of a key's prefix is a prefix of the key's encoding: restore-key
//   matching is one `RefStore.list(prefix)` and never reads other keys;
// - the version comes last: a list by key prefix sees every version of the
//   matching keys and keeps those of its own version without reading them.
//
// Key encoding: `key=` then the key, where `A-Z a-z 0-9 _ - @ +` stay as
// they are and every other UTF-8 byte, `.` and `=` included, becomes `=XX`
// (upper-case hex). `.` is always escaped so no segment can end in
// `.lock`/`.tmp`. Decoding accepts only the canonical form, so one ref names
// one key.
//
// The version is SHA-256 over the path list exactly as given (as in
// actions/cache, `node_modules` and `./node_modules` are different versions),
// plus the platform when asked (`--platform`): the same key saved for other
// paths or another OS never collides.

import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { isAbsolute, resolve, sep } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { MAX_REF_NAME_LENGTH } from '../core/ref-name.ts';

export const CACHE_REF_ROOT = 'cache/hoard/';
export const DEFAULT_SCOPE = 'default';
/** actions/cache's limit on a key's length, in characters. */
export const MAX_KEY_LENGTH = 512;
/** Most paths one entry may hold. */
export const MAX_CACHE_PATHS = 1000;
const VERSION_FORMAT = 'hoard-cache/1';
const SCOPE_RE = /^[A-Za-z0-9_][A-Za-z0-9_@+=-]{0,99}$/;
const VERSION_RE = /^[0-9a-f]{64}$/;

function usage(message: string, hint?: string): never {
  throw new HoardError('HOARD_EUSAGE', message, hint ? { hint } : {});
}

export function validateScope(scope: string): string {
  if (!SCOPE_RE.test(scope))
    usage(
      `invalid cache scope ${JSON.stringify(scope)}`,
      'a scope is one name of letters, digits and _ - @ + = (up to 100, not starting with - or =)',
    );
  return scope;
}

/** Checks a key or restore-key prefix: non-empty, at most 512 characters, no control characters. */
export function validateKey(key: string, what = 'key'): string {
  if (key.length === 0) usage(`the cache ${what} is empty`);
  if (key.length > MAX_KEY_LENGTH) usage(`the cache ${what} is longer than ${MAX_KEY_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(key) || !key.isWellFormed())
    usage(`the cache ${what} ${JSON.stringify(key)} holds control characters or broken Unicode`);
  return key;
}

const LITERAL = /[A-Za-z0-9_@+-]/;
/** Every key segment starts so (segments must start with a letter, digit or `_`; an escape starts with `=`). */
const KEY_MARK = 'key=';

/** The ref segment of a key (or the leading part of one, for prefix lists). */
export function encodeKey(key: string): string {
  let out = KEY_MARK;
  for (const ch of key) {
    if (LITERAL.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The key a ref segment names, or undefined when it is not a canonical encoding. */
export function decodeKey(segment: string): string | undefined {
  if (!segment.startsWith(KEY_MARK)) return undefined;
  const bytes: number[] = [];
  for (let i = KEY_MARK.length; i < segment.length; ) {
    const c = segment[i];
    if (c === '=') {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    } else {
      bytes.push(c.charCodeAt(0));
      i++;
    }
  }
  const key = Buffer.from(bytes).toString('utf8');
  // Canonical only: re-encoding must give the same segment (no escaped
  // literals, lower-case hex or broken UTF-8).
  return key.length > 0 && encodeKey(key) === segment ? key : undefined;
}

/** The version of an entry: what it was saved from (the path list as typed, and the platform if asked). */
export function cacheVersion(paths: readonly string[], opts: { platform?: boolean } = {}): string {
  const h = createHash('sha256');
  h.update(`${VERSION_FORMAT}\n`);
  for (const p of paths) h.update(`path ${p}\n`);
  if (opts.platform) h.update(`platform ${process.platform}-${process.arch}\n`);
  return h.digest('hex');
}

export function scopePrefix(scope: string): string {
  return `${CACHE_REF_ROOT}${validateScope(scope)}/`;
}

/** The cache ref of one entry. */
export function cacheRefName(scope: string, key: string, version: string): string {
  const name = `${scopePrefix(scope)}${encodeKey(validateKey(key))}/${version}`;
  if (name.length > MAX_REF_NAME_LENGTH)
    usage(
      `the cache key ${JSON.stringify(key.slice(0, 60))}… is too long once encoded (${name.length} > ${MAX_REF_NAME_LENGTH} characters in its ref name)`,
      'shorten the key; characters other than letters, digits and _ - @ + take three characters each',
    );
  return name;
}

/** The list prefix of every entry whose key starts with `prefix` (any version). */
export function cacheRefPrefix(scope: string, prefix: string): string {
  return `${scopePrefix(scope)}${encodeKey(validateKey(prefix, 'restore key'))}`;
}

export interface ParsedCacheRef {
  scope: string;
  key: string;
  version: string;
}

/** Scope, key and version of a cache ref name, or undefined for anything else under cache/hoard/. */
export function parseCacheRef(name: string): ParsedCacheRef | undefined {
  if (!name.startsWith(CACHE_REF_ROOT)) return undefined;
  const parts = name.slice(CACHE_REF_ROOT.length).split('/');
  if (parts.length !== 3) return undefined;
  const [scope, seg, version] = parts;
  if (!SCOPE_RE.test(scope) || !VERSION_RE.test(version)) return undefined;
  const key = decodeKey(seg);
  return key === undefined ? undefined : { scope, key, version };
}

/** Checks the path list of an entry (non-empty, bounded, no empty or NUL paths). */
export function validatePathList(paths: readonly string[]): void {
  if (paths.length === 0) usage('name at least one path to cache');
  if (paths.length > MAX_CACHE_PATHS) usage(`at most ${MAX_CACHE_PATHS} paths per cache entry`);
  for (const p of paths) {
    if (p.length === 0 || p.includes('\0')) usage(`invalid cache path ${JSON.stringify(p)}`);
  }
}

/**
 * Where a path as typed lives on this machine: `~` and `~/…` are the home
 * folder, a relative path is relative to `cwd`, an absolute one is itself.
 */
export function resolveCachePath(path: string, cwd: string = process.cwd()): string {
  let p = path;
  if (p === '~') p = homedir();
  else if (p.startsWith('~/')) p = `${homedir()}/${p.slice(2)}`;
  return isAbsolute(p) ? resolve(p) : resolve(cwd, p);
}

/**
 * The paths resolved, refusing two that are the same place or one inside
 * another (their entries would be written twice).
 */
export function resolveCachePaths(paths: readonly string[], cwd?: string): string[] {
  validatePathList(paths);
  const abs = paths.map((p) => resolveCachePath(p, cwd));
  for (let i = 0; i < abs.length; i++)
    for (let j = 0; j < abs.length; j++) {
      const x = abs[i];
      const y = abs[j];
      if (i !== j && (x === y || y.startsWith(x.endsWith(sep) ? x : x + sep)))
        usage(
          `cache paths ${JSON.stringify(paths[i])} and ${JSON.stringify(paths[j])} overlap`,
          'name each folder once; a folder already holds everything under it',
        );
    }
  return abs;
}
