// What a materialize changes, decided before anything is touched: the
// target's paths checked (valid tree paths, none in hoard's local state or
// named like one of its temp files), the folders the target needs, the
// current entries removed, the target entries written, and the files whose
// kind alone changes (a chmod). No file system access.

import { HoardError } from '../core/errors.ts';
import type { FileEntry, Tree, TreeEntry } from '../core/tree.ts';
import { validateTreePath } from '../core/tree-path.ts';
import { isTempName, STATE_DIR } from './ignore-rules.ts';
import { parentsOf } from './local-folders.ts';
import { entryKey } from './merge.ts';

export interface MaterializePlan {
  /** What the scan saw on disk, by path. */
  cur: Map<string, TreeEntry>;
  /** The tree to write, by path. */
  tgt: Map<string, TreeEntry>;
  /** Every folder a target path needs (its parents, and its own folders). */
  targetFolders: Set<string>;
  /** Current paths that go: not in the target, of another kind, or where the target needs a folder. */
  removals: Set<string>;
  /** Target entries written (folders, symlinks, files). */
  writes: TreeEntry[];
  /** Files whose content is already there: only the executable bit changes. */
  chmods: FileEntry[];
}

/** Whether `path` has `name` as one of its segments. */
function hasSegment(path: string, name: string): boolean {
  for (let i = path.indexOf(name); i !== -1; i = path.indexOf(name, i + 1))
    if (
      (i === 0 || path[i - 1] === '/') &&
      (i + name.length === path.length || path[i + name.length] === '/')
    )
      return true;
  return false;
}

/** Whether two paths are in the same folder (both at the top, or the same text up to their last slash). */
export function sameFolder(a: string, b: string): boolean {
  const slash = a.lastIndexOf('/');
  return slash === b.lastIndexOf('/') && (slash === -1 || a.startsWith(b.slice(0, slash + 1)));
}

/** The plan from `current` to `target`; throws before anything is written when a target path is not one hoard writes. */
export function planMaterialize(current: Tree, target: Tree): MaterializePlan {
  const cur = new Map(current.entries.map((e) => [e.path, e]));
  const tgt = new Map(target.entries.map((e) => [e.path, e]));
  for (const p of tgt.keys()) {
    validateTreePath(p);
    if (hasSegment(p, STATE_DIR) || isTempName(p.slice(p.lastIndexOf('/') + 1)))
      throw new HoardError(
        'HOARD_EPATH_INVALID',
        `invalid path ${JSON.stringify(p)}: reserved for hoard's local state`,
        {
          hint: 'nothing was written; the remote tree was not made by hoard push',
          details: { path: p },
        },
      );
  }

  // Everything under a target path's parents must be a folder.
  const targetFolders = new Set<string>();
  let prev = '';
  for (const p of tgt.keys()) {
    // A run of paths in one folder adds its folders once.
    if (sameFolder(p, prev)) continue;
    prev = p;
    for (const q of parentsOf(p)) targetFolders.add(q);
  }
  for (const [p, e] of tgt) if (e.kind === 'dir') targetFolders.add(p);

  const isDirKind = (e: TreeEntry | undefined) => e?.kind === 'dir';
  const removals = new Set<string>();
  for (const [p, e] of cur) {
    const t = tgt.get(p);
    if (!t || isDirKind(e) !== isDirKind(t) || (!isDirKind(e) && targetFolders.has(p))) removals.add(p);
  }
  const writes: TreeEntry[] = [];
  const chmods: FileEntry[] = [];
  for (const [p, t] of tgt) {
    const c = cur.get(p);
    if (!removals.has(p) && entryKey(c) === entryKey(t)) continue;
    if (
      !removals.has(p) &&
      c &&
      (c.kind === 'file' || c.kind === 'exec') &&
      (t.kind === 'file' || t.kind === 'exec') &&
      c.digest === t.digest
    ) {
      chmods.push(t);
      continue;
    }
    writes.push(t);
  }
  return { cur, tgt, targetFolders, removals, writes, chmods };
}
