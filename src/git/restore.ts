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

import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  type Stats,
  writeFileSync,
} from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type EntryInfo, extractTarZst, unsafe } from '../archive/safe-extract.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, digestFromHex } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import { discard, type HttpResponse, header, httpRequest } from '../http/http-client.ts';
import { rangedDownload } from '../http/ranged-download.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { configEnv, runGit } from './git-process.ts';
import { isObjectId } from './object-id.ts';
import { GitIndexRecorder } from './restore-index.ts';
import { snapshotEntryPolicy } from './snapshot-entry-policy.ts';
import { snapshotGitConfig } from './snapshot-git-config.ts';

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

/**
 * Configuration of every git step of a restore (on top of no system/global
 * config, see git-process.ts). Nothing the archive or the caller's config
 * says can run a command: no hooks, no fsmonitor, no submodule recursion,
 * no transport but http(s).
 */
const SAFE_CONFIG: [string, string][] = [
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', 'false'],
  ['submodule.recurse', 'false'],
  // No `git maintenance run --auto` after the fetch: a fresh clone needs none.
  ['maintenance.auto', 'false'],
  ['protocol.allow', 'never'],
  ['protocol.http.allow', 'always'],
  ['protocol.https.allow', 'always'],
];

type Git = (args: string[], okCodes?: number[]) => Promise<{ stdout: string; code: number }>;

/** The git runner of a restore in `dir` (see SAFE_CONFIG; the token as env config, not argv). */
function restoreGit(dir: string, token: string | undefined, signal: AbortSignal): Git {
  const pairs = [...SAFE_CONFIG];
  if (token) pairs.push(['http.extraHeader', `Authorization: Bearer ${token}`]);
  const env = { ...configEnv(pairs), GIT_DIR: join(dir, '.git'), GIT_WORK_TREE: dir };
  return (args, okCodes) => runGit(args, { cwd: dir, env, okCodes, signal });
}

/** The uncompressed-size bound of an archive of `size` bytes. */
export function unpackedBound(size: number): number {
  return Math.min(
    DEFAULTS.restoreMaxUnpackedBytes,
    Math.max(DEFAULTS.restoreMinUnpackedBytes, size * DEFAULTS.restoreMaxExpansionRatio),
  );
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * A failure to find the snapshot, as restore reports it: a 404 of the
 * snapshot route means the repository or ref is unknown (exit 2); a 404 of no
 * route at all means the URL is not a hoard git URL.
 */
function restoreError(err: unknown, url: string): unknown {
  if (!isHoardError(err) || err.details?.status !== 404) return err;
  const code = err.code === 'HOARD_EBAD_REQUEST' ? 'HOARD_EUSAGE' : 'HOARD_EREF_NOT_FOUND';
  return new HoardError(code, `${url}: ${err.message}`, { hint: err.hint, details: err.details });
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
  const stable = `${base}/snapshot.tar.zst${opts.ref ? `?ref=${encodeURIComponent(opts.ref)}` : ''}`;
  const stableUrl = new URL(stable);
  let head: HttpResponse;
  try {
    head = await httpRequest('HEAD', stableUrl, { headers, accept: [404, 400] });
    if (head.status !== 200) {
      // HEAD has no body: ask again with GET for the error.
      discard(head);
      head = await httpRequest('GET', stableUrl, { headers });
      discard(head);
      throw new HoardError('HOARD_EREMOTE', `${stable} answered HTTP ${head.status} to HEAD only`);
    }
  } catch (err) {
    throw restoreError(err, stable);
  }
  discard(head);
  mark('head');
  const etag = header(head, 'etag') ?? '';
  const location = header(head, 'content-location');
  const snapshotCommit = header(head, 'x-hoard-commit') ?? '';
  const size = Number(header(head, 'content-length'));
  const m = /^"([0-9a-f]{64})"$/.exec(etag);
  if (!m || !location || !isObjectId(snapshotCommit) || !Number.isSafeInteger(size))
    throw new HoardError('HOARD_EREMOTE', `${stable} did not answer like a hoard snapshot URL`, {
      details: { etag, location, commit: snapshotCommit },
    });
  const digest = digestFromHex(m[1]);
  const resolvedRef = header(head, 'x-hoard-ref');
  const blobUrl = new URL(location, stable).href;

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

/**
 * The snapshot policy, plus the moment `.git` is complete: snapshot entries
 * are sorted by path bytes, so the first entry outside `.git` that sorts
 * after every `.git/…` path means all of `.git` was written (the extractor
 * finishes an entry before it shows the next). `ready` runs then (once). An
 * archive that writes into `.git` after that point (not sorted: not one
 * hoard made) is refused rather than racing the git processes started; the
 * skipped HEAD and config may come anywhere.
 */
function gitFirstPolicy(ready: () => void): (e: EntryInfo) => 'extract' | 'skip' {
  let past = false;
  return (e) => {
    const decision = snapshotEntryPolicy(e);
    const inGit = e.name === '.git' || e.name.startsWith('.git/');
    if (inGit && past && decision === 'extract')
      throw unsafe(e.name, '.git entries must come before the work tree (a snapshot is sorted by path)');
    if (!inGit && !past && e.name > '.git/') {
      past = true;
      ready();
    }
    return decision;
  };
}

/** Writes `.git/HEAD` and `.git/config` (the archive's were skipped) into the extracted `.git`. */
function writeGitMetadata(dir: string, commit: string, originUrl: string): void {
  const gitDir = join(dir, '.git');
  // The policy admits `.git` only as a directory; an archive without one must not let git
  // discover an enclosing repository (GIT_DIR is explicit too).
  let st: Stats | undefined;
  try {
    st = lstatSync(gitDir);
  } catch {}
  if (!st?.isDirectory())
    throw new HoardError('HOARD_EARCHIVE_UNSAFE', 'the snapshot has no .git directory', {
      hint: 'the archive is not a hoard snapshot',
    });
  for (const d of ['objects/pack', 'objects/info', 'refs/heads', 'refs/tags'])
    mkdirSync(join(gitDir, d), { recursive: true });
  writeFileSync(join(gitDir, 'HEAD'), `${commit}\n`, { flag: 'wx' });
  writeFileSync(join(gitDir, 'config'), snapshotGitConfig(originUrl), { flag: 'wx' });
}

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
async function verifyCheckout(git: Git, dir: string, commit: string, derived: boolean): Promise<void> {
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

/** Fetches the restored ref through the proxy (see below), negotiating from the snapshot's commit. */
async function fetchRef(
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
async function checkoutRef(
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
