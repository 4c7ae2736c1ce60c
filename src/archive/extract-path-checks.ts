// The extractor's path rules (safe-extract.ts): an entry's name must be a
// relative tree path, a symlink's target must stay inside the directory
// (lexically when the link is made, physically once every entry is out), and
// every refusal is one HOARD_EARCHIVE_UNSAFE error naming the entry, the
// same for the extractor's own checks and a caller's policy.

import { realpath } from 'node:fs/promises';
import { posix, sep } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { validateTreePath } from '../core/tree-path.ts';

/** A refusal of one entry (also for policies). */
export function unsafe(entry: string, why: string): HoardError {
  return new HoardError('HOARD_EARCHIVE_UNSAFE', `unsafe archive entry ${JSON.stringify(entry)}: ${why}`, {
    hint: 'the archive was refused and nothing was written outside the staging directory',
    details: { entry },
  });
}

/** An entry's name as a validated relative path (a trailing slash, leading `./` dropped), else a refusal. */
export function checkName(raw: string): string {
  const name = raw.replace(/\/+$/, '');
  if (raw.startsWith('/')) throw unsafe(raw, 'absolute path');
  if (name.split('/').includes('..')) throw unsafe(raw, 'path climbs out of the directory');
  try {
    return validateTreePath(name.replace(/^(\.\/)+/, ''));
  } catch (err) {
    throw unsafe(raw, (err as Error).message);
  }
}

/** Resolves a symlink target lexically against the link's directory; null if it escapes. */
export function resolveInside(linkPath: string, target: string): string | null {
  if (target === '' || target.includes('\0')) return null;
  if (target.startsWith('/') || /^[A-Za-z]:[\\/]/.test(target) || target.includes('\\')) return null;
  const joined = posix.normalize(posix.join(posix.dirname(linkPath), target));
  if (joined === '..' || joined.startsWith('../') || posix.isAbsolute(joined)) return null;
  return joined;
}

/**
 * Physical check of every link made under `root` (absolute paths): chains of
 * in-archive links must not lead out. A dangling link is harmless (it points
 * inside the directory, or the lexical check would have refused it).
 */
export async function checkLinksInside(links: readonly string[], root: string): Promise<void> {
  for (const l of links) {
    let real: string;
    try {
      real = await realpath(l);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // dangling inside the directory: harmless
      if (code === 'ELOOP') throw unsafe(l.slice(root.length + 1), 'symlink loop');
      throw err;
    }
    if (real !== root && !real.startsWith(root + sep))
      throw unsafe(l.slice(root.length + 1), 'symlink resolves outside the directory');
  }
}
