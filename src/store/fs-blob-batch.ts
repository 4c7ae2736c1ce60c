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
//
// This module is the batch and its per-file and journal modes; the parts:
// syncfs-rounds.ts (filesystem mode's rounds), blob-temp-publish.ts (the
// link every mode ends with), blob-temp-files.ts (temp files written, closed,
// removed quietly), fsync-files.ts (per-file fsyncs when syncfs cannot run).

import { closeSync, fsync } from 'node:fs';
import { sep } from 'node:path';
import { promisify } from 'node:util';
import { type Digest, hexOf } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import type { BlobBatch } from './blob-batch.ts';
import type { BlobJournal, JournalTicket } from './blob-journal.ts';
import {
  blobFileExists,
  closeQuietly,
  folderPrefix,
  unlinkQuietly,
  writeClosedTemp,
  writeTemp,
} from './blob-temp-files.ts';
import { publishTemp } from './blob-temp-publish.ts';
import { fsyncDir, tempName } from './fs-atomic.ts';
import { type FilesystemSync, SyncfsRounds } from './syncfs-rounds.ts';

export type { FilesystemSync } from './syncfs-rounds.ts';

const fsyncFd = promisify(fsync);

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
  /** Filesystem mode: the temps waiting for a syncfs round, and the round in flight (syncfs-rounds.ts). */
  readonly #rounds: SyncfsRounds | undefined;
  /** Blobs this batch wrote (either way). */
  #written = 0;
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
    this.#rounds = filesystemSync
      ? new SyncfsRounds({
          fs: filesystemSync,
          tmpDir: this.#tmpDir,
          blobsDir: this.#blobsDir,
          inFlight: this.#inFlight,
          publish: (tmp, shard, final, digest) => this.#publish(tmp, shard, final, digest),
          failed: (err) => {
            this.#error ??= err;
          },
        })
      : undefined;
  }

  async add(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }> {
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false };
    const hex = hexOf(digest);
    const shard = this.#blobsDir + sep + hex.slice(0, 2);
    const final = shard + sep + hex;
    if (blobFileExists(final)) {
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

  /** Links a durable temp file to its name (blob-temp-publish.ts); `track`: its folder fsynced by flush(). */
  #publish(tmp: string, shard: string, final: string, digest: Digest, track = true): boolean {
    return publishTemp(tmp, shard, final, digest, this.#shards, track ? this.#linked : undefined);
  }

  /** Filesystem mode's add(): the temp written and closed; its syncfs and link come in a round. */
  async #addUnsynced(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }> {
    const rounds = this.#rounds as SyncfsRounds;
    // Bounds the temps waiting (and the tmp folder) while a slow syncfs runs.
    while (rounds.full) await rounds.round;
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false }; // added while we waited
    this.#added.add(digest);
    const name = tempName();
    const tmp = this.#tmpDir + sep + name;
    writeClosedTemp(tmp, this.#tmpDir, bytes, digest);
    this.#written++;
    rounds.add(name, digest, bytes.byteLength);
    return { created: true };
  }

  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    if (this.#journal) await this.#settleJournaled(this.#journal);
    if (this.#rounds) await this.#rounds.drain();
    this.#throwIfFailed();
    const dirs = [...this.#linked];
    this.#linked.clear();
    if (dirs.length === 0) return;
    if (this.#fs && !this.#fs.failed && this.#rounds && this.#rounds.started > 0) {
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
    if (this.#rounds) await this.#rounds.abort();
    for (const e of this.#journaled) {
      unlinkQuietly(e.tmp);
      this.#journal?.release(e.ticket);
    }
    this.#journaled = [];
    this.#linked.clear();
  }

  #throwIfFailed(): void {
    if (this.#error !== undefined) throw this.#error;
  }
}
