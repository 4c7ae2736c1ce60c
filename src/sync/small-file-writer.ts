// Writing small files from verified bytes in memory: the batched half of
// materialize(). Each blob arrives whole and verified (readMany); its files
// are written right there with synchronous calls — page-cached writes of a
// few KiB cost microseconds, a thread-pool hand-off per call and a stream
// per file cost more than the write.
//
// Two ways a file lands:
//
// - **Temp name, then rename** (the rule everywhere else): the bytes go to a
//   new temp file in the file's own folder, which is renamed over the final
//   name. With fsync on, the written temps gather in groups (thousands of
//   files); a group is made durable at once — one syncfs of the file
//   system (file-system-sync.ts), or an fsync of each file where that is not
//   possible or the group is small — and only then renamed into place, so a
//   crash never publishes a torn file: each file is old or new. (An fsync
//   per file right after its write was two thirds of a 50,000-file pull's
//   wall time: a device flush per file, four at a time in the thread pool.)
//
// - **In place** (`inPlace`, only with fsync off — a cache restore): in a
//   folder this materialize created itself (FolderGuard.created) the file is
//   created under its final name with O_CREAT|O_EXCL|O_NOFOLLOW and written
//   there: two directory operations fewer per file (the temp's create and
//   the rename), a third of a cold restore's kernel time. Why that is safe:
//     - nothing is overwritten: the folder was empty when our mkdir made it,
//       and O_EXCL fails if anything (a file, a planted symlink) has the name
//       since; then the file goes the temp-and-rename way like any other;
//     - the bytes are the verified ones (readMany hands over nothing else),
//       so no unverified byte ever lands under a final name;
//     - a failed write (disk full) removes the file it created;
//     - a crash mid-write can leave a short file under its final name,
//       which "old or new" allows only because "old" was "absent" and the
//       caller's contract says so (MaterializeInput.fsync: no fsync, as tar).
//       Nothing vouches for such a file: its stat is recorded in the stat
//       cache only in memory, and the cache is saved after the whole
//       materialize, so the next scan hashes it (no entry) and the next
//       restore rewrites it (the entry wins). Pull (fsync on) never writes
//       in place: its next run would see a torn file as a local edit.
//   The stat recorded is the file's own fstat after its write (no second
//   lookup by path at the end).

import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { isNoSpaceErrno } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import type { FileEntry } from '../core/tree.ts';
import { isErrno, tempName } from '../store/fs-atomic.ts';
import { syncFileSystemsOf } from './file-system-sync.ts';
import type { FolderGuard } from './local-folders.ts';
import { type StatKey, statKeyOf } from './stat-key.ts';

/**
 * With fsync: files are made durable in groups of this many (or
 * GROUP_BYTES), at most GROUPS_IN_FLIGHT at once. A group is one syncfs; a
 * larger one means fewer device flushes, a smaller one renames sooner.
 */
const GROUP_FILES = 4096;
const GROUP_BYTES = 64 * 1024 * 1024;
const GROUPS_IN_FLIGHT = 2;
/** Below this many files, fsyncs of each cost less than flushing the whole file system. */
export const SYNCFS_MIN_FILES = 64;

/** fsync of a written (closed) file by its path: any descriptor flushes the file's data and inode. */
async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const IN_PLACE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A file materialize wrote (or changed the mode of), for the stat cache. */
export interface WrittenFile {
  entry: FileEntry;
  /** Date.now() just after: its ctime cannot be later unless someone else changed it. */
  doneAt: number;
  /** Its stat right after the write (fstat), when taken then; else looked up by path at the end. */
  key?: StatKey;
}

export interface SmallFileWriterOptions {
  root: string;
  folders: FolderGuard;
  fsync: boolean;
  /** Create files in folders this materialize made under their final names (only without fsync). */
  inPlace: boolean;
  /** With fsync: files per durable group (default GROUP_FILES; tests make it small). */
  groupFiles?: number;
  /** Every file landed is pushed here. */
  written: { push(w: WrittenFile): void };
  /** The error for a full local disk while writing `path`. */
  diskFull: (path: string, cause: unknown) => Error;
}

