// Three-way merge of trees, per path: base = the tree both sides started
// from, ours = the local directory, theirs = the remote snapshot. A path
// changed on one side only takes that side's version; changed identically on
// both sides is fine; changed differently on both sides is a conflict. A
// result that cannot exist on disk (a file where the other side put a folder)
// is a conflict on both paths. With `prefer`, conflicts resolve to that side.
// The trees are walked together in canonical order (a merge-join), so the
// result needs no sort and no per-side map.

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

/** The entries sorted canonically: trees from decode and scan already are (checked in one pass). */
function sortedEntries(tree: Tree): readonly TreeEntry[] {
  const es = tree.entries;
  for (let i = 1; i < es.length; i++)
    if (comparePathBytes(es[i - 1].path, es[i].path) >= 0)
      return [...es].sort((x, y) => comparePathBytes(x.path, y.path));
  return es;
}

function lookup(entries: readonly TreeEntry[]): (p: string) => TreeEntry | undefined {
  let m: Map<string, TreeEntry> | undefined;
  return (p) => (m ??= new Map(entries.map((e) => [e.path, e]))).get(p);
}

/**
 * Merge-join of the three sorted trees (one pass, output already in
 * canonical order: no map per side and no sort of the result, which for a
 * tree of millions of entries is most of a pull's memory and time).
 */
export function mergeTrees(base: Tree, ours: Tree, theirs: Tree, prefer?: 'ours' | 'theirs'): MergeResult {
  const B = sortedEntries(base);
  const O = sortedEntries(ours);
  const T = sortedEntries(theirs);
  const out: TreeEntry[] = [];
  const conflicts = new Set<string>();
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < B.length || j < O.length || k < T.length) {
    // The smallest path at the three heads.
    let p: string | undefined;
    for (const e of [B[i], O[j], T[k]])
      if (e && (p === undefined || (e.path !== p && comparePathBytes(e.path, p) < 0))) p = e.path;
    const eb = B[i]?.path === p ? B[i++] : undefined;
    const eo = O[j]?.path === p ? O[j++] : undefined;
    const et = T[k]?.path === p ? T[k++] : undefined;
    const kb = entryKey(eb);
    const ko = entryKey(eo);
    const kt = entryKey(et);
    let pick: TreeEntry | undefined;
    if (ko === kt) pick = eo;
    else if (ko === kb) pick = et;
    else if (kt === kb) pick = eo;
    else {
      conflicts.add(p!);
      pick = prefer === 'ours' ? eo : et;
    }
    if (pick) out.push(pick);
  }

  // Structure: drop empty-folder entries that gained content; a non-folder
  // entry with anything under it is a conflict between the two paths.
  const merged = new Map<string, TreeEntry>(out.map((e) => [e.path, e]));
  const preferred = lookup(prefer === 'ours' ? O : T);
  let reordered = false;
  for (let round = 0; round < 8; round++) {
    const clashes: string[] = [];
    for (const p of merged.keys()) {
      let at = p.indexOf('/');
      while (at !== -1) {
        const parent = p.slice(0, at);
        const pe = merged.get(parent);
        if (pe?.kind === 'dir') merged.delete(parent);
        else if (pe) clashes.push(parent, p);
        at = p.indexOf('/', at + 1);
      }
    }
    if (clashes.length === 0) break;
    for (const p of clashes) {
      conflicts.add(p);
      if (!prefer) continue;
      const pick = preferred(p);
      if (pick) {
        if (merged.get(p) !== pick) reordered = true;
        merged.set(p, pick);
      } else merged.delete(p);
    }
    if (!prefer) break;
  }

  const entries = reordered
    ? [...merged.values()].sort((x, y) => comparePathBytes(x.path, y.path))
    : out.filter((e) => merged.get(e.path) === e);
  return { entries, conflicts: [...conflicts].sort(comparePathBytes) };
}
