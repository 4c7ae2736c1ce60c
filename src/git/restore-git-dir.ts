// A restore's `.git` (restore.ts): which archive entries are extracted
// (snapshotEntryPolicy), the moment the extraction has written all of `.git`
// (so the fetch can start while the work tree is still written), and the
// HEAD and config restore writes itself in place of the archive's.

import { lstatSync, mkdirSync, type Stats, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type EntryInfo, unsafe } from '../archive/safe-extract.ts';
import { HoardError } from '../core/errors.ts';
import { snapshotEntryPolicy } from './snapshot-entry-policy.ts';
import { snapshotGitConfig } from './snapshot-git-config.ts';

/**
 * The snapshot policy, plus the moment `.git` is complete: snapshot entries
 * are sorted by path bytes, so the first entry outside `.git` that sorts
 * after every `.git/…` path means all of `.git` was written (the extractor
 * finishes an entry before it shows the next). `ready` runs then (once). An
 * archive that writes into `.git` after that point (not sorted: not one
 * hoard made) is refused rather than racing the git processes started; the
 * skipped HEAD and config may come anywhere.
 */
export function gitFirstPolicy(ready: () => void): (e: EntryInfo) => 'extract' | 'skip' {
  let past = false;
  return (e) => {
    const decision = snapshotEntryPolicy(e);
    const inGit = e.name === '.git' || e.name.startsWith('.git/');
    if (inGit && past && decision === 'extract')
      throw unsafe(e.name, '.git entries must come before the work tree (a snapshot is sorted by path)');
    if (!inGit && !past && e.name > '.git/') {
      past = true;
      ready();
    }
    return decision;
  };
}

/** Writes `.git/HEAD` and `.git/config` (the archive's were skipped) into the extracted `.git`. */
export function writeGitMetadata(dir: string, commit: string, originUrl: string): void {
  const gitDir = join(dir, '.git');
  // The policy admits `.git` only as a directory; an archive without one must not let git
  // discover an enclosing repository (GIT_DIR is explicit too).
  let st: Stats | undefined;
  try {
    st = lstatSync(gitDir);
  } catch {}
  if (!st?.isDirectory())
    throw new HoardError('HOARD_EARCHIVE_UNSAFE', 'the snapshot has no .git directory', {
      hint: 'the archive is not a hoard snapshot',
    });
  for (const d of ['objects/pack', 'objects/info', 'refs/heads', 'refs/tags'])
    mkdirSync(join(gitDir, d), { recursive: true });
  writeFileSync(join(gitDir, 'HEAD'), `${commit}\n`, { flag: 'wx' });
  writeFileSync(join(gitDir, 'config'), snapshotGitConfig(originUrl), { flag: 'wx' });
}
