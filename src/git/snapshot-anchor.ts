// Anchor packs: the expensive part of a snapshot, shared between commits.
//
// A snapshot's pack is built from scratch (no reuse of the mirror's deltas or
// objects: that is what keeps its bytes independent of how the mirror's packs
// look), and for an eslint-sized history that single-threaded delta search
// took 12-20 s, once per commit. Most of it is the same work every time: the
// history below the commit. So a long history is packed in two parts:
//
//   anchor  the commit's first-parent ancestor A whose first-parent depth
//           (counted from the root, `rev-list --count --first-parent`) is the
//           largest multiple of `step` below the commit's: a pure function of
//           the commit graph, so every server picks the same A for a commit;
//           its pack (everything reachable from A) is built once per `step`
//           commits of the branch and kept on this server's disk;
//   sub     with `subStep` (64 by default): the first-parent ancestor S at
//           the largest multiple of `subStep` below the commit's depth, when
//           it is above A: the pack of everything reachable from S and not
//           from A, built once per `subStep` commits and kept like A's;
//   rest    everything reachable from the commit and not from S (or A),
//           built per commit (small, fast); not thin: its deltas stay inside it.
//
// Without the sub-anchor the rest grew to up to 511 commits' objects: ≈ 1.2 s
// of an eslint snapshot's ≈ 2.5 s, for every commit; with it, at most 63.
//
// Both are built with the same deterministic pack-objects settings, so the
// archive is still a function of the commit alone. A history shorter than
// `step` gets one pack, as before.
//
// Anchor packs live in `<dir>/<sha256 of repo key>/<anchor commit>/`, written
// into a temp directory and renamed (a crash leaves no half pack), built
// single-flight. A plan hard-links them into its own work directory before
// using them, so removing old anchors (all but the newest KEEP per repo) never
// pulls a file from under an archive being streamed.

import { randomUUID } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { hexOf, sha256 } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { SingleFlight } from '../core/single-flight.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { runGit } from './git-process.ts';

/** Anchor directories kept per repository (the current one and its predecessor). */
const KEEP = 2;

/** `git pack-objects` with every setting that affects its output fixed; reads revs from `input`. */
export async function deterministicPack(
  repoDir: string,
  input: string,
  outDir: string,
  signal?: AbortSignal,
): Promise<string[]> {
  await runGit(
    [
      '-c',
      'pack.writeReverseIndex=false',
      '-c',
      'pack.island=',
      '-c',
      'core.bigFileThreshold=512m',
      '-c',
      'pack.packSizeLimit=0',
      'pack-objects',
      '--revs',
      '-q',
      '--threads=1',
      '--no-reuse-delta',
      '--no-reuse-object',
      '--no-use-bitmap-index',
      '--delta-base-offset',
      '--window=10',
      '--depth=50',
      '--compression=6',
      '--index-version=2',
      join(outDir, 'pack'),
    ],
    { cwd: repoDir, signal, input },
  );
  const names = (await readdir(outDir)).sort();
  if (names.length !== 2 || !names[0].endsWith('.idx') || !names[1].endsWith('.pack'))
    throw new HoardError('HOARD_EGIT', `git pack-objects wrote unexpected files: ${names.join(', ')}`);
  return names;
}

/**
 * The anchors of `commit` (see the header): the anchor at the largest
 * multiple of `step` below its first-parent depth, and the sub-anchor at the
 * largest multiple of `subStep` below it, when that is above the anchor (else
 * null). Both null for a history no longer than `step`; no sub-anchor when
 * `subStep` is 0. One `rev-list --count` and one `rev-parse`.
 */
export async function anchorsOf(
  repoDir: string,
  commit: string,
  step: number,
  subStep: number,
  signal?: AbortSignal,
): Promise<{ anchor: string | null; sub: string | null }> {
  const out = await runGit(['rev-list', '--count', '--first-parent', commit], { cwd: repoDir, signal });
  const depth = Number(out.stdout.trim());
  if (!Number.isSafeInteger(depth) || depth <= step) return { anchor: null, sub: null };
  const back = depth - Math.floor((depth - 1) / step) * step; // 1..step
  const subBack = subStep > 0 ? depth - Math.floor((depth - 1) / subStep) * subStep : back;
  const revs = [`${commit}~${back}^{commit}`];
  if (subBack < back) revs.push(`${commit}~${subBack}^{commit}`);
  // Not --verify: it takes one rev; a rev that does not resolve fails the command all the same.
  const rev = await runGit(['rev-parse', ...revs], { cwd: repoDir, signal });
  const [anchor, sub] = rev.stdout.trim().split('\n');
  return { anchor, sub: sub ?? null };
}

