// FsBlobStore's BlobBatch: small blobs written from memory with synchronous
// calls (a page-cached small write costs microseconds; through the thread
// pool each call costs a hand-off and a promise, which is what a
// 10,000-file push spent its time on), the fsyncs running in the thread
// pool meanwhile, and one fsync per shard folder at flush() instead of one
// per blob.
//
// Per blob: existence check (stat), temp file in <root>/tmp, write, fsync of
// the temp file, then link(2) to its final name (create-if-absent, as in
// FsBlobStore.write) and unlink of the temp name. flush() waits for all of
// that, then fsyncs every shard folder a link went into.
//
// The crash windows (a kill, or a power loss, at any instant):
// - before the link: a temp file in tmp/, never a blob; the next open of the
//   store removes it (its writer's pid is dead).
// - after the link, before flush() fsynced its folder: the file's contents
//   are already durable (fsynced before the link), so the name, if it
//   survives, names complete bytes — never a torn blob that a later push
//   would take for present. After a power loss the name may be gone: the
//   blob is simply missing, and nothing names it yet, because the caller
//   moves its ref only after flush() resolved.
// - after flush(): contents and names are durable; the ref update that
//   follows is the ref store's own atomic step.
// So the invariant of the one-blob write holds for the batch: every blob is
// durable before a ref that names it is compare-and-set.
//
// Per-file mode (the default, a server's): one fsync per blob, in the thread
// pool while the main thread goes on reading and hashing (up to `inFlight`
// queued). A link before the data is durable is exactly the torn-blob window
// above, so the fsync comes first.
//
// Filesystem mode (a CLI's push, FsBlobStoreOptions.syncFilesystem): no
// fsync per blob. Temp files are written and closed; once enough wait
// (syncFsRoundFiles / syncFsRoundBytes) one syncfs(2) of the store's file
// system makes all of them durable at once (sync-filesystem.ts), and only
// then are they linked — the same order as above (contents durable, then a
// name), so the same crash windows: an unsynced temp is never a blob. A
// round's syncfs runs while the scan writes the next temps. flush() syncs
// the rest, links them, and one more syncfs makes every name durable (in
// place of an fsync per shard folder). On this project's ext4 the per-file
// fsyncs were 7–14 s of a 50,000-file push that takes ~6 s without them; the
// whole batch's syncfs calls take ~0.5 s. When syncfs cannot run (or fails),
// the batch falls back to per-file fsync for good (a failing device then
// reports its error through the fsync of each file).
//
// Journal mode (the server's store, FsBlobStoreOptions.journal): add() writes
// the temp file (no fsync) and appends the blob to the store's journal
// (blob-journal.ts); flush() waits for one fdatasync of the journal covering
// every blob of the batch (and of any other batch appended meanwhile), then
// links the temps. No fsync per blob and none per shard folder on the way to
// the answer: a name appears only after its record is durable, and the
// journal's checkpoint (or the replay at the next start after a crash)
// makes the file and its folder durable before the record is dropped.

import {
  closeSync,
  fsync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join, normalize, sep } from 'node:path';
import { promisify } from 'node:util';
import { type Digest, hexOf } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import type { BlobBatch } from './blob-batch.ts';
import type { BlobJournal, JournalTicket } from './blob-journal.ts';
import { fsyncDir, isErrno, tempName } from './fs-atomic.ts';
import type { SyncFilesystem } from './sync-filesystem.ts';

const fsyncFd = promisify(fsync);

/**
 * Filesystem mode's settings, one object per store: `failed` is set by the
 * first batch whose syncfs could not run, and every later batch of the store
 * fsyncs per file.
 */
export interface FilesystemSync {
  run: SyncFilesystem;
  failed: boolean;
  /** Blobs of a batch written the per-file way before it switches to rounds. */
  minBlobs: number;
  roundFiles: number;
  roundBytes: number;
  maxUnsyncedFiles: number;
}

/**
 * A temp file written and closed, waiting for a syncfs before its link: its
 * name in tmp/ and its digest (which the caller's tree holds anyway), the
 * paths made again at the link — a 50,000-file push holds this many.
 */
interface Unsynced {
  name: string;
  digest: Digest;
}

/** Journal mode: a temp file written and its record appended, linked once the record is durable. */
interface Journaled {
  tmp: string;
  shard: string;
  final: string;
  digest: Digest;
  ticket: JournalTicket;
}