type Temp = { tmp: string; entry: FileEntry; fd: number; published: boolean };

export function fileMode(entry: FileEntry): number {
  return entry.kind === 'exec' ? 0o777 : 0o666;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
}

export class SmallFileWriter {
  readonly #o: SmallFileWriterOptions;
  readonly #inPlace: boolean;
  /** Groups being made durable (fsync on), each renamed into place once it is. */
  readonly #fsyncing = new Set<Promise<void>>();
  /** Temps written and closed, not yet handed to a group's flush (fsync on). */
  #group: Temp[] = [];
  #groupBytes = 0;
  readonly #groupFiles: number;
  /** Writers waiting for room among the groups in flight, woken one per finished group. */
  readonly #roomWaiters: (() => void)[] = [];
  /** The first job that failed (its fsync or rename). */
  #failure: { err: unknown } | undefined;
  /** Files created in place. */
  filesInPlace = 0;

  constructor(opts: SmallFileWriterOptions) {
    this.#o = opts;
    this.#inPlace = opts.inPlace && !opts.fsync;
    this.#groupFiles = opts.groupFiles ?? GROUP_FILES;
  }

  /** Writes `bytes` (verified) to every entry; resolves once there is room for the next blob. */
  async write(entries: readonly FileEntry[], bytes: Buffer): Promise<void> {
    const { folders } = this.#o;
    // A group that failed (its flush or a rename) stops the writing.
    this.#throwIfFailed();
    const temps: Temp[] = [];
    try {
      for (const entry of entries) {
        const parent = folders.ensureParents(entry.path, true);
        if (this.#inPlace && folders.created(parent) && this.#writeInPlace(entry, parent, bytes)) continue;
        const t: Temp = { tmp: join(parent, tempName()), entry, fd: -1, published: false };
        try {
          t.fd = openSync(t.tmp, 'wx', fileMode(entry));
          temps.push(t);
          writeAll(t.fd, bytes);
          const fd = t.fd;
          t.fd = -1;
          // close can report a deferred write error (NFS): thrown like the write's.
          closeSync(fd);
        } catch (err) {
          if (isNoSpaceErrno(err)) throw this.#o.diskFull(t.tmp, err);
          throw err;
        }
      }
      if (temps.length === 0) return;
      // Right after the synchronous writes nothing of ours ran in between and
      // the folder check just made stands; with several files, time passed.
      if (!this.#o.fsync) this.#publish(temps, temps.length > 1);
      else {
        // Written and closed, not durable yet: renamed only once their group is.
        for (const t of temps) this.#group.push(t);
        this.#groupBytes += bytes.byteLength * temps.length;
        temps.length = 0;
        if (this.#group.length >= this.#groupFiles || this.#groupBytes >= GROUP_BYTES) {
          // At most GROUPS_IN_FLIGHT groups pending: the next record waits for
          // room. A queue of waiters, one woken per finished group, not
          // Promise.race over the pending set: each race leaves a reaction on
          // every pending job until it settles (a 50,000-file pull made
          // millions of them; the same fix as FsBlobBatch's).
          while (this.#fsyncing.size >= GROUPS_IN_FLIGHT) {
            await new Promise<void>((wake) => this.#roomWaiters.push(wake));
            // A failed group stops the writing here, as soon as it is known.
            this.#throwIfFailed();
          }
          this.#flushGroup();
        }
      }
    } finally {
      cleanup(temps);
    }
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.err;
  }

  /**
   * Makes the group of written temps durable, then renames them into place
   * (in the background, tracked for settle()): one syncfs of each file
   * system their folders are on (a folder may be a mount point) for a group
   * of at least SYNCFS_MIN_FILES (file-system-sync.ts),
   * else — or where that is not possible — an fsync of each file (a
   * bounded number at once, in the thread pool).
   */
  #flushGroup(): void {
    const mine = this.#group;
    this.#group = [];
    this.#groupBytes = 0;
    if (mine.length === 0) return;
    const job = (async () => {
      try {
        if (!(mine.length >= SYNCFS_MIN_FILES && (await syncFileSystemsOf(mine.map((t) => dirname(t.tmp))))))
          await forEachLimit(mine, DEFAULTS.syncFsyncInFlight, (t) => fsyncPath(t.tmp));
        this.#publish(mine, true);
      } finally {
        cleanup(mine);
      }
    })();
    const tracked: Promise<void> = job
      .catch((err: unknown) => {
        this.#failure ??= { err };
        throw err;
      })
      .finally(() => {
        this.#fsyncing.delete(tracked);
        this.#roomWaiters.shift()?.();
      });
    tracked.catch(() => {}); // seen by settle()
    this.#fsyncing.add(tracked);
  }

  /** Waits for every pending fsync and rename; the results of those that ran. */
  settle(): Promise<PromiseSettledResult<void>[]> {
    // The last group: published too, unless the writing already failed.
    if (this.#failure) {
      cleanup(this.#group);
      this.#group = [];
    } else this.#flushGroup();
    return Promise.allSettled(this.#fsyncing);
  }

  /**
   * Creates `entry` under its final name and writes it; false when the name
   * is taken (the caller writes it by temp and rename). A failed write
   * removes what it created.
   */
  #writeInPlace(entry: FileEntry, parent: string, bytes: Buffer): boolean {
    // parent is the root joined with the path's folder (a created folder is never the root itself).
    const abs = parent + entry.path.slice(entry.path.lastIndexOf('/'));
    let fd: number;
    try {
      fd = openSync(abs, IN_PLACE_FLAGS, fileMode(entry));
    } catch (err) {
      if (isErrno(err, 'EEXIST')) return false;
      if (isNoSpaceErrno(err)) throw this.#o.diskFull(abs, err);
      throw err;
    }
    let key: StatKey;
    try {
      try {
        writeAll(fd, bytes);
        key = statKeyOf(fstatSync(fd, { bigint: true }));
      } finally {
        // close can report a deferred write error (NFS): thrown like the write's.
        closeSync(fd);
      }
    } catch (err) {
      try {
        unlinkSync(abs);
      } catch {}
      if (isNoSpaceErrno(err)) throw this.#o.diskFull(abs, err);
      throw err;
    }
    this.#o.written.push({ entry, doneAt: Date.now(), key });
    this.filesInPlace++;
    return true;
  }

  /**
   * Renames temps into place; `recheck`: their folders are checked again
   * first (time passed since). With fsync (a group, after its flush) each
   * file's stat is taken right after its rename (which changes the ctime),
   * by path — its descriptor was closed after the write — under
   * materialize's rule for stats taken later: a file whose ctime is after
   * the rename, or of another size, was changed by someone else and gets no
   * key (the next scan hashes it). Without fsync, materialize looks them up
   * at the end.
   */
  #publish(temps: Temp[], recheck: boolean): void {
    const { root, folders, written, fsync } = this.#o;
    for (const t of temps) {
      if (recheck) folders.ensureParents(t.entry.path, true);
      const final = join(root, t.entry.path);
      renameSync(t.tmp, final);
      t.published = true;
      const doneAt = Date.now();
      const st = fsync ? lstatSync(final, { bigint: true, throwIfNoEntry: false }) : undefined;
      const ours =
        st?.isFile() && Number(st.size) === t.entry.size && st.ctimeNs <= BigInt(doneAt + 1) * 1_000_000n;
      written.push({ entry: t.entry, doneAt, key: st && ours ? statKeyOf(st) : undefined });
    }
  }
}

/** Closes what is open and removes what was not renamed into place. */
function cleanup(temps: Temp[]): void {
  for (const t of temps) {
    if (t.fd >= 0) {
      try {
        closeSync(t.fd);
      } catch {}
      t.fd = -1;
    }
    if (!t.published)
      try {
        unlinkSync(t.tmp);
      } catch {}
  }
}
