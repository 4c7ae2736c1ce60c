// One blob's files by the usual path (materialize-files.ts: a large blob,
// or one with a local copy): the blob is fetched once — copied from a local
// file that holds it, else downloaded — into a temp file in its first
// file's folder, verified against its digest on the way; its other files'
// temps are copied from that one; then every temp is renamed into place
// (each parent checked real at that moment: local-folders.ts), so a crash
// leaves each file old or new. With fsync, a temp is durable before its
// rename; a blob the remote does not have is listed, not thrown.

import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  fsync,
  openSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { chmod, copyFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, sha256, VerifyingStream } from '../core/digest.ts';
import { isHoardError, isNoSpaceErrno, toHoardError } from '../core/errors.ts';
import type { FileEntry } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { tempName } from '../store/fs-atomic.ts';
import { readWholeVerified } from '../store/read-many.ts';
import type { FolderGuard } from './local-folders.ts';
import { corruptDownload, downloadError, localDiskFull } from './materialize-errors.ts';
import { CountingStream, chunkFor, type ProgressSink } from './transfer.ts';
import type { WrittenLog } from './written-log.ts';

const fsyncFd = promisify(fsync);

/** Blobs downloaded (not copied locally) and their bytes, by both of a materialize's paths. */
export interface DownloadCounts {
  files: number;
  bytes: number;
}

export interface BlobGroupWriterOptions {
  root: string;
  remote: Remote;
  /** A current file path holding each digest. */
  localByDigest: ReadonlyMap<Digest, string>;
  /** Paths removed already: not a local copy any more. */
  deleted: ReadonlySet<string>;
  progress: ProgressSink;
  fsync: boolean;
  folders: FolderGuard;
  /** Folders a file was renamed into (fsynced at the end). */
  touchedDirs: Set<string>;
  written: WrittenLog;
  counts: DownloadCounts;
  /** A blob the remote does not have, with the files that need it. */
  missing: (digest: Digest, entries: FileEntry[]) => void;
}

/** The mode bits of `mode` with the executable bits set (where readable) or cleared. */
export function execMode(mode: number, exec: boolean): number {
  const perm = mode & 0o777;
  return exec ? perm | ((perm & 0o444) >> 2) : perm & ~0o111;
}

export class BlobGroupWriter {
  readonly #o: BlobGroupWriterOptions;
  /** One read buffer for small local copies: each is read, hashed and written without an await in between. */
  #copyBuf: Buffer | undefined;

  constructor(options: BlobGroupWriterOptions) {
    this.#o = options;
  }

  /** One blob: fetched (or copied locally) once, then copied to its other paths. */
  async write(digest: Digest, entries: FileEntry[]): Promise<void> {
    const { root, folders, touchedDirs, written, progress } = this.#o;
    const temps: { tmp: string; entry: FileEntry }[] = [];
    let firstMode: number | undefined;
    try {
      for (const entry of entries) {
        const parent = folders.ensureParents(entry.path);
        const tmp = join(parent, tempName());
        const exec = entry.kind === 'exec';
        if (temps.length === 0) {
          try {
            await this.#fill(digest, entry.size, tmp, exec);
          } catch (err) {
            if (!isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) throw err;
            this.#o.missing(digest, entries);
            return;
          }
        } else {
          await copyFile(temps[0].tmp, tmp, constants.COPYFILE_EXCL);
          firstMode ??= (await stat(temps[0].tmp)).mode;
          await chmod(tmp, execMode(firstMode, exec));
        }
        temps.push({ tmp, entry });
        touchedDirs.add(parent);
      }
      for (const { tmp, entry } of temps) {
        folders.ensureParents(entry.path);
        renameSync(tmp, join(root, entry.path));
        written.push({ entry, doneAt: Date.now() });
      }
      temps.length = 0;
    } finally {
      for (const { tmp } of temps) await unlink(tmp).catch(() => {});
    }
    progress.blobDone({ digest, size: entries[0].size, path: entries[0].path });
  }

