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
//   rest    everything reachable from the commit and not from A, built per
//           commit (small, fast); not thin: its deltas stay inside it.
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

/** The anchor of `commit` (see the header), or null when its first-parent history is shorter than `step`. */
export async function anchorOf(
  repoDir: string,
  commit: string,
  step: number,
  signal?: AbortSignal,
): Promise<string | null> {
  const out = await runGit(['rev-list', '--count', '--first-parent', commit], { cwd: repoDir, signal });
  const depth = Number(out.stdout.trim());
  if (!Number.isSafeInteger(depth) || depth <= step) return null;
  const back = depth - Math.floor((depth - 1) / step) * step; // 1..step
  const rev = await runGit(['rev-parse', '--verify', '-q', `${commit}~${back}^{commit}`], {
    cwd: repoDir,
    signal,
  });
  return rev.stdout.trim();
}

export class AnchorPacks {
  readonly dir: string;
  readonly step: number;
  /** Anchor packs built by this instance (tests, logs). */
  built = 0;
  #flight = new SingleFlight<string, string>();

  constructor(dir: string, step: number = DEFAULTS.snapshotAnchorStep) {
    this.dir = dir;
    this.step = step;
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
  ): Promise<string[]> {
    const final = await this.ensure(key, repoDir, anchor, signal);
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
  ensure(key: string, repoDir: string, anchor: string, signal?: AbortSignal): Promise<string> {
    const repoRoot = join(this.dir, hexOf(sha256(key)));
    const final = join(repoRoot, anchor);
    return this.#flight.do(final, () => this.#ensure(repoRoot, final, repoDir, anchor, signal));
  }

  async #ensure(
    repoRoot: string,
    final: string,
    repoDir: string,
    anchor: string,
    signal?: AbortSignal,
  ): Promise<string> {
    if (await stat(final).catch(() => null)) return final;
    await mkdir(repoRoot, { recursive: true });
    const tmp = join(this.dir, `tmp-${randomUUID()}`);
    await mkdir(tmp);
    try {
      await deterministicPack(repoDir, `${anchor}\n`, tmp, signal);
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

  /** Removes all but the KEEP newest anchors of a repository (plans hold hard links of theirs). */
  async #prune(repoRoot: string, keep: string): Promise<void> {
    const dirs = await Promise.all(
      (await readdir(repoRoot)).map(async (n) => ({
        p: join(repoRoot, n),
        m: (await stat(join(repoRoot, n))).mtimeMs,
      })),
    );
    dirs.sort((a, b) => b.m - a.m);
    for (const d of dirs.slice(KEEP)) if (d.p !== keep) await rm(d.p, { recursive: true, force: true });
  }
}
