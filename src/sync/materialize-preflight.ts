// A materialize's pre-flight: nothing is written unless every write can
// land safely. Every parent folder of every changed path must be a real
// folder (never a symlink, never a file) or absent; nothing may be in the
// way of a write (a local folder where a file goes, a file where a folder
// goes) unless this pull removes it; and a folder the target replaces by a
// file or symlink may hold only tracked content this pull deletes. The
// same checks are made again at the moment of writing (local-folders.ts).

import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { lstatOrUndefined, parentsOf, unsafe, untrackedInside } from './local-folders.ts';
import { type MaterializePlan, sameFolder } from './materialize-plan.ts';

/** Throws (unsafe) when a change cannot land safely; returns the local folders the target replaces by a file or symlink. */
export async function checkBeforeWriting(root: string, plan: MaterializePlan): Promise<Set<string>> {
  const { cur, removals, writes, chmods } = plan;
  // First every parent folder of every path, each once: a real folder, or
  // absent (then nothing under it exists to be in the way: a restore into an
  // empty folder looks at each of its folders once, not at each file).
  const checkedParents = new Set<string>();
  const absentParents = new Set<string>();
  const changes = [...writes, ...chmods];
  let prev = '';
  for (const e of changes) {
    // The same folder as the entry before: the same parents, already checked.
    if (sameFolder(e.path, prev)) continue;
    prev = e.path;
    let underAbsent = false;
    for (const q of parentsOf(e.path)) {
      if (checkedParents.has(q)) {
        if (absentParents.has(q)) underAbsent = true;
        continue;
      }
      checkedParents.add(q);
      const st = underAbsent ? undefined : lstatOrUndefined(join(root, q));
      if (!st) {
        absentParents.add(q);
        underAbsent = true;
        continue;
      }
      if (st.isDirectory() || removals.has(q)) continue;
      unsafe(e.path, `${q} is ${st.isSymbolicLink() ? 'a symlink' : 'not a folder'} in the local directory`);
    }
  }
  /** What is at each changed path now (lstat), for the paths whose folder exists. */
  const present = new Map<string, Stats>();
  for (const e of changes) {
    const slash = e.path.lastIndexOf('/');
    if (slash !== -1 && absentParents.has(e.path.slice(0, slash))) continue;
    const st = lstatOrUndefined(join(root, e.path));
    if (st) present.set(e.path, st);
  }

  // A folder the target replaces by a file or symlink: every entry in it
  // must be a tracked one this pull removes (merge has already made a local
  // un-pushed change there a conflict); anything hoard does not sync
  // (ignored files, a nested .hoard/) would be lost, so it stops the pull.
  const replacedFolders = new Set<string>();
  for (const e of writes) {
    if (e.kind === 'dir' || removals.has(e.path) || !present.get(e.path)?.isDirectory()) continue;
    const stray = await untrackedInside(root, e.path, (q) => removals.has(q) && cur.get(q)?.kind !== 'dir');
    if (stray !== undefined)
      unsafe(
        e.path,
        `the local folder it replaces holds ${JSON.stringify(stray)}, which is not synced here (ignored or hoard state) and would be lost`,
      );
    replacedFolders.add(e.path);
  }

  for (const e of changes) {
    const st = present.get(e.path);
    if (st?.isDirectory() && e.kind !== 'dir' && !removals.has(e.path) && !replacedFolders.has(e.path))
      unsafe(e.path, 'a local folder is in the way');
    if (st && !st.isDirectory() && e.kind === 'dir' && !removals.has(e.path))
      unsafe(e.path, 'a local file is in the way');
  }
  return replacedFolders;
}
