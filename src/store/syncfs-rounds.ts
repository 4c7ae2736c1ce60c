// Filesystem mode of a batch of small blobs (fs-blob-batch.ts; a CLI's push,
// FsBlobStoreOptions.syncFilesystem): no fsync per blob. Temp files are
// written and closed; once enough wait (roundFiles / roundBytes) one
// syncfs(2) of the store's file system makes all of them durable at once
// (sync-filesystem.ts), and only then are they linked — contents durable,
// then a name, so an unsynced temp is never a blob. A round's syncfs runs
// while the scan writes the next temps. When syncfs cannot run (or fails),
// the store falls back to per-file fsync for good (`failed`).

import { sep } from 'node:path';
import { type Digest, hexOf } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import { unlinkQuietly } from './blob-temp-files.ts';
import { fsyncFiles } from './fsync-files.ts';
import type { SyncFilesystem } from './sync-filesystem.ts';

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

export interface SyncfsRoundsOptions {
  fs: FilesystemSync;
  /** The batch's folders, as blob-temp-files.ts's folderPrefix gives them. */
  tmpDir: string;
  blobsDir: string;
  /** fsyncs at once when syncfs cannot run. */
  inFlight: number;
  /** Links a temp made durable to its name (blob-temp-publish.ts, the folder recorded for flush). */
  publish(tmp: string, shard: string, final: string, digest: Digest): void;
  /** A round failed: the batch's first error. */
  failed(err: unknown): void;
}

/** One batch's temps waiting for a round, and the round in flight. */
export class SyncfsRounds {
  readonly #o: SyncfsRoundsOptions;
  /** Temps written since the last round started. */
  #unsynced: Unsynced[] = [];
  #unsyncedBytes = 0;
  /** The round in flight (syncfs, then links); never rejects (failures go to `failed`). */
  #round: Promise<void> | undefined;
  /** Rounds started: with none, the batch's names are made durable per shard folder. */
  started = 0;

  constructor(o: SyncfsRoundsOptions) {
    this.#o = o;
  }

  /** The round in flight, if any. */
  get round(): Promise<void> | undefined {
    return this.#round;
  }

  /** Too many temps wait while a round runs: add() waits for the round (bounds the tmp folder). */
  get full(): boolean {
    return this.#unsynced.length >= this.#o.fs.maxUnsyncedFiles && this.#round !== undefined;
  }

  /** A temp written and closed (`name` in tmp/); starts a round when enough wait. */
  add(name: string, digest: Digest, bytes: number): void {
    const fs = this.#o.fs;
    this.#unsynced.push({ name, digest });
    this.#unsyncedBytes += bytes;
    if (!this.#round && (this.#unsynced.length >= fs.roundFiles || this.#unsyncedBytes >= fs.roundBytes))
      this.#startRound();
  }

  /** Every temp synced and linked (or failed): flush()'s part. */
  async drain(): Promise<void> {
    while (this.#round || this.#unsynced.length > 0) {
      if (!this.#round) this.#startRound();
      await this.#round;
    }
  }

  /** The round in flight ended; the temps still waiting removed. */
  async abort(): Promise<void> {
    while (this.#round) await this.#round;
    for (const e of this.#unsynced) unlinkQuietly(this.#o.tmpDir + sep + e.name);
    this.#unsynced = [];
    this.#unsyncedBytes = 0;
  }

  /** Starts a round for the temps written so far: one syncfs, then their links. */
  #startRound(): void {
    this.started++;
    const entries = this.#unsynced;
    this.#unsynced = [];
    this.#unsyncedBytes = 0;
    const round: Promise<void> = this.#settleRound(entries)
      .catch((err: unknown) => {
        this.#o.failed(err);
      })
      .finally(() => {
        if (this.#round !== round) return;
        this.#round = undefined;
        // More waited for this round to end than make a round: the next one starts now.
        const fs = this.#o.fs;
        if (this.#unsynced.length >= fs.roundFiles || this.#unsyncedBytes >= fs.roundBytes)
          this.#startRound();
      });
    this.#round = round;
  }

  async #settleRound(entries: Unsynced[]): Promise<void> {
    const { fs, tmpDir, blobsDir } = this.#o;
    // Only temps written (and closed) before this syncfs started are covered by it.
    let synced = false;
    if (!fs.failed) {
      try {
        await fs.run(tmpDir);
        synced = true;
      } catch {
        fs.failed = true; // no syncfs here: fsync per file from now on
      }
    }
    if (!synced) {
      try {
        await fsyncFiles(
          entries.map((e) => tmpDir + sep + e.name),
          this.#o.inFlight,
          false,
        );
      } catch (err) {
        for (const e of entries) unlinkQuietly(tmpDir + sep + e.name);
        throw noSpaceOr(err, `blob ${entries[0]?.digest}`);
      }
    }
    let failure: unknown;
    for (const e of entries) {
      const hex = hexOf(e.digest);
      const shard = blobsDir + sep + hex.slice(0, 2);
      try {
        this.#o.publish(tmpDir + sep + e.name, shard, shard + sep + hex, e.digest);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