export class FsBlobBatch implements BlobBatch {
  readonly #blobsDir: string;
  readonly #tmpDir: string;
  readonly #inFlight: number;
  /**
   * Shard folders known to exist: one mkdir each, not one per blob. Shared by
   * the store's batches (a server makes one batch per upload request or
   * group of PUTs: without it, every batch paid a mkdir per shard again).
   */
  readonly #shards: Set<string>;
  /** Shard folders that gained a name since the last flush. */
  readonly #linked = new Set<string>();
  /** Digests added to this batch: a file duplicated in the tree is written once. */
  readonly #added = new Set<Digest>();
  /** Writes whose fsync/link has not finished; they never reject (failures go to #error). */
  readonly #pending = new Set<Promise<void>>();
  /** add() calls waiting for a write to finish (one is woken per finished write). */
  readonly #slotWaiters: (() => void)[] = [];
  #error: unknown;
  /** Filesystem mode (see the header); undefined: per-file fsync. */
  readonly #fs: FilesystemSync | undefined;
  /** Filesystem mode: temps written since the last round started. */
  #unsynced: Unsynced[] = [];
  #unsyncedBytes = 0;
  /** Filesystem mode: the round in flight (syncfs, then links); never rejects (failures go to #error). */
  #round: Promise<void> | undefined;
  /** Blobs this batch wrote (either way). */
  #written = 0;
  /** Rounds this batch started: with none, its names are made durable per shard folder. */
  #rounds = 0;
  /** Journal mode (see the header); undefined: the other modes. */
  readonly #journal: BlobJournal | undefined;
  /** Journal mode: blobs appended, waiting for flush() to link them. */
  #journaled: Journaled[] = [];

  constructor(
    blobsDir: string,
    tmpDir: string,
    inFlight: number,
    shards: Set<string> = new Set(),
    filesystemSync?: FilesystemSync,
    journal?: BlobJournal,
  ) {
    this.#journal = journal;
    this.#fs = filesystemSync;
    this.#shards = shards;
    this.#blobsDir = folderPrefix(blobsDir);
    this.#tmpDir = folderPrefix(tmpDir);
    this.#inFlight = Math.max(1, inFlight);
  }

  async add(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }> {
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false };
    const hex = hexOf(digest);
    const shard = this.#blobsDir + sep + hex.slice(0, 2);
    const final = shard + sep + hex;
    if (exists(final)) {
      this.#added.add(digest);
      return { created: false };
    }
    if (this.#journal) {
      // Checkpoints behind (a long burst): wait for them, then look again (a racing add may have stored it).
      await this.#journal.room();
      if (this.#added.has(digest)) return { created: false };
      return this.#addJournaled(this.#journal, digest, bytes, shard, final);
    }
    // The first blobs of a batch take the per-file way: a push of a few
    // changed files costs a few fsyncs, not two syncfs calls (which also
    // write back whatever else is dirty on that file system).
    if (this.#fs && !this.#fs.failed && this.#written >= this.#fs.minBlobs)
      return this.#addUnsynced(digest, bytes);
    this.#written++;
    // Wait for a free slot in a queue, not with Promise.race over the pending
    // writes: each race adds a reaction to every pending promise, kept until
    // it settles, so a 50,000-file push made millions of them (promoted to
    // the old generation, most of its heap).
    while (this.#pending.size >= this.#inFlight) await new Promise<void>((r) => this.#slotWaiters.push(r));
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false }; // added while we waited
    this.#added.add(digest);

    // Written before this call returns: the caller may reuse `bytes` afterwards.
    const tmp = this.#tmpDir + sep + tempName();
    const fd = writeTemp(tmp, this.#tmpDir, bytes, digest);
    const p: Promise<void> = this.#settle(fd, tmp, shard, final, digest)
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => {
        this.#pending.delete(p);
        this.#slotWaiters.shift()?.();
      });
    this.#pending.add(p);
    return { created: true };
  }

  /** fsync, then publish: the contents are durable before any name points at them. */
  async #settle(fd: number, tmp: string, shard: string, final: string, digest: Digest): Promise<void> {
    try {
      await fsyncFd(fd);
      // close can report a deferred write error (NFS): the data is not known to be there.
      closeSync(fd);
    } catch (err) {
      closeQuietly(fd);
      unlinkQuietly(tmp);
      throw noSpaceOr(err, `blob ${digest}`);
    }
    this.#publish(tmp, shard, final, digest);
  }

