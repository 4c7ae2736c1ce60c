// Step 4 of a restore (restore.ts): catching up through the proxy. The fetch
// of the one ref the server resolved (negotiating from the snapshot's
// commit), started as soon as the extraction has written `.git`, then the
// checkout of the ref: in place (four small files) when the fetch left the
// branch at the snapshot's commit, else by git.

import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Git } from './restore-git.ts';

/** Fetches the restored ref through the proxy (see below), negotiating from the snapshot's commit. */
export async function fetchRef(
  git: Git,
  dir: string,
  snapshotCommit: string,
  resolvedRef: string | undefined,
): Promise<void> {
  // A ref at the snapshot's commit, so the fetch negotiates from it (detached
  // HEAD alone is not offered): a loose ref file written here rather than by
  // `git update-ref`, so that the fetch is spawned before this call returns
  // (see startGit). The commit id was checked to be hex.
  const temp = join(dir, '.git', 'refs', 'hoard-restore');
  mkdirSync(temp);
  writeFileSync(join(temp, 'snapshot'), `${snapshotCommit}\n`, { flag: 'wx' });
  try {
    // Only the ref restored (the server named it: X-Hoard-Ref), not every branch
    // and tag: the snapshot's pack holds the history of its commit alone, so a
    // fetch of all refs index-packs every other branch's and tag's objects and
    // was most of a restore (issue 16). Tags reachable from that history are
    // still auto-followed, as `git clone --single-branch` does; the remote keeps
    // the usual wide refspec, so a later `git fetch` brings the other branches.
    // (The other choice, the mirror's tips in the snapshot's packed-refs, would
    // name objects the pack lacks and make the archive depend on the mirror's
    // refs, not on the commit alone.) A server that named no branch or tag: all.
    const full = resolvedRef && /^refs\/(heads|tags)\/./.test(resolvedRef) ? resolvedRef : undefined;
    if (full) {
      const dst = full.startsWith('refs/heads/')
        ? `refs/remotes/origin/${full.slice('refs/heads/'.length)}`
        : full;
      await git(['fetch', '-q', 'origin', `+${full}:${dst}`]);
    } else await git(['fetch', '-q', '--tags', 'origin']);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

/** A branch name restore writes as files itself: plain path segments, nothing git would refuse. */
const PLAIN_BRANCH = /^(?:[A-Za-z0-9_+-][A-Za-z0-9._+-]*\/)*[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/;

/**
 * The checkout when the fetch left the branch where the snapshot is (the
 * usual case: the snapshot is generated from the ref the server just
 * resolved): the work tree, the index and HEAD's commit are already right and
 * verified, so what `git checkout -B <b> --track origin/<b>` would do is
 * writing four small files — the branch, HEAD, the branch's tracking config
 * and origin/HEAD — without a git process that re-reads and re-stats the
 * whole index (60-120 ms of an eslint restore). false: not that case (git does it).
 */
function checkoutInPlace(dir: string, snapshotCommit: string, head: string): boolean {
  if (!PLAIN_BRANCH.test(head) || head.endsWith('.lock') || head.includes('..')) return false;
  const gitDir = join(dir, '.git');
  let tip: string;
  try {
    tip = readFileSync(join(gitDir, 'refs', 'remotes', 'origin', head), 'latin1').trim();
  } catch {
    return false; // packed or absent: ask git
  }
  if (tip !== snapshotCommit) return false;
  const branchFile = join(gitDir, 'refs', 'heads', head);
  mkdirSync(dirname(branchFile), { recursive: true });
  writeFileSync(branchFile, `${tip}\n`, { flag: 'wx' });
  writeFileSync(join(gitDir, 'refs', 'remotes', 'origin', 'HEAD'), `ref: refs/remotes/origin/${head}\n`);
  appendFileSync(
    join(gitDir, 'config'),
    `[branch "${head}"]\n\tremote = origin\n\tmerge = refs/heads/${head}\n`,
  );
  writeFileSync(join(gitDir, 'HEAD'), `ref: refs/heads/${head}\n`); // last: HEAD names a branch that exists
  return true;
}

/** Checks out the ref after fetchRef; returns the commit checked out. */
export async function checkoutRef(
  git: Git,
  dir: string,
  snapshotCommit: string,
  ref: string | undefined,
  resolvedRef: string | undefined,
): Promise<string> {
  const exists = (name: string) =>
    git(['rev-parse', '--verify', '-q', name], [1, 128]).then((r) => r.code === 0);
  let branch: string | undefined;
  if (ref === undefined) {
    // The server said which branch its HEAD is (X-Hoard-Ref); else ask the remote.
    const head = resolvedRef?.startsWith('refs/heads/') ? resolvedRef.slice('refs/heads/'.length) : undefined;
    if (head && checkoutInPlace(dir, snapshotCommit, head)) return snapshotCommit;
    const tracking = `refs/remotes/origin/${head}`;
    const tip = head
      ? (await git(['rev-parse', '--verify', '-q', `${tracking}^{commit}`], [1, 128])).stdout.trim()
      : '';
    if (head && tip) {
      // The common case in two steps, not five: origin/HEAD and the checkout touch different files.
      for (const r of await Promise.allSettled([
        git(['symbolic-ref', 'refs/remotes/origin/HEAD', tracking]),
        git(['checkout', '-q', '-B', head, '--track', `origin/${head}`]),
      ]))
        if (r.status === 'rejected') throw r.reason;
      return tip;
    }
    await git(['remote', 'set-head', 'origin', '--auto']);
    const sym = (await git(['symbolic-ref', 'refs/remotes/origin/HEAD'])).stdout.trim();
    branch = sym.replace(/^refs\/remotes\/origin\//, '');
  } else {
    const name = ref.replace(/^refs\/heads\//, '');
    if (await exists(`refs/remotes/origin/${name}`)) branch = name;
    else {
      await git(['checkout', '-q', '--detach', `${ref.replace(/^refs\/tags\//, '')}^{commit}`]);
      return (await git(['rev-parse', 'HEAD'])).stdout.trim();
    }
  }
  await git(['checkout', '-q', '-B', branch, '--track', `origin/${branch}`]);
  return (await git(['rev-parse', '--verify', `refs/remotes/origin/${branch}^{commit}`])).stdout.trim();
}
