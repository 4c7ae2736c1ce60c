// Lock files shared between processes: `open(O_EXCL)` creates the lock, its
// content names the owner (`<host> <pid> <nonce>`), and a lock whose owner is
// gone is broken by the next taker. Used by the filesystem RefStore (one lock
// per ref) and by push/pull (one lock per synced directory).

import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type HoardError, noSpaceOr } from '../core/errors.ts';
import { hostName, isErrno, isPidAlive } from './fs-atomic.ts';

export interface LockFileOptions {
  /** How long to wait for a live owner before giving up. */
  timeoutMs: number;
  /** The error thrown at the deadline; gets the current owner's token. */
  onTimeout: (owner: string) => HoardError;
}

/**
 * Runs `fn` holding the lock file `lock` (its folder must exist). Errors of
 * creating the lock other than "it exists" are thrown as they are.
 */
export async function withLockFile<T>(lock: string, fn: () => Promise<T>, opts: LockFileOptions): Promise<T> {
  const token = `${hostName()} ${process.pid} ${randomBytes(8).toString('hex')}`;
  const deadline = Date.now() + opts.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (await create(lock, token)) break;
    if (await breakIfAbandoned(lock)) continue;
    if (Date.now() > deadline) throw opts.onTimeout(await readFile(lock, 'utf8').catch(() => ''));
    await sleep(Math.min(50, 2 + attempt * 2) * (0.5 + Math.random()));
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}

/**
 * Creates `lock` holding `token`; false if it exists. When writing the token
 * fails (ENOSPC: creating an empty file needs no data block, writing it
 * does), the descriptor is closed and the file removed: an empty lock left
 * behind would look like an owner killed between create and write and hold
 * everyone off until it is judged abandoned.
 */
async function create(lock: string, token: string): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(lock, 'wx');
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw noSpaceOr(err, `lock file ${lock}`);
  }
  try {
    await fh.writeFile(token);
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(lock).catch(() => {});
    throw noSpaceOr(err, `lock file ${lock}`);
  }
  try {
    await fh.close();
  } catch (err) {
    // A deferred write error (NFS): the token may not be there; do not hold a lock we cannot prove.
    await unlink(lock).catch(() => {});
    throw noSpaceOr(err, `lock file ${lock}`);
  }
  return true;
}

/**
 * Removes a lock whose owner is gone: same host and pid dead, or (other
 * host, unknown owner) older than refLockStaleMs. The lock is first renamed
 * aside and its content compared, so two processes breaking the same stale
 * lock cannot also remove a fresh lock taken in between.
 */
async function breakIfAbandoned(lock: string): Promise<boolean> {
  let content: string;
  let mtimeMs: number;
  try {
    content = await readFile(lock, 'utf8');
    mtimeMs = (await stat(lock)).mtimeMs;
  } catch {
    return true; // released meanwhile: retry at once
  }
  const [host, pidText] = content.split(' ');
  const pid = Number(pidText);
  const abandoned =
    host === hostName() && Number.isSafeInteger(pid)
      ? !isPidAlive(pid)
      : Date.now() - mtimeMs > DEFAULTS.refLockStaleMs || content === ''; // '' = killed between create and write
  if (!abandoned) return false;
  if (content === '' && Date.now() - mtimeMs < 1000) return false; // probably being written right now
  const aside = `${lock}.${randomBytes(6).toString('hex')}.broken`;
  try {
    await rename(lock, aside);
  } catch {
    return true;
  }
  const taken = await readFile(aside, 'utf8').catch(() => '');
  if (taken !== content) {
    // We moved a fresh lock: put it back if nobody took the place meanwhile.
    // link, unlike rename, never replaces a lock someone else took meanwhile.
    await link(aside, lock).catch(() => {});
    await unlink(aside).catch(() => {});
    return false;
  }
  await unlink(aside).catch(() => {});
  return true;
}
