// Validation of the relative paths inside a tree. Trees come from other
// machines, so a path is hostile until proven otherwise: it must not escape
// the directory it is written into, and it must mean the same file on every
// operating system hoard runs on.

import { HoardError } from './errors.ts';

export const MAX_PATH_BYTES = 4096;

function fail(path: unknown, why: string): never {
  throw new HoardError('HOARD_EPATH_INVALID', `invalid path ${JSON.stringify(path)}: ${why}`, {
    hint: 'tree paths are relative, /-separated, without empty, "." or ".." segments, NUL or backslashes',
    details: { path },
  });
}

/** Throws HOARD_EPATH_INVALID unless `path` is a safe relative tree path. */
export function validateTreePath(path: unknown): string {
  if (typeof path !== 'string') return fail(path, 'not a string');
  if (path.length === 0) return fail(path, 'empty');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return fail(path, `longer than ${MAX_PATH_BYTES} bytes`);
  if (path.startsWith('/')) return fail(path, 'absolute');
  if (path.includes('\0')) return fail(path, 'contains NUL');
  if (path.includes('\\')) return fail(path, 'contains a backslash');
  if (/^[A-Za-z]:/.test(path)) return fail(path, 'looks like a drive-letter path');
  if (!path.isWellFormed()) return fail(path, 'not valid Unicode');
  for (const seg of path.split('/')) {
    if (seg === '') return fail(path, 'empty segment');
    if (seg === '.' || seg === '..') return fail(path, `"${seg}" segment`);
  }
  return path;
}

/**
 * Orders paths by their UTF-8 bytes, the canonical order of a tree
 * (negative, zero or positive). UTF-8 byte order is code point order, and a
 * UTF-16 code unit below U+D800 is its code point: at the first difference,
 * two such units decide without encoding anything (a merge compares every
 * neighbour of two 45,000-entry trees; encoding both strings each time was
 * most of it). Only a difference at a surrogate or above (U+D800–U+FFFF,
 * where code-unit order and code-point order part) encodes both paths.
 */
export function comparePathBytes(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x < 0xd800 && y < 0xd800) return x - y;
    return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  }
  return a.length - b.length;
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * Throws if two paths would name the same file after Unicode normalisation
 * (macOS file systems normalise names; two entries that collapse into one
 * would silently overwrite each other on pull).
 */
export function checkNormalizationCollisions(paths: readonly string[]): void {
  // Two different paths can only collide if one of them changes under NFC
  // (distinct NFC strings stay distinct); ASCII never does. The usual tree
  // has no such path, and is checked without a map of every path.
  let changes = false;
  for (const p of paths)
    if (!ASCII.test(p) && p.normalize('NFC') !== p) {
      changes = true;
      break;
    }
  if (!changes) return;
  const seen = new Map<string, string>();
  for (const p of paths) {
    const key = p.normalize('NFC');
    const prev = seen.get(key);
    if (prev !== undefined && prev !== p)
      fail(p, `collides with ${JSON.stringify(prev)} after Unicode normalisation`);
    seen.set(key, p);
  }
}
