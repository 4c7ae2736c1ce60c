// Crash-safe file primitives shared by the filesystem stores and by pull:
// temp file in the same directory + fsync + rename (+ fsync of the directory),
// so that after a crash at any instant a reader sees the old file or the new
// one, never a torn one. Temp names carry the writer's pid so that a later
// process can tell a dead writer's leftovers from a live writer's work.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { noSpaceOr } from '../core/errors.ts';

const HOST = hostname();

/** A unique temp file name: `<prefix><pid>.<random><suffix>`. */
export function tempName(prefix = '.hoard-', suffix = '.tmp'): string {
  // process.pid is a getpid(2) per read; a Node process never forks, so its pid never changes.
  PID ??= process.pid;
  // Unique within this process by the counter, and against an earlier
  // process that had the same pid by the random part drawn once per process:
  // randomBytes per name cost a getpid(2) (OpenSSL's fork check) and ~20 µs
  // each, a twentieth of a 50,000-file push.
  TEMP_RANDOM ??= randomBytes(6).toString('hex');
  return `${prefix}${PID}.${TEMP_RANDOM}${(tempCounter++).toString(36)}${suffix}`;
}
let PID: number | undefined;
let TEMP_RANDOM: string | undefined;
let tempCounter = 0;

/** The pid encoded in a name made by tempName, or undefined. */
export function pidOfTempName(name: string, prefix = '.hoard-'): number | undefined {
  if (!name.startsWith(prefix)) return undefined;
  const pid = Number.parseInt(name.slice(prefix.length), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

export function isPidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function hostName(): string {
  return HOST;
}

/** fsyncs a directory so a rename or link in it survives a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await fh.sync();
  } catch (err) {
    // Some file systems refuse fsync on directories; the rename is still atomic.
    if (!['EINVAL', 'EPERM', 'EISDIR', 'EBADF'].includes((err as NodeJS.ErrnoException).code ?? ''))
      throw err;
  } finally {
    await fh?.close();
  }
}

/**
 * Writes small data atomically: temp in the same directory, fsync, rename,
 * fsync dir. A full disk (ENOSPC/EDQUOT, at any step) is a HOARD_ENO_SPACE
 * naming `path`, and leaves no temp file behind.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string, dir: string): Promise<void> {
  const tmp = join(dir, tempName());
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(tmp, 'wx');
  } catch (err) {
    throw noSpaceOr(err, path);
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw noSpaceOr(err, path);
  }
  try {
    // close can report a deferred write error (NFS): the data is not known to be there.
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw noSpaceOr(err, path);
  }
  await fsyncDir(dir);
}

/**
 * Removes temp files in `dir` left by writers that are gone: their pid is
 * not alive on this host, or they are older than `maxAgeMs` (pid reuse).
 * Live writers' temp files are left alone, so this is safe to run while
 * other processes write.
 */
export async function cleanStaleTemps(dir: string, maxAgeMs: number, prefix = '.hoard-'): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let removed = 0;
  for (const name of names) {
    const pid = pidOfTempName(name, prefix);
    if (pid === undefined) continue;
    const path = join(dir, name);
    let stale = !isPidAlive(pid);
    if (!stale) {
      const st = await stat(path).catch(() => undefined);
      stale = st !== undefined && Date.now() - st.mtimeMs > maxAgeMs;
    }
    if (stale && pid !== process.pid) {
      await unlink(path).then(
        () => removed++,
        () => {},
      );
    }
  }
  return removed;
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException)?.code ?? '');
}

/** Writes all of `chunk` at `position` (a positional write may be short); a full disk is HOARD_ENO_SPACE naming `what`. */
export async function writeFullyAt(
  fh: FileHandle,
  chunk: Uint8Array,
  position: number,
  what: string,
): Promise<void> {
  let off = 0;
  try {
    while (off < chunk.byteLength) {
      const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off, position + off);
      off += bytesWritten;
    }
  } catch (err) {
    throw noSpaceOr(err, what);
  }
}
