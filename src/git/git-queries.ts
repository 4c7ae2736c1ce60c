// Read-only questions to git about a mirror or an upstream: what a rev
// names, where HEAD points, which objects are absent, which branch is the
// upstream's default, which full ref a client's ref name means. Each is one
// short git process; none changes the repository. The one asked on every
// snapshot request (which commit a ref names) reads the ref files itself.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { runGit } from './git-process.ts';
import { OBJECT_ID } from './object-id.ts';

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

// ---- refs read in-process ---------------------------------------------------
//
// The stable snapshot URL's answer is on the critical path of every `hoard
// git restore`, and asking git which commit the HEAD branch names took two
// processes (`symbolic-ref`, `rev-parse`: 60-170 ms under load, issue 16).
// The files say it: `HEAD`, the loose ref, else its line in `packed-refs`.
// They are read at every request, never cached, so the answer is exactly as
// fresh as the mirror on disk (what the freshness check just ensured) — the
// same files, in git's order (a loose ref wins over `packed-refs`; both are
// replaced atomically by rename, and `pack-refs` writes `packed-refs` before
// it deletes a loose file, so no moment shows neither). What is cached is
// only what cannot change: which commit an object id peels to (a branch names
// a commit, a tag may name a tag object); the first request after a ref moved
// asks git once. Anything unusual (a symbolic ref other than HEAD's, a name
// outside the plain form, an unreadable file) goes to git as before.

/** A full ref name whose file path is the name itself (no `..`, `//`, dot-segments, lock names). */
const PLAIN_REF = /^refs\/(?:[A-Za-z0-9_+-][A-Za-z0-9._+-]*\/)*[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/;
/** Object id → the commit it peels to. Ids are names of immutable content: never stale. */
const peeled = new Map<string, string>();
const PEELED_MAX = 4096;

/** What `dir`'s ref files say of `full`: its object id, null when absent, undefined when git must answer. */
async function refFromFiles(dir: string, full: string): Promise<string | null | undefined> {
  if (!PLAIN_REF.test(full) || full.endsWith('.lock') || full.includes('..')) return undefined;
  try {
    const loose = (await readFile(join(dir, full), 'latin1')).trimEnd();
    return OBJECT_ID.test(loose) ? loose : undefined; // `ref: …` (symbolic) or garbage: git decides
  } catch (err) {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'EISDIR') && !isErrno(err, 'ENOTDIR')) return undefined;
  }
  let packed: string;
  try {
    packed = await readFile(join(dir, 'packed-refs'), 'latin1');
  } catch (err) {
    return isErrno(err, 'ENOENT') ? null : undefined;
  }
  // A line `<id> <name>`: names hold no spaces or newlines, so ` <name>\n`
  // after an id at the start of a line is that ref and no other.
  const needle = ` ${full}\n`;
  for (let at = packed.indexOf(needle); at !== -1; at = packed.indexOf(needle, at + 1)) {
    const start = packed.lastIndexOf('\n', at - 1) + 1;
    const id = packed.slice(start, at);
    if (OBJECT_ID.test(id)) return id;
  }
  return packed.endsWith('\n') || packed === '' ? null : undefined;
}

/** The commit `id` peels to (a git process only the first time an id is seen), or null. */
async function peelToCommit(dir: string, id: string): Promise<string | null> {
  const known = peeled.get(id);
  if (known) return known;
  const commit = await revParse(dir, `${id}^{commit}`);
  if (commit) {
    if (peeled.size >= PEELED_MAX) peeled.delete(peeled.keys().next().value as string);
    peeled.set(id, commit);
  }
  return commit;
}

/** Which branch `dir`'s HEAD names, from its file (undefined: ask git). */
async function headRefFromFile(dir: string): Promise<string | undefined> {
  const head = await readFile(join(dir, 'HEAD'), 'latin1').catch(() => '');
  const m = /^ref: (refs\/heads\/\S+)\n?$/.exec(head);
  return m && PLAIN_REF.test(m[1]) ? m[1] : undefined;
}

/** The commit the full ref `full` names in `dir` (peeled), or null. */
async function refCommit(dir: string, full: string): Promise<string | null> {
  const id = await refFromFiles(dir, full);
  if (id === undefined) return revParse(dir, `${full}^{commit}`);
  return id === null ? null : peelToCommit(dir, id);
}

/** Whether the full ref `full` exists in `dir` (`rev-parse --verify` of it, from the files when they say). */
async function refExists(dir: string, full: string): Promise<boolean> {
  const id = await refFromFiles(dir, full);
  if (id === undefined) return (await revParse(dir, full)) !== null;
  return id !== null;
}

/**
 * The full ref and commit a client's ref means in the mirror at `dir`: the
 * HEAD branch for none (or `HEAD`), a full `refs/…` name as given, else a
 * branch, then a tag. HOARD_EBAD_REQUEST for a name git would not accept,
 * HOARD_EREF_NOT_FOUND when nothing matches. Read from the ref files (see
 * above); git answers what they do not settle.
 */
export async function resolveRefName(
  dir: string,
  key: string,
  ref: string | undefined,
  timeoutMs: number,
): Promise<{ ref: string; commit: string }> {
  let full: string;
  if (ref === undefined || ref === '' || ref === 'HEAD') {
    full =
      (await headRefFromFile(dir)) ??
      (await runGit(['symbolic-ref', 'HEAD'], { cwd: dir, timeoutMs })).stdout.trim();
  } else {
    if (!/^[A-Za-z0-9_][A-Za-z0-9._/+-]*$/.test(ref) || ref.includes('..') || ref.endsWith('.lock'))
      throw new HoardError('HOARD_EBAD_REQUEST', `invalid ref name ${JSON.stringify(ref)}`);
    full = ref.startsWith('refs/') ? ref : '';
    if (!full) {
      for (const c of [`refs/heads/${ref}`, `refs/tags/${ref}`]) {
        if (await refExists(dir, c)) {
          full = c;
          break;
        }
      }
    }
  }
  const commit = full ? await refCommit(dir, full) : null;
  if (!commit)
    throw new HoardError('HOARD_EREF_NOT_FOUND', `ref ${ref ?? 'HEAD'} not found in ${key}`, {
      details: { repo: key, ref: ref ?? 'HEAD' },
    });
  return { ref: full, commit };
}
