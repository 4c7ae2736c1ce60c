// The canonical order of a scan's entries (UTF-8 bytes of their paths),
// without encoding every path: for well-formed strings (validateTreePath)
// UTF-16 code-unit order is UTF-8 byte order unless characters above U+D7FF
// meet, so the native string comparison serves unless some name has one
// (the walk says whether: WalkResult.wide).

import type { TreeEntry } from '../core/tree.ts';

export type EntryCompare = (a: TreeEntry, b: TreeEntry) => number;

export function compareCodeUnits(a: TreeEntry, b: TreeEntry): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * UTF-8 byte order of two well-formed paths without encoding them: code
 * units compare as code points, except that surrogates (code points above
 * U+FFFF) must sort after U+E000–U+FFFF; a prefix sorts first.
 */
export function compareUtf8(ea: TreeEntry, eb: TreeEntry): number {
  const a = ea.path;
  const b = eb.path;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}
