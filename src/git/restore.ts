// Restore of a working clone (`hoard git restore`): a working clone from the server's snapshot instead of `git clone`.
//
// 1. HEAD the stable URL (`…/snapshot.tar.zst[?ref=R]`): which blob is
//    current (Content-Location), its digest (ETag), size and commit.
// 2. Download the immutable blob URL in parallel ranges (restoreConcurrency ×
//    restoreRangeBytes, per-range timeout and retry), streaming into zstd
//    decompression and safe extraction in a staging directory next to <dir>;
//    the SHA-256 is verified before the stream ends.
//    The archive is untrusted (whoever could write the snapshot ref or the
//    shared bucket chose its bytes): extraction accepts only the `.git`
//    entries of snapshotEntryPolicy (no hooks, config, info/, alternates,
//    `gitdir:` file…), bounded in uncompressed size and entry count.
// 3. In the staging dir: restore writes `.git/HEAD` (the commit the server
//    named) and `.git/config` (origin = the URL given, nothing else) itself,
//    then `git reset -q` (the archive has no index).
// 4. `git fetch` of that one ref through the proxy (and the tags its history
//    reaches; it runs while step 3 builds and verifies the index) and check out the ref (default: the upstream's HEAD branch), so
//    the result is current even when the snapshot was older. A failed fetch leaves the snapshot's commit checked out and
//    reports `fetchedAfterRestore: false`.
// 5. Verify that the checkout is exactly the commit (HEAD, index = HEAD's
//    tree, a clean `git status` including untracked and ignored files, empty
//    submodule directories), then rename into place. Any failure removes the
//    staging directory: nothing is left in place.
//
// Every git step runs on GIT_DIR=<staging>/.git, GIT_WORK_TREE=<staging>
// (no discovery of an enclosing repository), without system or global
// config, with hooks and fsmonitor off and only http(s) transports; the
// bearer token reaches git as environment configuration, never in argv.
//
// This module runs the steps; the parts are restore-snapshot-head.ts (1),
// restore-git-dir.ts (when `.git` is complete; restore's own HEAD and
// config), restore-index.ts (3), restore-catch-up.ts (4: fetch, checkout),
// restore-verify.ts (5) and restore-git.ts (the git runner of every step).

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { extractTarZst } from '../archive/safe-extract.ts';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { rangedDownload } from '../http/ranged-download.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { checkoutRef, fetchRef } from './restore-catch-up.ts';
import { restoreGit } from './restore-git.ts';
import { gitFirstPolicy, writeGitMetadata } from './restore-git-dir.ts';
import { GitIndexRecorder } from './restore-index.ts';
import { authHeaders, snapshotHead } from './restore-snapshot-head.ts';
import { verifyCheckout } from './restore-verify.ts';

export interface GitRestoreOptions {
  /** `<server>/git/<repo>` (the URL `git clone` would use). */
  url: string;
  dir: string;
  ref?: string;
  token?: string;
  concurrency?: number;
  rangeBytes?: number;
  rangeTimeoutMs?: number;
  /** Skip the fetch after extracting (tests, offline use). */
  noFetch?: boolean;
  /** Where warnings go (default: stderr). */
  onWarning?: (message: string) => void;
  onProgress?: (done: number, total: number) => void;
  onStart?: (total: number) => void;
  /** Uncompressed-size bound (default: from the DEFAULTS.restore* ratio and caps). */
  maxUnpackedBytes?: number;
  /** Entry-count bound (default DEFAULTS.restoreMaxEntries). */
  maxEntries?: number;
}

export interface GitRestoreResult {
  /** HEAD of the restored repository (after the fetch). */
  commit: string;
  /** The commit the snapshot held. */
  snapshotCommit: string;
  /** The snapshot blob. */
  snapshot: Digest;
  bytes: number;
  durationMs: number;
  fetchedAfterRestore: boolean;
  /**
   * When each step ended, in ms since the restore started (a profile of the
   * restore: `head`, `gitDir` (the extraction left `.git`; the fetch starts),
   * `extracted`, `indexed`, `verified`, `fetched`, `checkedOut`, `done`).
   */
  steps: Record<string, number>;
}

/** The uncompressed-size bound of an archive of `size` bytes. */
export function unpackedBound(size: number): number {
  return Math.min(
    DEFAULTS.restoreMaxUnpackedBytes,
    Math.max(DEFAULTS.restoreMinUnpackedBytes, size * DEFAULTS.restoreMaxExpansionRatio),
  );
}

async function emptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return true;
    throw err;
  }
}

