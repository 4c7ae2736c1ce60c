// What changed between two trees, per path: added, removed, changed (content,
// kind or symlink target), with sizes. Used by `hoard log` (per version,
// against its first parent), `hoard diff` and `hoard status`. Pure: works on
// decoded trees, reads nothing.

import type { Tree, TreeEntry } from '../core/tree.ts';
import { comparePathBytes } from '../core/tree-path.ts';
import { entryKey } from './merge.ts';

export interface DiffEntry {
  path: string;
  kind: TreeEntry['kind'];
  /** Bytes of the file (0 for symlinks and folders). */
  size: number;
}

export interface ChangedEntry extends DiffEntry {
  /** Kind and size before the change. */
  oldKind: TreeEntry['kind'];
  oldSize: number;
}

export interface DiffStat {
  added: number;
  removed: number;
  changed: number;
  /** Bytes of added files plus the new size of changed files. */
  bytesAdded: number;
  /** Bytes of removed files plus the old size of changed files. */
  bytesRemoved: number;
}

export interface TreeDiff {
  added: DiffEntry[];
  removed: DiffEntry[];
  changed: ChangedEntry[];
  stat: DiffStat;
}

function sizeOf(e: TreeEntry): number {
  return e.kind === 'file' || e.kind === 'exec' ? e.size : 0;
}

/** Sorted by path bytes (both trees are canonical, so the output is too). */
export function diffTrees(from: Tree, to: Tree): TreeDiff {
  const before = new Map(from.entries.map((e) => [e.path, e]));
  const after = new Map(to.entries.map((e) => [e.path, e]));
  const added: DiffEntry[] = [];
  const removed: DiffEntry[] = [];
  const changed: ChangedEntry[] = [];
  const stat: DiffStat = { added: 0, removed: 0, changed: 0, bytesAdded: 0, bytesRemoved: 0 };
  for (const [p, a] of after) {
    const b = before.get(p);
    if (!b) {
      added.push({ path: p, kind: a.kind, size: sizeOf(a) });
      stat.bytesAdded += sizeOf(a);
    } else if (entryKey(a) !== entryKey(b)) {
      changed.push({ path: p, kind: a.kind, size: sizeOf(a), oldKind: b.kind, oldSize: sizeOf(b) });
      stat.bytesAdded += sizeOf(a);
      stat.bytesRemoved += sizeOf(b);
    }
  }
  for (const [p, b] of before) {
    if (after.has(p)) continue;
    removed.push({ path: p, kind: b.kind, size: sizeOf(b) });
    stat.bytesRemoved += sizeOf(b);
  }
  const byPath = (x: DiffEntry, y: DiffEntry) => comparePathBytes(x.path, y.path);
  added.sort(byPath);
  removed.sort(byPath);
  changed.sort(byPath);
  stat.added = added.length;
  stat.removed = removed.length;
  stat.changed = changed.length;
  return { added, removed, changed, stat };
}

/** Files and bytes of a tree (regular and executable files only). */
export function treeTotals(tree: Tree): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of tree.entries) {
    if (e.kind === 'file' || e.kind === 'exec') {
      files++;
      bytes += e.size;
    }
  }
  return { files, bytes };
}
