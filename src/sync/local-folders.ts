// The local folders materialize() writes into: every parent of a path it
// writes must be a real folder inside the root (never a symlink, never a
// file), checked with lstat at the moment of writing, and created when
// absent. FolderGuard does that check and remembers two things about the
// folders it saw:
//
// - when it last found each one real (batched small files take a check at
//   most RECENT_FOLDER_MS old as checked: a node_modules puts ~7 files in
//   each of thousands of folders 4–6 deep, and an lstat of every ancestor
//   for every file was the largest cost of a cold restore);
// - which ones it created itself (its mkdir succeeded): such a folder was
//   empty when made, so a name in it that this materialize has not written
//   yet can only have been put there by someone else since — which is what
//   lets a restore create a file there under its final name with
//   O_CREAT|O_EXCL instead of a temp name and a rename (small-file-writer.ts).
//
// Also here: the removal helpers (a folder the target replaces, folders left
// empty), which refuse anything untracked they find.

import { lstatSync, mkdirSync, type Stats } from 'node:fs';
import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { isErrno } from '../store/fs-atomic.ts';

export function unsafe(path: string, why: string): never {
  throw new HoardError('HOARD_EPATH_INVALID', `refusing to write ${JSON.stringify(path)}: ${why}`, {
    hint: 'nothing was written; move the conflicting local file or folder away and pull again',
    details: { path },
  });
}

/** The parent folders of a relative path, outermost first (`a/b/c` → `a`, `a/b`). */
export function parentsOf(path: string): string[] {
  const out: string[] = [];
  let i = path.indexOf('/');
  while (i !== -1) {
    out.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  return out;
}

/** lstat without throwing for absent paths (synchronous: cheap for local metadata, no error objects). */
export function lstatOrUndefined(abs: string): Stats | undefined {
  try {
    return lstatSync(abs, { throwIfNoEntry: false });
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw err;
  }
}

/**
 * How long a folder found real stays checked for batched writes. The check
 * is then "just before writing" within this bound instead of within
 * microseconds (both leave a window; only an exclusive, no-follow open per
 * segment, which Node does not offer, would close it).
 */
export const RECENT_FOLDER_MS = 20;

export class FolderGuard {
  readonly #root: string;
  /** Folders found real (absolute path → performance.now() of the check). */
  readonly #checkedAt = new Map<string, number>();
  /** Folders this guard's own mkdir created (absolute paths). */
  readonly #created = new Set<string>();
  /** The folder (relative, absolute) of the last path ensured, and when the oldest check of its chain was made. */
  #lastFolder = '';
  #lastAbs = '';
  #lastOldest = Number.NEGATIVE_INFINITY;

  constructor(root: string) {
    this.#root = root;
  }

  /**
   * Makes sure every parent folder of `rel` is a real folder inside the
   * root, creating missing ones; refuses symlinks and files in the way.
   * Returns the absolute parent folder. `recent`: a folder checked at most
   * RECENT_FOLDER_MS ago counts as checked (the batched writes); otherwise
   * each is lstat-ed now. Synchronous: an lstat (and rarely a mkdir) of
   * local metadata is microseconds, a thread-pool hand-off per call is not.
   */
  ensureParents(rel: string, recent = false): string {
    const now = performance.now();
    const folderEnd = rel.lastIndexOf('/');
    // The folder of the previous file, whose whole chain was checked no
    // earlier than #lastOldest: files arrive folder by folder.
    if (
      recent &&
      folderEnd === this.#lastFolder.length &&
      rel.startsWith(this.#lastFolder) &&
      now - this.#lastOldest <= RECENT_FOLDER_MS
    )
      return this.#lastAbs;
    let abs = this.#root;
    let oldest = now;
    let start = 0;
    let inCreated = false;
    for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) {
      abs = `${abs}/${rel.slice(start, i)}`;
      start = i + 1;
      const at = recent ? this.#checkedAt.get(abs) : undefined;
      const parentCreated = inCreated;
      inCreated = this.#created.has(abs);
      if (at !== undefined && now - at <= RECENT_FOLDER_MS) {
        if (at < oldest) oldest = at;
        continue;
      }
      // In a folder we created, a name we have not made is almost surely
      // absent: mkdir first (EEXIST then means "look", as below).
      const st = parentCreated && !inCreated ? undefined : lstatOrUndefined(abs);
      if (st?.isDirectory()) {
        this.#checkedAt.set(abs, now);
        continue;
      }
      if (st) unsafe(rel, `${abs} is ${st.isSymbolicLink() ? 'a symlink' : 'not a folder'}`);
      try {
        mkdirSync(abs);
        this.#created.add(abs);
        inCreated = true;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
        if (!lstatSync(abs).isDirectory()) unsafe(rel, `${abs} is not a folder`);
      }
      this.#checkedAt.set(abs, now);
    }
    if (folderEnd !== -1) {
      this.#lastFolder = rel.slice(0, folderEnd);
      this.#lastAbs = abs;
      this.#lastOldest = oldest;
    }
    return abs;
  }

  /** Whether `abs` (a folder ensureParents returned) was created by this guard: it held nothing of anyone's when made. */
  created(abs: string): boolean {
    return this.#created.has(abs);
  }
}

/** Checks at the moment of deleting that no parent of `rel` is a symlink; false when one is absent. */
export function parentsAreFolders(root: string, rel: string): boolean {
  for (const p of parentsOf(rel)) {
    const st = lstatOrUndefined(join(root, p));
    if (!st) return false;
    if (!st.isDirectory()) unsafe(rel, `${p} is not a folder`);
  }
  return true;
}

/** Paths ordered deepest first (children before their folders); depth counted once per path. */
export function deepestFirst(paths: string[]): string[] {
  const depth = new Map<string, number>();
  for (const p of paths) {
    let n = 0;
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) n++;
    depth.set(p, n);
  }
  return paths.sort((a, b) => depth.get(b)! - depth.get(a)!);
}

/**
 * The first path inside the local folder `rel` (depth first, never following
 * symlinks) that is not a folder and not `tracked`, or undefined.
 */
export async function untrackedInside(
  root: string,
  rel: string,
  tracked: (path: string) => boolean,
): Promise<string | undefined> {
  for (const d of await readdir(join(root, rel), { withFileTypes: true })) {
    const p = `${rel}/${d.name}`;
    if (d.isDirectory()) {
      const inner = await untrackedInside(root, p, tracked);
      if (inner !== undefined) return inner;
    } else if (!tracked(p)) return p;
  }
  return undefined;
}

/** Removes the folder `rel` whose tracked contents are already gone; refuses anything else left in it. */
export async function removeEmptyFolders(root: string, rel: string): Promise<void> {
  const abs = join(root, rel);
  const st = lstatOrUndefined(abs);
  if (!st) return;
  if (!st.isDirectory()) unsafe(rel, `${rel} changed while pulling`);
  for (const d of await readdir(abs, { withFileTypes: true })) {
    const p = `${rel}/${d.name}`;
    if (!d.isDirectory()) unsafe(p, 'it appeared in a folder the remote replaced, while pulling');
    await removeEmptyFolders(root, p);
  }
  try {
    await rmdir(abs);
  } catch (err) {
    if (isErrno(err, 'ENOTEMPTY', 'EEXIST')) unsafe(rel, 'its folder gained content while pulling');
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}