export async function gitRestore(opts: GitRestoreOptions): Promise<GitRestoreResult> {
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  const mark = (step: string) => {
    steps[step] = Math.round(performance.now() - t0);
  };
  const base = opts.url.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+\/(.+\/)?git\/.+/.test(base))
    throw new HoardError('HOARD_EUSAGE', `not a hoard git URL: ${base}`, {
      hint: 'use <server-url>/git/<repo>, e.g. http://hoard:7777/git/github.com/acme/app',
    });
  const dir = resolve(opts.dir);
  if (!(await emptyOrMissing(dir)))
    throw new HoardError('HOARD_EUSAGE', `${dir} exists and is not empty`, {
      hint: 'restore into a new directory',
    });
  const headers = authHeaders(opts.token);

  // 1. Which blob is current.
  const { blobUrl, digest, etag, size, snapshotCommit, resolvedRef } = await snapshotHead(
    base,
    opts.ref,
    headers,
  );
  mark('head');

  // 2. Download and extract into a staging directory next to the target.
  await mkdir(dirname(dir), { recursive: true });
  const staging = join(dirname(dir), `.${basename(dir)}.hoard-restore-${randomBytes(4).toString('hex')}`);
  await mkdir(staging);
  let renamed = false;
  // Kills the early fetch's git (a process group) when the restore fails.
  const abort = new AbortController();
  const git = restoreGit(staging, opts.token, abort.signal);
  // The fetch (4) needs only `.git`: it starts as soon as the extraction is
  // past it (below) and runs while the work tree is written, indexed and
  // verified; only the checkout waits for it.
  let gitStarted = false;
  let metadataError: unknown;
  let fetching: Promise<{ err: unknown } | undefined> | undefined;
  // Synchronous up to the fetch's spawn: this runs inside the extraction,
  // which gives the event loop a turn only between input slices, so a chain
  // of awaited steps here started the fetch seconds late (issue 16).
  const startGit = () => {
    if (gitStarted) return;
    gitStarted = true;
    mark('gitDir');
    try {
      writeGitMetadata(staging, snapshotCommit, base);
    } catch (err) {
      metadataError = err; // thrown after the extraction: its own refusals come first
      return;
    }
    if (!opts.noFetch)
      fetching = fetchRef(git, staging, snapshotCommit, resolvedRef).then(
        () => {
          mark('fetched');
          return undefined;
        },
        (err: unknown) => ({ err }),
      );
  };
  try {
    opts.onStart?.(size);
    const download = rangedDownload({
      url: blobUrl,
      size,
      expected: digest,
      etag,
      headers,
      concurrency: opts.concurrency,
      rangeBytes: opts.rangeBytes,
      rangeTimeoutMs: opts.rangeTimeoutMs,
      onProgress: (n) => opts.onProgress?.(n, size),
    });
    const index = new GitIndexRecorder();
    try {
      // Reused range buffers: the extractor is done with each before it asks for the next.
      await extractTarZst(download.ranges(), staging, {
        // The archive's mtimes (the commit time) for files: the index written
        // after them is newer, so git never re-hashes them as racily clean
        // (restore-index.ts). A clone leaves checkout times; tar, these.
        mtimes: true,
        // Not directories': git never reads them (a clone leaves checkout times), and
        // setting them was a path lookup and a utimes per directory (391 for eslint).
        directoryMtimes: false,
        recorder: index,
        policy: gitFirstPolicy(startGit),
        maxBytes: opts.maxUnpackedBytes ?? unpackedBound(size),
        maxEntries: opts.maxEntries ?? DEFAULTS.restoreMaxEntries,
      });
      await download.done;
      mark('extracted');

      // 3. HEAD and config of our own (written when the extraction left .git,
      // or now), then the index: derived from the extraction when it can be,
      // else built by `git reset` (which re-hashes every file).
      startGit();
      if (metadataError) throw metadataError;
      const derived = index.encode(snapshotCommit);
      if (derived) await writeFile(join(staging, '.git', 'index'), derived, { flag: 'wx' });
      else await git(['reset', '-q']);
      mark('indexed');
      await verifyCheckout(git, staging, snapshotCommit, derived !== null);
      mark('verified');
    } catch (err) {
      abort.abort();
      await fetching; // settled before the staging directory is removed
      throw err;
    }

    // 4. Catch up through the proxy.
    let fetched = false;
    let commit = snapshotCommit;
    if (fetching) {
      try {
        const failed = await fetching;
        if (failed) throw failed.err;
        commit = await checkoutRef(git, staging, snapshotCommit, opts.ref, resolvedRef);
        mark('checkedOut');
        fetched = true;
      } catch (err) {
        const info = opts.onWarning ?? ((m: string) => process.stderr.write(`${m}\n`));
        info(
          `hoard: warning: git fetch after the restore failed; ${dir} is at the snapshot's commit ${snapshotCommit}`,
        );
        info(`hoard: ${(err as Error).message}`);
      }
    }
    // 5. Exactly the commit, or nothing. Step 3 verified the snapshot's commit:
    // a second walk is needed only when step 4 may have moved the work tree
    // (a checkout of another commit, or a failure part-way through it).
    const unchanged = opts.noFetch || (fetched && commit === snapshotCommit);
    if (!unchanged) await verifyCheckout(git, staging, commit, false);
    await rename(staging, dir);
    renamed = true;
    mark('done');
    return {
      commit,
      snapshotCommit,
      snapshot: digest,
      bytes: size,
      durationMs: Math.round(performance.now() - t0),
      fetchedAfterRestore: fetched,
      steps,
    };
  } finally {
    if (!renamed) await rm(staging, { recursive: true, force: true });
  }
}
