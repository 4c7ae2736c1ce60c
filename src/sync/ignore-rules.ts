// Ignore rules of a synced directory: `.hoardignore` files in gitignore
// syntax, each scoped to the folder it lives in (a deeper file's rules win
// over a shallower one's, like git). `.hoard/` (local sync state) is always
// ignored, at any depth, and so are the temp files pull writes before renaming.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { isErrno } from '../store/fs-atomic.ts';

export const IGNORE_FILE = '.hoardignore';
export const STATE_DIR = '.hoard';
/** Prefix and suffix of pull's temp files (see fs-atomic tempName). */
export const TEMP_PREFIX = '.hoard-';
export const TEMP_SUFFIX = '.tmp';

interface Scope {
  /** Folder of the .hoardignore, relative to the root ('' for the root), with a trailing '/' unless ''. */
  base: string;
  rules: Ignore;
}

/** The rules in force inside one folder: its ancestors' scopes plus its own. */
export class IgnoreRules {
  readonly scopes: readonly Scope[];

  private constructor(scopes: readonly Scope[]) {
    this.scopes = scopes;
  }

  static empty(): IgnoreRules {
    return new IgnoreRules([]);
  }

  /**
   * Rules for the folder `rel` (relative path, '' for the root), reading its
   * .hoardignore if any; `names` says which names the folder holds.
   */
  async enter(root: string, rel: string, names: { has(name: string): boolean }): Promise<IgnoreRules> {
    if (!names.has(IGNORE_FILE)) return this;
    let text: string;
    try {
      text = await readFile(join(root, rel, IGNORE_FILE), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'EISDIR', 'ENOTDIR')) return this;
      throw err;
    }
    return new IgnoreRules([
      ...this.scopes,
      { base: rel === '' ? '' : `${rel}/`, rules: ignore().add(text) },
    ]);
  }

  /** Whether the relative path is ignored; `isDir` for folders (so `foo/` patterns match). */
  ignores(rel: string, isDir: boolean): boolean {
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    if (isDir && name === STATE_DIR) return true;
    if (!isDir && isTempName(name)) return true;
    let ignored = false;
    for (const scope of this.scopes) {
      if (!rel.startsWith(scope.base)) continue;
      const sub = rel.slice(scope.base.length);
      const r = scope.rules.test(isDir ? `${sub}/` : sub);
      if (r.ignored) ignored = true;
      else if (r.unignored) ignored = false;
    }
    return ignored;
  }
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}