export class AnchorPacks {
  readonly dir: string;
  readonly step: number;
  /** First-parent commits per sub-anchor (0: none); see the header. */
  readonly subStep: number;
  /** Anchor packs built by this instance (tests, logs). */
  built = 0;
  #flight = new SingleFlight<string, string>();

  /**
   * `subStep` applies only when it divides `step` into smaller parts (else
   * none: a tiny test step gets the two-pack layout).
   */
  constructor(
    dir: string,
    step: number = DEFAULTS.snapshotAnchorStep,
    subStep: number = DEFAULTS.snapshotSubAnchorStep,
  ) {
    this.dir = dir;
    this.step = step;
    this.subStep = subStep > 0 && subStep < step && step % subStep === 0 ? subStep : 0;
  }

  /**
   * Hard-links the anchor pack of `anchor` (built now if this server has none)
   * into `into`; returns the file names (`.idx`, `.pack`).
   */
  async linkInto(
    key: string,
    repoDir: string,
    anchor: string,
    into: string,
    signal?: AbortSignal,
    base?: string,
  ): Promise<string[]> {
    const final = await this.ensure(key, repoDir, anchor, signal, base);
    const names = (await readdir(final)).sort();
    for (const name of names) {
      try {
        await link(join(final, name), join(into, name));
      } catch (err) {
        if (!isErrno(err, 'EXDEV')) throw err;
        await copyFile(join(final, name), join(into, name));
      }
    }
    return names;
  }

  /**
   * The directory of the anchor pack of `anchor`, built now if this server has
   * none (single-flight: a snapshot request joins a prebuild in flight).
   */
  ensure(key: string, repoDir: string, anchor: string, signal?: AbortSignal, base?: string): Promise<string> {
    const repoRoot = join(this.dir, hexOf(sha256(key)));
    // A sub-anchor's pack (`anchor ^base`) is filed as `<sub>-<anchor>`.
    const final = join(repoRoot, base ? `${anchor}-${base}` : anchor);
    const input = base ? `${anchor}\n^${base}\n` : `${anchor}\n`;
    return this.#flight.do(final, () => this.#ensure(repoRoot, final, repoDir, input, signal));
  }

  async #ensure(
    repoRoot: string,
    final: string,
    repoDir: string,
    input: string,
    signal?: AbortSignal,
  ): Promise<string> {
    if (await stat(final).catch(() => null)) return final;
    await mkdir(repoRoot, { recursive: true });
    const tmp = join(this.dir, `tmp-${randomUUID()}`);
    await mkdir(tmp);
    try {
      await deterministicPack(repoDir, input, tmp, signal);
      this.built++;
      try {
        await rename(tmp, final);
      } catch (err) {
        // Another process of this data dir won the race: its pack is the same bytes.
        if (!isErrno(err, 'ENOTEMPTY') && !isErrno(err, 'EEXIST')) throw err;
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    await this.#prune(repoRoot, final);
    return final;
  }

  /**
   * Removes all but the KEEP newest anchors and the KEEP newest sub-anchors
   * of a repository, each kind counted apart (plans hold hard links of theirs).
   */
  async #prune(repoRoot: string, keep: string): Promise<void> {
    const dirs = await Promise.all(
      (await readdir(repoRoot)).map(async (n) => ({
        p: join(repoRoot, n),
        sub: n.includes('-'),
        m: (await stat(join(repoRoot, n))).mtimeMs,
      })),
    );
    dirs.sort((a, b) => b.m - a.m);
    for (const sub of [false, true])
      for (const d of dirs.filter((x) => x.sub === sub).slice(KEEP))
        if (d.p !== keep) await rm(d.p, { recursive: true, force: true });
  }
}
