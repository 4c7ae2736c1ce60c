// Three-way merge of trees, per path: base = the tree both sides started
// from, ours = the local directory, theirs = the remote snapshot. A path
// changed on one side only takes that side's version; changed identically on
// both sides is fine; changed differently on both sides is a conflict. A
// result that cannot exist on disk (a file where the other side put a folder)
// is a conflict on both paths. With `prefer`, conflicts resolve to that side.

import type { Tree, TreeEntry } from '../core/tree.ts';
import { comparePathBytes } from '../core/tree-path.ts';

export interface MergeResult {
  entries: TreeEntry[];
  /** Conflicting paths, sorted (resolved ones too when `prefer` was given). */
  conflicts: string[];
}

/** Identity of an entry's content: equal keys mean the same file on disk. */
export function entryKey(e: TreeEntry | undefined): string {
  if (!e) return '';
  switch (e.kind) {
    case 'file':
    case 'exec':
      return `${e.kind}:${e.digest}`;
    case 'symlink':
      return `symlink:${e.target}`;
    case 'dir':
      return 'dir';
  }
}

function byPath(tree: Tree): Map<string, TreeEntry> {
  return new Map(tree.entries.map((e) => [e.path, e]));
}

export function mergeTrees(base: Tree, ours: Tree, theirs: Tree, prefer?: 'ours' | 'theirs'): MergeResult {
  const b = byPath(base);
  const o = byPath(ours);
  const t = byPath(theirs);
  const merged = new Map<string, TreeEntry>();
  const conflicts = new Set<string>();
  const paths = new Set([...b.keys(), ...o.keys(), ...t.keys()]);
  const preferred = prefer === 'ours' ? o : t;

  for (const p of paths) {
    const kb = entryKey(b.get(p));
    const ko = entryKey(o.get(p));
    const kt = entryKey(t.get(p));
    let pick: TreeEntry | undefined;
    if (ko === kt) pick = o.get(p);
    else if (ko === kb) pick = t.get(p);
    else if (kt === kb) pick = o.get(p);
    else {
      conflicts.add(p);
      pick = preferred.get(p);
    }
    if (pick) merged.set(p, pick);
  }

  // Structure: drop empty-folder entries that gained content; a non-folder
  // entry with anything under it is a conflict between the two paths.
  for (let round = 0; round < 8; round++) {
    const sorted = [...merged.keys()].sort(comparePathBytes);
    const clashes: string[] = [];
    for (const p of sorted) {
      let i = p.indexOf('/');
      while (i !== -1) {
        const parent = p.slice(0, i);
        const pe = merged.get(parent);
        if (pe?.kind === 'dir') merged.delete(parent);
        else if (pe) clashes.push(parent, p);
        i = p.indexOf('/', i + 1);
      }
    }
    if (clashes.length === 0) break;
    for (const p of clashes) {
      conflicts.add(p);
      if (!prefer) continue;
      const pick = preferred.get(p);
      if (pick) merged.set(p, pick);
      else merged.delete(p);
    }
    if (!prefer) break;
  }

  const entries = [...merged.values()].sort((x, y) => comparePathBytes(x.path, y.path));
  return { entries, conflicts: [...conflicts].sort(comparePathBytes) };
}
