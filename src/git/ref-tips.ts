// Which object ids a mirror's refs name, read from its ref files: the
// cheap answer to "does the mirror have what this client wants?" for the
// usual want, a tip the mirror itself advertised.
//
// Every upload-pack request with wants used to spawn `git cat-file
// --batch-check` before upload-pack (to fetch what the mirror lacks first):
// 25–70 ms a round under load on this machine, two rounds for a restore's
// follow-up fetch of 385 tags (issue 16). A client's wants are nearly always
// the ids ls-refs gave it, i.e. the mirror's ref tips (and, from `peel`, the
// objects its tags point at). A ref of a mirror names an object it holds: git
// writes a ref only after the objects it names are stored and connected (a
// fetch, a clone, a cold fill's index-pack before its refs). So an id found
// here needs no git process; anything else (a commit by id, a stranger's
// random id) still goes to cat-file, and a fetch when missing, as before.
//
// Only ever errs towards "not known here": a file it cannot read or parse, a
// symbolic ref, a ref being written (`.lock`), too many loose refs to read
// per request: those ids simply are not in the set.

import type { Dirent } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileIdentity } from './mirror-disk.ts';
import { OBJECT_ID } from './object-id.ts';

/** Loose ref files read per request at most; beyond, the loose refs are not used (cat-file answers). */
export const LOOSE_REFS_MAX = 512;
const LOOSE_READS_AT_ONCE = 16;

/** `packed-refs` parsed, per mirror directory, with the identity of the file it was read from. */
const packedCache = new Map<string, { identity: string; ids: ReadonlySet<string> }>();
const PACKED_CACHE_MAX = 256;

/**
 * Of `ids`, those that are not named by the refs of the repository at `dir`
 * (loose and packed, peeled tag targets included) as far as its files say:
 * the ones git must be asked about.
 */
export async function notRefTips(dir: string, ids: string[]): Promise<string[]> {
  const packed = await packedRefIds(dir);
  let rest = ids.filter((id) => !packed.has(id));
  if (rest.length === 0) return rest;
  const loose = await looseRefIds(dir);
  if (loose.size > 0) rest = rest.filter((id) => !loose.has(id));
  return rest;
}

/**
 * The ids of `packed-refs` (`<id> <name>` lines and `^<id>` peeled lines),
 * cached while the file is the same one: git replaces it by rename, so a new
 * content is a new inode (size and mtime are checked too).
 */
async function packedRefIds(dir: string): Promise<ReadonlySet<string>> {
  const file = join(dir, 'packed-refs');
  const identity = await fileIdentity(file);
  if (identity === null) return new Set();
  const cached = packedCache.get(dir);
  if (cached?.identity === identity) return cached.ids;
  let text: string;
  try {
    text = await readFile(file, 'latin1');
  } catch {
    return new Set();
  }
  const ids = new Set<string>();
  for (const line of text.split('\n')) {
    const id = line.startsWith('^') ? line.slice(1) : line.slice(0, line.indexOf(' '));
    if (OBJECT_ID.test(id)) ids.add(id);
  }
  // The identity read before the content: a file replaced in between is cached under
  // the old identity and read again at the next request (the new inode differs).
  if (packedCache.size >= PACKED_CACHE_MAX && !packedCache.has(dir))
    packedCache.delete(packedCache.keys().next().value as string);
  packedCache.set(dir, { identity, ids });
  return ids;
}

/**
 * The ids of the loose ref files under `dir/refs` (none when there are more
 * than LOOSE_REFS_MAX), read a few at a time (bounded descriptors).
 */
async function looseRefIds(dir: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let entries: Dirent[];
  try {
    entries = await readdir(join(dir, 'refs'), { recursive: true, withFileTypes: true });
  } catch {
    return ids;
  }
  const files = entries.filter((e) => e.isFile() && !e.name.endsWith('.lock'));
  if (files.length > LOOSE_REFS_MAX) return ids;
  for (let i = 0; i < files.length; i += LOOSE_READS_AT_ONCE) {
    const texts = await Promise.all(
      files
        .slice(i, i + LOOSE_READS_AT_ONCE)
        .map((e) => readFile(join(e.parentPath, e.name), 'latin1').catch(() => '')),
    );
    for (const text of texts) {
      const id = text.trimEnd();
      if (OBJECT_ID.test(id)) ids.add(id);
    }
  }
  return ids;
}