  async #fill(digest: Digest, size: number, tmp: string, exec: boolean): Promise<void> {
    const { root, remote, localByDigest, deleted, progress, fsync, counts } = this.#o;
    const mode = exec ? 0o777 : 0o666;
    if (size <= DEFAULTS.syncSmallFileBytes) return this.#fillSmall(digest, size, tmp, mode);
    const local = localByDigest.get(digest);
    if (local !== undefined && !deleted.has(local)) {
      try {
        await pipeline(
          createReadStream(join(root, local), { highWaterMark: chunkFor(size) }),
          new VerifyingStream(digest, size),
          new CountingStream((n) => progress.bytes(n)),
          createWriteStream(tmp, { flags: 'wx', mode, flush: fsync }),
        );
        return;
      } catch {
        // changed or gone meanwhile: download it instead
        await unlink(tmp).catch(() => {});
      }
    }
    const counter = new CountingStream((n) => progress.bytes(n));
    try {
      await pipeline(
        await remote.blobs.read(digest),
        counter,
        new VerifyingStream(digest, size),
        createWriteStream(tmp, { flags: 'wx', mode, flush: fsync }),
      );
    } catch (err) {
      await unlink(tmp).catch(() => {});
      // The local disk is full: not the remote's failure, and not corruption.
      if (isNoSpaceErrno(err)) throw localDiskFull(tmp, err);
      if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH') || isHoardError(err, 'HOARD_ETRUNCATED'))
        throw corruptDownload(digest, remote.url, err);
      throw toHoardError(err, 'HOARD_EREMOTE', `downloading ${digest} from ${remote.url}`);
    }
    counts.files++;
    counts.bytes += counter.count;
  }

  /**
   * Small files: read whole, hashed once, written to the temp file with
   * synchronous calls (page-cached: microseconds each, against a thread-pool
   * hand-off per call and a stream per file), fsynced in the thread pool.
   */
  async #fillSmall(digest: Digest, size: number, tmp: string, mode: number): Promise<void> {
    const { root, remote, localByDigest, deleted, progress, counts } = this.#o;
    const local = localByDigest.get(digest);
    if (local !== undefined && !deleted.has(local)) {
      this.#copyBuf ??= Buffer.allocUnsafe(DEFAULTS.syncSmallFileBytes + 1);
      const bytes = readLocalCopy(join(root, local), size, this.#copyBuf);
      if (bytes && sha256(bytes) === digest) {
        await this.#writeTemp(tmp, bytes, mode);
        progress.bytes(size);
        return;
      }
      // changed or gone meanwhile: download it instead
    }
    let bytes: Buffer;
    try {
      bytes = await readWholeVerified(remote.blobs, { digest, size });
    } catch (err) {
      throw downloadError(digest, remote.url, err);
    }
    await this.#writeTemp(tmp, bytes, mode);
    progress.bytes(size);
    counts.files++;
    counts.bytes += size;
  }

  /** writeFileDurably; the local disk being full is said as such (not the remote's failure, not corruption). */
  async #writeTemp(tmp: string, bytes: Buffer, mode: number): Promise<void> {
    try {
      await writeFileDurably(tmp, bytes, mode, this.#o.fsync);
    } catch (err) {
      if (isNoSpaceErrno(err)) throw localDiskFull(tmp, err);
      throw err;
    }
  }
}

/**
 * A small local file's bytes when it still has `size` bytes (read into
 * `buf`, valid until its next use), or undefined when it changed size or is
 * gone; the caller checks the digest.
 */
function readLocalCopy(abs: string, size: number, buf: Buffer): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, Math.min(buf.byteLength, size + 1) - n, n);
      if (got === 0) break;
      n += got;
      if (n > size) return undefined;
    }
    return n === size ? buf.subarray(0, n) : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a new temp file (exclusive create) from memory; with `fsync`,
 * fsynced before it is closed, so the rename that follows never publishes a
 * torn file. The fsync runs in the thread pool; the write itself is
 * synchronous, so `bytes` may be reused once this returns a promise.
 */
async function writeFileDurably(tmp: string, bytes: Uint8Array, mode: number, fsync: boolean): Promise<void> {
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
      if (fsync) await fsyncFd(fd);
    } finally {
      // close can report a deferred write error (NFS): thrown like the write's.
      closeSync(fd);
    }
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
