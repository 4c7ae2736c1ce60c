// The `.git/config` a snapshot carries and a restore writes: origin at the
// URL the client used, the usual fetch refspec, nothing else. A module of its
// own so that `hoard git restore` does not load the snapshot generator
// (snapshot-archive.ts and its pack and tar modules) for one string.

import { HoardError } from '../core/errors.ts';

/** The `.git/config` of a snapshot. */
export function snapshotGitConfig(originUrl: string): string {
  if (/[\n\r"\\]/.test(originUrl)) throw new HoardError('HOARD_EBAD_REQUEST', 'invalid origin URL');
  return [
    '[core]',
    '\trepositoryformatversion = 0',
    '\tfilemode = true',
    '\tbare = false',
    '\tlogallrefupdates = true',
    '[remote "origin"]',
    `\turl = ${originUrl}`,
    '\tfetch = +refs/heads/*:refs/remotes/origin/*',
    '',
  ].join('\n');
}
