// The commit-graph file of a snapshot (`.git/objects/info/commit-graph`):
// the parents, root trees, dates and generation numbers of every commit of
// the snapshot's history, so git walks that history without inflating
// commits from the packs.
//
// Why a restore needs it (issue 16): the follow-up `git fetch` auto-follows
// the tags of the restored history (385 for eslint), most on old commits,
// and then checks the new refs' connectivity (`git rev-list --objects
// --stdin --not --all`), which walks the whole history down to the oldest
// tagged commit: ≈ 11,000 commits parsed from the pack, 60–250 ms of a
// restore's fetch under load. With a commit-graph the same walk reads fixed
// records (the fetch alone, 10 alternated pairs at load 4–5: CPU median
// 200 → 135 ms, wall 260 → 190 ms). Written by the
// restore itself instead, it cost as much as it saved (measured).
//
// Deterministic like the rest of the archive (same bytes for the same commit
// and git version): written by `git commit-graph write` in a scratch
// repository that holds only the snapshot's own packs (hard links) and one
// ref at the commit, with hoard's usual environment (no system or global
// config) and no existing graph or alternates, so nothing of the mirror's
// state (its own commit-graph chain, changed-path filters) is inherited.
// Commits are sorted by id in the file, so how they are split over the
// anchor packs does not matter.

import { link, mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { runGit } from './git-process.ts';

/** Where the graph goes in the archive (and in a restored repository). */
export const COMMIT_GRAPH_PATH = '.git/objects/info/commit-graph';

/**
 * Writes the commit-graph of `commit`'s history from `packFiles` (the
 * snapshot's .pack and .idx files) in `workDir/graph`; returns its path.
 */
export async function writeSnapshotCommitGraph(
  workDir: string,
  packFiles: string[],
  commit: string,
  signal?: AbortSignal,
): Promise<string> {
  const gitDir = join(workDir, 'graph');
  await mkdir(join(gitDir, 'objects', 'pack'), { recursive: true });
  await mkdir(join(gitDir, 'objects', 'info'));
  await mkdir(join(gitDir, 'refs', 'heads'), { recursive: true });
  for (const f of packFiles) await link(f, join(gitDir, 'objects', 'pack', basename(f)));
  await writeFile(join(gitDir, 'HEAD'), 'ref: refs/heads/snapshot\n');
  await writeFile(join(gitDir, 'refs', 'heads', 'snapshot'), `${commit}\n`);
  await runGit(
    [
      // Pinned rather than left to defaults a server's git could be configured with.
      '-c',
      'core.commitGraph=true',
      '-c',
      'commitGraph.generationVersion=2',
      'commit-graph',
      'write',
      '--reachable',
      '--no-progress',
    ],
    { cwd: gitDir, env: { GIT_DIR: gitDir }, signal },
  );
  const file = join(gitDir, 'objects', 'info', 'commit-graph');
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new HoardError('HOARD_EGIT', `git commit-graph write left no graph for ${commit}`);
  return file;
}
