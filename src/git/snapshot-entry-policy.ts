// Which entries of a snapshot archive `hoard git restore` accepts. The
// archive comes from a server or a shared bucket that a token holder may have
// written, so its git metadata is never trusted: anything in `.git` that git
// would read as configuration or run as code (config, hooks, info/,
// alternates, a `gitdir:` file, packed-refs, fsmonitor state…) could make the
// restoring machine run a command or operate on another repository. The
// checkout part of the archive is ordinary data (like any file of a clone),
// except that no path may name a git directory.
//
// Accepted under `.git/` (an allow-list; everything else is refused):
//   .git/                                  a directory (never a file or link)
//   .git/objects/, objects/pack/, objects/info/, refs/, refs/heads/, refs/tags/
//                                          directories
//   .git/objects/pack/pack-<hex>.pack|.idx regular, non-executable files
//   .git/objects/info/commit-graph         a regular, non-executable file:
//                                          data git parses, like the packs
//                                          and their indexes (no split
//                                          chain, no other objects/info file)
//   .git/HEAD, .git/config                 skipped: never written; restore
//                                          writes both itself
// No symlinks or hard links inside `.git` or pointing into it.

import { type EntryInfo, unsafe } from '../archive/safe-extract.ts';

const GIT_DIRS = new Set([
  '.git',
  '.git/objects',
  '.git/objects/pack',
  '.git/objects/info',
  '.git/refs',
  '.git/refs/heads',
  '.git/refs/tags',
]);
const PACK_FILE = /^\.git\/objects\/pack\/pack-[0-9a-f]{40}(?:[0-9a-f]{24})?\.(?:pack|idx)$/;
/** The history's commit-graph (snapshot-commit-graph.ts); one file, never a `commit-graphs/` chain. */
const COMMIT_GRAPH = '.git/objects/info/commit-graph';
const REPLACED = new Set(['.git/HEAD', '.git/config']);
/** Largest `.git/HEAD` / `.git/config` body read (and dropped). */
const MAX_REPLACED_BYTES = 64 * 1024;
/** Characters HFS+ ignores in names (so `.g\u200cit` is `.git` on a Mac). */
const IGNORABLE = /[\u200b-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

/** Whether a path segment would name a git directory on some file system (`.GIT`, `.git.`, `git~1`). */
export function isGitDirName(segment: string): boolean {
  const s = segment
    .replace(IGNORABLE, '')
    .toLowerCase()
    .replace(/[. ]+$/, '');
  return s === '.git' || s === 'git~1';
}

function underGit(path: string): boolean {
  return path === '.git' || path.startsWith('.git/');
}

/** The extractor policy of a snapshot restore: throws HOARD_EARCHIVE_UNSAFE, or says extract/skip. */
export function snapshotEntryPolicy(e: EntryInfo): 'extract' | 'skip' {
  const segments = e.name.split('/');
  const gitIndex = segments.findIndex(isGitDirName);
  if (gitIndex > 0 || (gitIndex === 0 && segments[0] !== '.git'))
    throw unsafe(e.name, 'a path naming a git directory is not allowed outside the top-level .git');
  if (!underGit(e.name)) {
    if (e.type === 'link' && underGit(e.linkname))
      throw unsafe(e.name, 'a hard link into .git is not allowed');
    return 'extract';
  }
  if (e.name === '.git' && e.type !== 'directory')
    throw unsafe(
      e.name,
      `.git must be a directory, not a ${e.type} (a "gitdir:" file or link could point anywhere)`,
    );
  if (GIT_DIRS.has(e.name)) {
    if (e.type !== 'directory') throw unsafe(e.name, `must be a directory, not a ${e.type}`);
    return 'extract';
  }
  if (e.type !== 'file' && e.type !== 'contiguous-file')
    throw unsafe(e.name, `a ${e.type} inside .git is not allowed`);
  if (REPLACED.has(e.name)) {
    if (e.size > MAX_REPLACED_BYTES) throw unsafe(e.name, `${e.size} bytes is too large`);
    return 'skip';
  }
  if (PACK_FILE.test(e.name) || e.name === COMMIT_GRAPH) {
    if (e.mode & 0o111) throw unsafe(e.name, 'an executable file inside .git is not allowed');
    return 'extract';
  }
  throw unsafe(
    e.name,
    'not allowed in a snapshot: restore accepts only .git/objects/pack/pack-*.{pack,idx} (HEAD and config are written by restore itself)',
  );
}
