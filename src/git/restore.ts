// Restore of a working clone (`hoard git restore`): a working clone from the server's snapshot instead of `git clone`.
//
// 1. HEAD the stable URL (`…/snapshot.tar.zst[?ref=R]`): which blob is
//    current (Content-Location), its digest (ETag), size and commit.
// 2. Download the immutable blob URL in parallel ranges (restoreConcurrency ×
//    restoreRangeBytes, per-range timeout and retry), streaming into zstd
//    decompression and safe extraction in a staging directory next to <dir>;
//    the SHA-256 is verified before the stream ends.
// 3. In the staging dir: `git reset -q` (the archive has no index), origin
//    set to the URL given; then rename into place.
// 4. `git fetch` through the proxy and check out the ref (default: the
//    upstream's HEAD branch), so the result is current even when the snapshot
//    was older. A failed fetch leaves the snapshot's commit checked out and
//    reports `fetchedAfterRestore: false`.

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { rangedDownload } from '../archive/ranged-download.ts';
import { extractTarZst } from '../archive/safe-extract.ts';
import { type Digest, digestFromHex } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { runGit } from './git-process.ts';

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
}

/** Environment for the user's own git: their config applies (proxies, CAs), never a prompt. */
const USER_GIT_ENV = {
  GIT_CONFIG_GLOBAL: process.env.GIT_CONFIG_GLOBAL,
  GIT_CONFIG_NOSYSTEM: process.env.GIT_CONFIG_NOSYSTEM,
};

function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function errorOf(url: string, res: Response): Promise<HoardError> {
  let message = `HTTP ${res.status}`;
  let code: HoardError['code'] = res.status === 404 ? 'HOARD_EREF_NOT_FOUND' : 'HOARD_EREMOTE';
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.message) message = body.error.message;
    if (res.status === 404 && body.error?.code === 'HOARD_EBAD_REQUEST') code = 'HOARD_EUSAGE';
  } catch {
    // not JSON
  }
  return new HoardError(code, `${url}: ${message}`, { details: { status: res.status } });
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
  const head = await fetch(stable, { method: 'HEAD', headers });
  if (head.status !== 200) {
    // HEAD has no body: ask again with GET for the error message.
    const res = head.status >= 400 ? await fetch(stable, { headers }) : head;
    throw await errorOf(stable, res);
  }
  const etag = head.headers.get('etag') ?? '';
  const location = head.headers.get('content-location');
  const snapshotCommit = head.headers.get('x-hoard-commit') ?? '';
  const size = Number(head.headers.get('content-length'));
  const m = /^"([0-9a-f]{64})"$/.exec(etag);
  if (!m || !location || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(snapshotCommit) || !Number.isSafeInteger(size))
    throw new HoardError('HOARD_EREMOTE', `${stable} did not answer like a hoard snapshot URL`, {
      details: { etag, location, commit: snapshotCommit },
    });
  const digest = digestFromHex(m[1]);
  const resolvedRef = head.headers.get('x-hoard-ref') ?? undefined;
  const blobUrl = new URL(location, stable).href;

  // 2. Download and extract into a staging directory next to the target.
  await mkdir(dirname(dir), { recursive: true });
  const staging = join(dirname(dir), `.${basename(dir)}.hoard-restore-${randomBytes(4).toString('hex')}`);
  await mkdir(staging);
  let renamed = false;
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
    // Extraction-time mtimes, as `git clone` leaves them (and one syscall less per file).
    await extractTarZst(download.stream, staging, { mtimes: false });
    await download.done;

    // 3. Index, origin, into place.
    const git = (args: string[], cwd: string) => runGit(args, { cwd, env: USER_GIT_ENV });
    await git(['reset', '-q'], staging);
    await git(['remote', 'set-url', 'origin', base], staging);
    await rename(staging, dir);
    renamed = true;

    // 4. Catch up through the proxy.
    let fetched = false;
    if (!opts.noFetch) {
      try {
        await fetchAndCheckout(dir, snapshotCommit, opts.ref, resolvedRef, opts.token);
        fetched = true;
      } catch (err) {
        const info = opts.onWarning ?? ((m: string) => process.stderr.write(`${m}\n`));
        info(
          `hoard: warning: git fetch after the restore failed; ${dir} is at the snapshot's commit ${snapshotCommit}`,
        );
        info(`hoard: ${(err as Error).message}`);
      }
    }
    const commit = (await git(['rev-parse', 'HEAD'], dir)).stdout.trim();
    return {
      commit,
      snapshotCommit,
      snapshot: digest,
      bytes: size,
      durationMs: Math.round(performance.now() - t0),
      fetchedAfterRestore: fetched,
    };
  } finally {
    if (!renamed) await rm(staging, { recursive: true, force: true });
  }
}

async function fetchAndCheckout(
  dir: string,
  snapshotCommit: string,
  ref: string | undefined,
  resolvedRef: string | undefined,
  token?: string,
) {
  const auth = token ? ['-c', `http.extraHeader=Authorization: Bearer ${token}`] : [];
  const git = (args: string[]) => runGit([...auth, ...args], { cwd: dir, env: USER_GIT_ENV });
  // A ref at the snapshot's commit, so the fetch negotiates from it (detached HEAD alone is not offered).
  const temp = 'refs/hoard-restore/snapshot';
  await git(['update-ref', temp, snapshotCommit]);
  try {
    await git(['fetch', '-q', '--tags', 'origin']);
  } finally {
    await git(['update-ref', '-d', temp]);
  }
  let branch: string | undefined;
  if (ref === undefined) {
    // The server said which branch its HEAD is (X-Hoard-Ref); else ask the remote.
    const head = resolvedRef?.startsWith('refs/heads/') ? resolvedRef.slice('refs/heads/'.length) : undefined;
    if (
      head &&
      (await git(['rev-parse', '--verify', '-q', `refs/remotes/origin/${head}`]).then(
        () => true,
        () => false,
      ))
    )
      await git(['symbolic-ref', 'refs/remotes/origin/HEAD', `refs/remotes/origin/${head}`]);
    else await git(['remote', 'set-head', 'origin', '--auto']);
    const sym = (await git(['symbolic-ref', 'refs/remotes/origin/HEAD'])).stdout.trim();
    branch = sym.replace(/^refs\/remotes\/origin\//, '');
  } else {
    const name = ref.replace(/^refs\/heads\//, '');
    const isBranch = await git(['rev-parse', '--verify', '-q', `refs/remotes/origin/${name}`])
      .then(() => true)
      .catch(() => false);
    if (isBranch) branch = name;
    else {
      await git(['checkout', '-q', '--detach', `${ref.replace(/^refs\/tags\//, '')}^{commit}`]);
      return;
    }
  }
  await git(['checkout', '-q', '-B', branch, '--track', `origin/${branch}`]);
}
