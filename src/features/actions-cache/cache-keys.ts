// Keys and versions of the GitHub Actions cache, and the cache refs they
// become: `cache/actions/<namespace…>/v<version>/k<key>`.
//
// An Actions key is almost any text (up to 512 characters, no commas), but a
// ref segment allows only letters, digits and `._@+=-`. Keys are escaped byte
// by byte: `[A-Za-z0-9_-]` stay, every other UTF-8 byte becomes `=XX`. The
// escape is a prefix code (each byte maps to a fixed string, `=` is always
// followed by two hex digits), so "key starts with p" is exactly "escaped key
// starts with escaped p": a restore-key lookup is one ref listing by prefix.
// The leading `v` / `k` keeps a segment from starting with `-` or `=`, and
// escaping `.` keeps it from ending in `.lock` / `.tmp`.

import { HoardError } from '../../core/errors.ts';
import { MAX_REF_NAME_LENGTH } from '../../core/ref-name.ts';

/** GitHub's own bound on a key (the toolkit checks it too). */
export const MAX_KEY_LENGTH = 512;
/** The toolkit sends at most 10 keys (the primary key and 9 restore keys). */
export const MAX_KEYS = 10;
/** A version is a SHA-256 hex from the toolkit; other clients get some room. */
const VERSION = /^[A-Za-z0-9._-]{1,128}$/;

export const ACTIONS_REF_ROOT = 'cache/actions';

function bad(message: string): HoardError {
  return new HoardError('HOARD_EBAD_REQUEST', message);
}

export function checkKey(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || key.length === 0) throw bad(`${what} is required`);
  if (key.length > MAX_KEY_LENGTH) throw bad(`${what} is longer than ${MAX_KEY_LENGTH} characters`);
  if (key.includes(',')) throw bad(`${what} may not contain commas`);
  if (/[\u0000-\u001f\u007f]/.test(key)) throw bad(`${what} may not contain control characters`);
  return key;
}

export function checkVersion(version: unknown): string {
  if (typeof version !== 'string' || !VERSION.test(version))
    throw bad('version must be 1 to 128 letters, digits, `.`, `_` or `-` (the toolkit sends a SHA-256 hex)');
  return version;
}

/** The prefix-preserving escape of `text` (see the header). */
export function escapeSegment(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The directory of one namespace's entries of one version: `cache/actions/<ns>/v<version>/`. */
export function versionDir(namespace: string, version: string): string {
  return `${ACTIONS_REF_ROOT}/${namespace}/v${escapeSegment(version)}/`;
}

/** The cache ref of (namespace, version, key); a key too long to fit a ref name is a 400. */
export function entryRef(namespace: string, version: string, key: string): string {
  const name = `${versionDir(namespace, version)}k${escapeSegment(key)}`;
  if (name.length > MAX_REF_NAME_LENGTH)
    throw new HoardError('HOARD_EBAD_REQUEST', 'key is too long for this server once escaped', {
      hint: `keys of plain letters, digits, '-' and '_' fit up to ~${MAX_REF_NAME_LENGTH - 150} characters; other characters take 3 each`,
    });
  return name;
}

/** The listing prefix of every key of (namespace, version) starting with `prefix`. */
export function prefixRef(namespace: string, version: string, prefix: string): string {
  return `${versionDir(namespace, version)}k${escapeSegment(prefix)}`;
}
