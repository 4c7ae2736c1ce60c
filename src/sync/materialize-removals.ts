// The local entries a materialize removes: each only while its parents are
// still real folders (never through a symlink put there since the
// pre-flight), a file unlinked, a folder removed only when empty, and its
// stat-cache entry dropped. Removals that make room for writes run first;
// the rest after the writes, so a renamed file can still be copied from its
// old place (materialize.ts). Then what is left of a replaced folder, and
// the folders deletions left empty.

import { rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TreeEntry } from '../core/tree.ts';
import { isErrno } from '../store/fs-atomic.ts';
import {
  deepestFirst,
  lstatOrUndefined,
  parentsAreFolders,
  parentsOf,
  removeEmptyFolders,
} from './local-folders.ts';
import type { StatCache } from './stat-cache.ts';

export class LocalRemovals {
  /** Files removed that the target does not have (a file it replaces is written, not deleted). */
  filesDeleted = 0;
  /** Every path removed (a local copy of a blob is not taken from these). */
  readonly deleted = new Set<string>();
  readonly #root: string;
  readonly #tgt: ReadonlyMap<string, TreeEntry>;
  readonly #cache: StatCache;

  constructor(root: string, tgt: ReadonlyMap<string, TreeEntry>, cache: StatCache) {
    this.#root = root;
    this.#tgt = tgt;
    this.#cache = cache;
  }

  async remove(p: string): Promise<void> {
    const root = this.#root;
    if (!parentsAreFolders(root, p)) return;
    const abs = join(root, p);
    const st = lstatOrUndefined(abs);
    if (!st) return;
    if (st.isDirectory()) {
      await rmdir(abs).catch((err) => {
        if (!isErrno(err, 'ENOTEMPTY', 'EEXIST', 'ENOENT')) throw err;
      });
    } else {
      await unlink(abs).catch((err) => {
        if (!isErrno(err, 'ENOENT')) throw err;
      });
      if (!this.#tgt.has(p)) this.filesDeleted++;
    }
    this.deleted.add(p);
    this.#cache.delete(p);
  }

  /**
   * What is left of each replaced folder is folders only (the pre-flight
   * checked); anything that appeared since stops the pull before it is lost.
   */
  async removeReplaced(replacedFolders: ReadonlySet<string>): Promise<void> {
    for (const p of deepestFirst([...replacedFolders])) {
      if (!parentsAreFolders(this.#root, p)) continue;
      await removeEmptyFolders(this.#root, p);
      this.#cache.delete(p);
    }
  }

  /** Folders left empty by deletions go too, unless `keep` (the target keeps them, or they were replaced). */
  async removeEmptied(keep: (folder: string) => boolean): Promise<void> {
    const root = this.#root;
    const emptied = new Set<string>();
    for (const p of this.deleted) for (const q of parentsOf(p)) if (!keep(q)) emptied.add(q);
    for (const q of deepestFirst([...emptied])) {
      if (!parentsAreFolders(root, q)) continue;
      const st = lstatOrUndefined(join(root, q));
      if (st?.isDirectory()) await rmdir(join(root, q)).catch(() => {});
    }
  }
}
