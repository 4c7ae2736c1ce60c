// Read-only questions to git about a mirror or an upstream: what a rev
// names, where HEAD points, which objects are absent, which branch is the
// upstream's default, which full ref a client's ref name means. Each is one
// short git process; none changes the repository.

import { HoardError } from '../core/errors.ts';
import { runGit } from './git-process.ts';

export async function revParse(dir: string, rev: string): Promise<string | null> {
  const r = await runGit(['rev-parse', '--verify', '-q', '--end-of-options', rev], {
    cwd: dir,
    okCodes: [1],
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

export async function headCommit(dir: string): Promise<string | null> {
  return revParse(dir, 'HEAD^{commit}').catch(() => null);
}

export async function symbolicHead(dir: string): Promise<string | null> {
  const r = await runGit(['symbolic-ref', '-q', 'HEAD'], { cwd: dir, okCodes: [1] }).catch(() => null);
  return r && r.code === 0 ? r.stdout.trim() : null;
}

/** Object ids of `ids` absent from the repository at `dir`. */
export async function missingObjects(dir: string, ids: string[]): Promise<string[]> {
  const r = await runGit(['cat-file', '--batch-check=%(objectname)'], {
    cwd: dir,
    input: `${ids.join('\n')}\n`,
  });
  const missing: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.endsWith(' missing')) missing.push(line.slice(0, -8));
  }
  return missing;
}

/** The branch the upstream's HEAD points at (`refs/heads/…`), or undefined when it does not say. */
export async function upstreamHeadBranch(
  url: string,
  opts: { timeoutMs: number; signal: AbortSignal },
): Promise<string | undefined> {
  const r = await runGit(['ls-remote', '--symref', '--', url, 'HEAD'], opts);
  return /^ref: (refs\/heads\/\S+)\tHEAD$/m.exec(r.stdout)?.[1];
}

/**
 * The full ref and commit a client's ref means in the mirror at `dir`: the
 * HEAD branch for none (or `HEAD`), a full `refs/…` name as given, else a
 * branch, then a tag. HOARD_EBAD_REQUEST for a name git would not accept,
 * HOARD_EREF_NOT_FOUND when nothing matches.
 */
export async function resolveRefName(
  dir: string,
  key: string,
  ref: string | undefined,
  timeoutMs: number,
): Promise<{ ref: string; commit: string }> {
  let full: string;
  if (ref === undefined || ref === '' || ref === 'HEAD') {
    full = (await runGit(['symbolic-ref', 'HEAD'], { cwd: dir, timeoutMs })).stdout.trim();
  } else {
    if (!/^[A-Za-z0-9_][A-Za-z0-9._/+-]*$/.test(ref) || ref.includes('..') || ref.endsWith('.lock'))
      throw new HoardError('HOARD_EBAD_REQUEST', `invalid ref name ${JSON.stringify(ref)}`);
    full = ref.startsWith('refs/') ? ref : '';
    if (!full) {
      for (const c of [`refs/heads/${ref}`, `refs/tags/${ref}`]) {
        if ((await revParse(dir, c)) !== null) {
          full = c;
          break;
        }
      }
    }
  }
  const commit = full ? await revParse(dir, `${full}^{commit}`) : null;
  if (!commit)
    throw new HoardError('HOARD_EREF_NOT_FOUND', `ref ${ref ?? 'HEAD'} not found in ${key}`, {
      details: { repo: key, ref: ref ?? 'HEAD' },
    });
  return { ref: full, commit };
}
