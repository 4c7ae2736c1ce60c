// Step 5 of a restore (restore.ts): the staging directory is renamed into
// place only when its work tree is exactly the commit. The archive is
// untrusted: this check, not the archive, decides what a restore leaves.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HoardError } from '../core/errors.ts';
import type { Git } from './restore-git.ts';

/**
 * Fails unless the work tree in `dir` is exactly `commit`: HEAD, the index
 * equal to its tree, no modified, untracked or ignored file, and nothing
 * inside submodule directories (which a clone leaves empty).
 *
 * `derived`: the index is restore's own, derived from the extraction
 * (restore-index.ts), which holds an entry for every file and link the
 * archive wrote outside `.git` (an empty directory or a hard link makes
 * restore use `git reset` instead), with the ids of the bytes written. The
 * work tree is then exactly the index, and comparing the index with the
 * commit's tree is the whole check: no walk of the work tree.
 */
export async function verifyCheckout(git: Git, dir: string, commit: string, derived: boolean): Promise<void> {
  const bad = (why: string) =>
    new HoardError('HOARD_EARCHIVE_UNSAFE', `the restored work tree is not commit ${commit}: ${why}`, {
      hint: 'the snapshot does not match its commit; nothing was restored',
      details: { commit },
    });
  // Two git processes at once: HEAD, and one comparison. `git status` (with
  // untracked and ignored files) lists staged changes (the index against
  // HEAD), unstaged ones and files the index lacks: all must be absent.
  const [rev, st] = await Promise.allSettled([
    git(['rev-parse', '--verify', '-q', 'HEAD^{commit}'], [1, 128]),
    derived
      ? git(['diff-index', '--cached', '--name-only', '-z', 'HEAD', '--'])
      : git([
          'status',
          '--porcelain=v1',
          '-z',
          '--untracked-files=all',
          '--ignored=matching',
          '--ignore-submodules=none',
        ]),
  ]);
  if (rev.status === 'rejected') throw rev.reason;
  const head = rev.value.stdout.trim();
  if (head !== commit) throw bad(`HEAD is ${head || 'not a commit'}`);
  if (st.status === 'rejected') throw st.reason;
  const status = st.value.stdout;
  if (status !== '')
    throw bad(
      `${derived ? 'the index differs from the commit' : 'git status'}: ${status.split('\0').slice(0, 5).join(', ')}`,
    );
  // A derived index holds no gitlinks (see above), and it equals HEAD's tree:
  // HEAD has none either.
  if (derived) return;
  for (const rec of (await git(['ls-files', '-s', '-z'])).stdout.split('\0')) {
    if (!rec.startsWith('160000 ')) continue;
    const path = rec.slice(rec.indexOf('\t') + 1);
    const inside = await readdir(join(dir, path)).catch(() => []);
    if (inside.length > 0) throw bad(`submodule directory ${path} is not empty`);
  }
}