  /** Journal mode's add(): temp written, record appended; both without a wait. */
  #addJournaled(
    journal: BlobJournal,
    digest: Digest,
    bytes: Uint8Array,
    shard: string,
    final: string,
  ): { created: boolean } {
    this.#added.add(digest);
    const tmp = this.#tmpDir + sep + tempName();
    writeClosedTemp(tmp, this.#tmpDir, bytes, digest);
    let ticket: JournalTicket;
    try {
      ticket = journal.append(digest, bytes);
    } catch (err) {
      unlinkQuietly(tmp);
      throw err;
    }
    this.#written++;
    this.#journaled.push({ tmp, shard, final, digest, ticket });
    return { created: true };
  }

  /** Journal mode's flush: one durable point for every record, then the links (no fsync of either). */
  async #settleJournaled(journal: BlobJournal): Promise<void> {
    const entries = this.#journaled;
    this.#journaled = [];
    if (entries.length === 0) return;
    try {
      await journal.durable(entries.map((e) => e.ticket));
    } catch (err) {
      for (const e of entries) {
        unlinkQuietly(e.tmp);
        journal.release(e.ticket);
      }
      throw err;
    }
    let failure: unknown;
    for (const e of entries) {
      try {
        if (this.#publish(e.tmp, e.shard, e.final, e.digest, false))
          journal.published(e.ticket, e.final, e.shard);
      } catch (err) {
        failure ??= err;
      } finally {
        journal.release(e.ticket);
      }
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * Links a durable temp file to its blob name (create-if-absent) and drops
   * the temp name; true when this call made the name. `track`: the folder is
   * fsynced by flush() (not in journal mode, where the record stands for it).
   */
  #publish(tmp: string, shard: string, final: string, digest: Digest, track = true): boolean {
    try {
      if (!this.#shards.has(shard)) {
        mkdirSync(shard, { recursive: true });
        this.#shards.add(shard);
      }
      try {
        try {
          linkSync(tmp, final);
        } catch (err) {
          // A shard folder known to the store but gone since (removed by hand): made again.
          if (!isErrno(err, 'ENOENT')) throw err;
          mkdirSync(shard, { recursive: true });
          linkSync(tmp, final);
        }
        if (track) this.#linked.add(shard);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) {
          // A racing writer published the same verified bytes first: theirs stays.
          unlinkQuietly(tmp);
          return false;
        }
        if (isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV')) {
          // No hard links here: rename is atomic too, and the bytes are identical.
          renameSync(tmp, final);
          if (track) this.#linked.add(shard);
          return true;
        }
        throw err;
      }
    } catch (err) {
      unlinkQuietly(tmp);
      throw noSpaceOr(err, `blob ${digest}`);
    }
    unlinkQuietly(tmp);
    return true;
  }

  /** Filesystem mode's add(): the temp written and closed; its syncfs and link come in a round. */
  async #addUnsynced(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }> {
    const fs = this.#fs as FilesystemSync;
    // Bounds the temps waiting (and the tmp folder) while a slow syncfs runs.
    while (this.#unsynced.length >= fs.maxUnsyncedFiles && this.#round) await this.#round;
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false }; // added while we waited
    this.#added.add(digest);
    const name = tempName();
    const tmp = this.#tmpDir + sep + name;
    writeClosedTemp(tmp, this.#tmpDir, bytes, digest);
    this.#written++;
    this.#unsynced.push({ name, digest });
    this.#unsyncedBytes += bytes.byteLength;
    if (!this.#round && (this.#unsynced.length >= fs.roundFiles || this.#unsyncedBytes >= fs.roundBytes))
      this.#startRound();
    return { created: true };
  }

  /** Starts a round for the temps written so far: one syncfs, then their links. */
  #startRound(): void {
    this.#rounds++;
    const entries = this.#unsynced;
    this.#unsynced = [];
    this.#unsyncedBytes = 0;
    const round: Promise<void> = this.#settleRound(entries)
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => {
        if (this.#round !== round) return;
        this.#round = undefined;
        // More waited for this round to end than make a round: the next one starts now.
        const fs = this.#fs as FilesystemSync;
        if (this.#unsynced.length >= fs.roundFiles || this.#unsyncedBytes >= fs.roundBytes)
          this.#startRound();
      });
    this.#round = round;
  }

  async #settleRound(entries: Unsynced[]): Promise<void> {
    const fs = this.#fs as FilesystemSync;
    // Only temps written (and closed) before this syncfs started are covered by it.
    let synced = false;
    if (!fs.failed) {
      try {
        await fs.run(this.#tmpDir);
        synced = true;
      } catch {
        fs.failed = true; // no syncfs here: fsync per file from now on
      }
    }
    if (!synced) {
      try {
        await fsyncEach(
          entries.map((e) => this.#tmpDir + sep + e.name),
          this.#inFlight,
        );
      } catch (err) {
        for (const e of entries) unlinkQuietly(this.#tmpDir + sep + e.name);
        throw noSpaceOr(err, `blob ${entries[0]?.digest}`);
      }
    }
    let failure: unknown;
    for (const e of entries) {
      const hex = hexOf(e.digest);
      const shard = this.#blobsDir + sep + hex.slice(0, 2);
      try {
        this.#publish(this.#tmpDir + sep + e.name, shard, shard + sep + hex, e.digest);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }

  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    if (this.#journal) await this.#settleJournaled(this.#journal);
    while (this.#round || this.#unsynced.length > 0) {
      if (!this.#round) this.#startRound();
      await this.#round;
    }
    this.#throwIfFailed();
    const dirs = [...this.#linked];
    this.#linked.clear();
    if (dirs.length === 0) return;
    if (this.#fs && !this.#fs.failed && this.#rounds > 0) {
      // Every name linked so far, in every shard folder, in one call.
      try {
        await this.#fs.run(this.#blobsDir);
        return;
      } catch {
        this.#fs.failed = true;
      }
    }
    await Promise.all(dirs.map((d) => fsyncDir(d)));
  }

  async abort(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    while (this.#round) await this.#round;
    for (const e of this.#unsynced) unlinkQuietly(this.#tmpDir + sep + e.name);
    this.#unsynced = [];
    for (const e of this.#journaled) {
      unlinkQuietly(e.tmp);
      this.#journal?.release(e.ticket);
    }
    this.#journaled = [];
    this.#unsyncedBytes = 0;
    this.#linked.clear();
  }

  #throwIfFailed(): void {
    if (this.#error !== undefined) throw this.#error;
  }
}

/**
 * A folder's path as `path.join` gives it (normalized, no trailing
 * separator), so a name is appended with one concatenation: the batch makes
 * three to five paths per blob, and `join` (which normalizes every time) was
 * ~3% of a 50,000-file first push's CPU.
 */
function folderPrefix(dir: string): string {
  return join(normalize(dir), '.');
}

/** fsync of each file by path, `limit` at a time in the thread pool (filesystem mode's fallback). */
async function fsyncEach(paths: string[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const fd = openSync(paths[next++], 'r');
      try {
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, paths.length) }, worker));
}

/** A new temp file holding `bytes`, still open; on failure nothing is left behind. */
function writeTemp(tmp: string, tmpDir: string, bytes: Uint8Array, digest: Digest): number {
  let fd: number;
  try {
    fd = openTemp(tmp, tmpDir);
  } catch (err) {
    throw noSpaceOr(err, `blob ${digest}`);
  }
  try {
    for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off);
  } catch (err) {
    closeQuietly(fd);
    unlinkQuietly(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
  return fd;
}

/** A new temp file holding `bytes`, written and closed (no fsync); on failure nothing is left behind. */
function writeClosedTemp(tmp: string, tmpDir: string, bytes: Uint8Array, digest: Digest): void {
  const fd = writeTemp(tmp, tmpDir, bytes, digest);
  try {
    // close can report a deferred write error (NFS): the data is not known to be there.
    closeSync(fd);
  } catch (err) {
    unlinkQuietly(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
}

/** Creates the temp file, and tmp/ with it when a store opened read-only never made it. */
function openTemp(tmp: string, tmpDir: string): number {
  try {
    return openSync(tmp, 'wx');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    mkdirSync(tmpDir, { recursive: true });
    return openSync(tmp, 'wx');
  }
}

/** Whether a blob file is there; a shard that is not a folder counts as absent (its publish fails, at flush). */
function exists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    if (isErrno(err, 'ENOTDIR')) return false;
    throw err;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing: the first error is the one reported
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or the next open's stale-temp sweep removes it
  }
}
