// A tree (flat, sorted by path) seen as folders, for the console's ref
// page: a folder path checked, and one folder's children listed (files as
// they are, subfolders with their totals), capped at FOLDER_MAX_ENTRIES.

import { HoardError } from '../../core/errors.ts';
import type { Tree } from '../../core/tree.ts';
import type { FolderEntry } from './console-views.ts';

export const FOLDER_MAX_ENTRIES = 2000;

/** A folder path inside a tree: no leading or trailing slash, no empty, `.` or `..` segment. */
export function normalizeDir(path: string): string {
  const p = path.replace(/^\/+|\/+$/g, '');
  if (p === '') return '';
  if (p.length > 4096 || p.split('/').some((s) => s === '' || s === '.' || s === '..') || p.includes('\0'))
    throw new HoardError('HOARD_EPATH_INVALID', `invalid folder path ${JSON.stringify(path.slice(0, 200))}`);
  return p;
}

/** The immediate children of `dir` in a (flat, sorted) tree: files as they are, folders with totals. */
export function folder(tree: Tree, dir: string): { entries: FolderEntry[]; truncated: boolean } {
  const prefix = dir === '' ? '' : `${dir}/`;
  const dirs = new Map<string, FolderEntry>();
  const out: FolderEntry[] = [];
  for (const e of tree.entries) {
    if (!e.path.startsWith(prefix)) continue;
    const rest = e.path.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0 && e.kind !== 'dir') {
      if (e.kind === 'symlink')
        out.push({ name: rest, path: e.path, kind: 'symlink', size: 0, target: e.target });
      else out.push({ name: rest, path: e.path, kind: e.kind, size: e.size, digest: e.digest });
      continue;
    }
    const sub = slash < 0 ? rest : rest.slice(0, slash);
    let d = dirs.get(sub);
    if (!d) {
      d = { name: sub, path: prefix + sub, kind: 'dir', size: 0, files: 0 };
      dirs.set(sub, d);
    }
    if (slash >= 0 && (e.kind === 'file' || e.kind === 'exec')) {
      d.size += e.size;
      d.files = (d.files ?? 0) + 1;
    } else if (slash >= 0 && e.kind === 'symlink') d.files = (d.files ?? 0) + 1;
  }
  const all = [...dirs.values(), ...out];
  return { entries: all.slice(0, FOLDER_MAX_ENTRIES), truncated: all.length > FOLDER_MAX_ENTRIES };
}
