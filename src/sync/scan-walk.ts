// A scan's first phase: walking a synced directory's folders (readdir
// only), applying the ignore rules (.hoardignore files and the built-in
// ones), skipping names that are not valid tree paths (with a warning), and
// collecting the temp files of dead pull processes so pull can remove them.
// The readdir is synchronous, like the scan's lstats after it: a folder
// listing is kernel-cached metadata, and a thread-pool round trip per
// folder (a node_modules has thousands) costs more than the call, most of
// all on a loaded machine where each hand-off waits for a time slice.

import type { Dirent } from 'node:fs';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { MAX_PATH_BYTES, validateTreePath } from '../core/tree-path.ts';
import { isErrno, isPidAlive, pidOfTempName } from '../store/fs-atomic.ts';
import { IgnoreRules, isTempName, STATE_DIR } from './ignore-rules.ts';

export interface WalkResult {
  /** Regular files and symlinks, in walk order (relative paths). */
  files: string[];
  /** Empty folders (after the ignore rules). */
  dirs: string[];
  /** Absolute paths of temp files left by pull processes that are gone. */
  staleTemps: string[];
  /** Some name has a character above U+D7FF (where code-unit order and byte order can differ). */
  wide: boolean;
}

const WIDE = /[\uD800-\uFFFF]/;
/** Printable ASCII without a backslash: a name that needs no check beyond its path's length. */
const PLAIN_NAME = /^[\x20-\x5b\x5d-\x7e]+$/;
/** What validateTreePath refuses at the start of a path. */
const DRIVE_LETTER = /^[A-Za-z]:/;

export async function walkDirectory(
  root: string,
  warn: (message: string) => void,
  signal: AbortSignal | undefined,
): Promise<WalkResult> {
  const files: string[] = [];
  const dirs: string[] = [];
  const staleTemps: string[] = [];
  let wide = false;

  const walk = async (rel: string, relBytes: number, rules: IgnoreRules): Promise<number> => {
    signal?.throwIfAborted();
    let dirents: Dirent[];
    try {
      dirents = readdirSync(join(root, rel), { withFileTypes: true });
    } catch (err) {
      if (rel !== '' && isErrno(err, 'ENOENT', 'ENOTDIR')) return 0; // removed while scanning
      if (rel === '' && isErrno(err, 'ENOENT'))
        throw new HoardError('HOARD_EUSAGE', `directory ${root} does not exist`);
      throw err;
    }
    // Not a Set of every name per folder: only whether the ignore file is among them.
    const here = await rules.enter(root, rel, { has: (name) => dirents.some((d) => d.name === name) });
    /** Rules from .hoardignore files apply here (else only the built-in ones, checked below). */
    const scoped = here.scopes.length > 0;
    let kept = 0;
    for (const d of dirents) {
      const name = d.name;
      const isDir = d.isDirectory();
      if (!wide && WIDE.test(name)) wide = true;
      if (!isDir && isTempName(name)) {
        const pid = pidOfTempName(name);
        if (pid !== undefined && pid !== process.pid && !isPidAlive(pid))
          staleTemps.push(join(root, rel, name));
        continue;
      }
      // IgnoreRules.ignores' built-in rule for folders (temp files: above).
      if (isDir && name === STATE_DIR) continue;
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (scoped && here.ignores(childRel, isDir)) continue;
      // A name from readdir has no '/' or NUL and is never '.' or '..'; a
      // plain ASCII one (no backslash) under a valid folder makes a valid
      // path unless too long or, at the top, drive-letter-like. Only other
      // names pay the full check (which splits the whole path).
      let childBytes = relBytes + (rel === '' ? 0 : 1) + name.length;
      if (!PLAIN_NAME.test(name) || childBytes > MAX_PATH_BYTES || (rel === '' && DRIVE_LETTER.test(name))) {
        try {
          validateTreePath(childRel);
        } catch (err) {
          warn(`skipping ${JSON.stringify(childRel)}: ${(err as Error).message}`);
          continue;
        }
        childBytes = Buffer.byteLength(childRel);
      }
      if (isDir) {
        const n = await walk(childRel, childBytes, here);
        if (n === 0) dirs.push(childRel);
        kept++;
      } else if (d.isFile() || d.isSymbolicLink()) {
        files.push(childRel);
        kept++;
      } else {
        warn(`skipping ${JSON.stringify(childRel)}: not a regular file, folder or symlink`);
      }
    }
    return kept;
  };
  await walk('', 0, IgnoreRules.empty());
  return { files, dirs, staleTemps, wide };
}
