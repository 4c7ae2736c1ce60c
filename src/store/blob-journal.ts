// A write-ahead journal for small blobs (the server's group-committed PUTs and
// batched uploads): each verified blob is appended to one journal file as a
// record, and ONE fdatasync of that file makes every record of a group
// durable — where the per-blob way costs an fsync of the blob's file plus an
// fsync of its shard folder (with 256 shard folders, a group of 32 PUTs
// touches ~30 of them), and a group waits for the slowest of its ~60 fsyncs
// (this virtual disk: median 0.2 ms, p90 2 ms, max 67 ms).
//
// Record: magic "HJR1" | u32 BE size | 32-byte SHA-256 | size bytes. A record
// is valid when its digest matches its bytes; replay stops at the first
// invalid one (a torn tail: appends are sequential and each fdatasync covers
// everything written before it, so nothing acknowledged follows a torn record).
//
// The order per blob (fs-blob-batch.ts, journal mode):
//   1. temp file written (no fsync) and the record appended (page cache);
//   2. fdatasync of the journal (shared by every blob appended before it);
//   3. link of the temp file to the blob's name; the write is acknowledged.
// So a blob's name appears only once its record is durable. The file and its
// folder entry are not fsynced yet: they are durable through the record.
// A checkpoint later fsyncs the files and their shard folders, then deletes
// the segment; at start-up (FsBlobStore.open) the segments of dead processes
// are replayed: every valid record's file is checked (size and digest),
// rewritten when absent or torn (temp, fsync, rename over the torn one), then
// fsynced with its folder, and the segment deleted. The crash windows:
// - SIGKILL: the page cache survives; files are whole, records too; replay
//   fsyncs what the dead process had not.
// - power loss: a linked file may be torn or gone (its data and name were
//   only in the page cache), but its record was durable before the link, so
//   replay — which runs before the store serves anything — restores it.
//   Records whose fdatasync never returned were never acknowledged: replayed
//   when whole (verified bytes of a content address: harmless), dropped when torn.
// - during a checkpoint: the segment is deleted only after every file and
//   folder it covers was fsynced.
// One known effect: a blob deleted (GC, DELETE) after its upload but before
// its segment's checkpoint comes back after a crash (a later GC removes it).
//
// Segments are named `journal-<pid>.<boot>.<random><n>.log`, <boot> the
// kernel's boot id (Linux): a process replays only segments of dead writers —
// written before the last boot (after a power loss the old pid may well be
// some other live process now), or by a pid that is not running, or by an
// earlier process that had this process's own pid — never a live server's.
//
// This module is the live journal (segments, appends, durability, checkpoints);
// blob-journal-format.ts holds the record and segment-name layout,
// blob-journal-replay.ts the start-up replay, fsync-files.ts the fsyncs by path.

import { closeSync, fdatasync, openSync, unlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import { JOURNAL_HEAD_BYTES, LIVE, recordHead, segmentPath, writeAll } from './blob-journal-format.ts';
import { type ReplayResult, replayJournal } from './blob-journal-replay.ts';
import { fsyncDir } from './fs-atomic.ts';
import { fsyncFiles } from './fsync-files.ts';

export { JOURNAL_BOOT, JOURNAL_HEAD_BYTES } from './blob-journal-format.ts';
export type { ReplayResult } from './blob-journal-replay.ts';

// fdatasync: the segment's data and its size (metadata needed to read the data back), not its times.
const fdatasyncFd = promisify(fdatasync);

/** Sealed segments waiting for their checkpoint before room() makes appends wait. */
const MAX_BACKLOG = 2;

export interface JournalOptions {
  /** The store's blob folder (`<root>/blobs/sha256`) and temp folder. */
  blobsDir: string;
  tmpDir: string;
  segmentBytes?: number;
  idleCheckpointMs?: number;
  checkpointInFlight?: number;
}

interface Segment {
  path: string;
  fd: number;
  /** Bytes appended; bytes known durable. */
  size: number;
  synced: number;
  syncing: Promise<void> | undefined;
  /** The journal folder fsynced since this segment was created (its name is durable). */
  dirSynced: boolean;
  /** A failed write or fdatasync: nothing more is appended or acknowledged from it. */
  failed: unknown;
  /** Appended records not yet published or dropped by their batch. */
  outstanding: number;
  /** No more appends: checkpointed once outstanding is 0. */
  sealed: boolean;
  /** Blob files linked from this segment's records, and their shard folders. */
  files: string[];
  shards: Set<string>;
}

/** A journaled blob, until its batch published or dropped it (release). */
export interface JournalTicket {
  readonly segment: Segment;
  readonly end: number;
}

export class BlobJournal {
  readonly dir: string;
  readonly #blobsDir: string;
  readonly #tmpDir: string;
  readonly #segmentBytes: number;
  readonly #idleMs: number;
  readonly #inFlight: number;
  #active: Segment | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Checkpoints run one after another. */
  #checkpoints: Promise<void> = Promise.resolve();
  /** Checkpoints scheduled and not finished (room() waits while there are too many). */
  #backlog = 0;
  #closed = false;
  /** Segments checkpointed and deleted; checkpoints that failed (their segment stays, replayed at the next start). */
  checkpointed = 0;
  checkpointFailures = 0;
  /** What the start-up replay did. */
  replayed: ReplayResult = { segments: 0, records: 0, rewritten: 0 };

  private constructor(dir: string, opts: JournalOptions) {
    this.dir = dir;
    this.#blobsDir = opts.blobsDir;
    this.#tmpDir = opts.tmpDir;
    this.#segmentBytes = opts.segmentBytes ?? DEFAULTS.journalSegmentBytes;
    this.#idleMs = opts.idleCheckpointMs ?? DEFAULTS.journalIdleCheckpointMs;
    this.#inFlight = opts.checkpointInFlight ?? DEFAULTS.journalCheckpointInFlight;
  }

  /** Opens the journal in `dir` (created), replaying the segments of dead writers first. */
  static async open(dir: string, opts: JournalOptions): Promise<BlobJournal> {
    await mkdir(dir, { recursive: true });
    const j = new BlobJournal(dir, opts);
    j.replayed = await replayJournal(dir, opts.blobsDir, opts.tmpDir);
    return j;
  }

  /**
   * Appends one verified blob (written before this returns: the caller may
   * reuse `bytes`). Durable only once durable() resolved for its ticket.
   */
  append(digest: Digest, bytes: Uint8Array): JournalTicket {
    let seg = this.#active;
    if (seg && (seg.failed !== undefined || seg.size >= this.#segmentBytes)) {
      this.#seal(seg);
      seg = undefined;
    }
    seg ??= this.#create();
    const head = recordHead(digest, bytes.byteLength);
    try {
      writeAll(seg.fd, head, bytes);
    } catch (err) {
      // A partial record would hide every later one from replay: this segment takes no more.
      seg.failed = err;
      throw noSpaceOr(err, `journal ${seg.path}`);
    }
    seg.size += JOURNAL_HEAD_BYTES + bytes.byteLength;
    seg.outstanding++;
    this.#armIdle();
    return { segment: seg, end: seg.size };
  }

  /**
   * Resolves when the journal may take more: while checkpoints fall behind
   * (more than MAX_BACKLOG segments wait for theirs), appends wait for them, so
   * the journal on disk (and a replay after a crash) stays bounded.
   */
  async room(): Promise<void> {
    while (this.#backlog > MAX_BACKLOG) await this.#checkpoints;
  }

  /** Resolves once every ticket's record is durable (one fdatasync per segment for all of them). */
  async durable(tickets: readonly JournalTicket[]): Promise<void> {
    const ends = new Map<Segment, number>();
    for (const t of tickets) ends.set(t.segment, Math.max(ends.get(t.segment) ?? 0, t.end));
    await Promise.all([...ends].map(([seg, end]) => this.#syncTo(seg, end)));
  }

  async #syncTo(seg: Segment, end: number): Promise<void> {
    while (seg.synced < end) {
      if (seg.failed !== undefined) throw noSpaceOr(seg.failed, `journal ${seg.path}`);
      seg.syncing ??= this.#sync(seg);
      await seg.syncing;
    }
  }

  async #sync(seg: Segment): Promise<void> {
    // Covers exactly what was appended before it started.
    const upto = seg.size;
    try {
      if (!seg.dirSynced) {
        await fsyncDir(this.dir);
        seg.dirSynced = true;
      }
      await fdatasyncFd(seg.fd);
      seg.synced = upto;
    } catch (err) {
      // After a failed fdatasync the kernel may have dropped the dirty pages: never retried.
      seg.failed ??= err;
    } finally {
      seg.syncing = undefined;
    }
  }

  /** The record's blob was linked at `file` (in `shard`): its checkpoint fsyncs both. */
  published(ticket: JournalTicket, file: string, shard: string): void {
    ticket.segment.files.push(file);
    ticket.segment.shards.add(shard);
  }

  /** The batch is done with the ticket (published or dropped). */
  release(ticket: JournalTicket): void {
    const seg = ticket.segment;
    seg.outstanding--;
    if (seg.sealed && seg.outstanding === 0) this.#scheduleCheckpoint(seg);
  }

  /** Seals the active segment and resolves once every sealed segment is checkpointed. */
  async checkpoint(): Promise<void> {
    if (this.#active) this.#seal(this.#active);
    await this.#checkpoints;
  }

  /** Checkpoints what it can (segments with blobs still in a batch stay, replayed at the next start). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.checkpoint();
  }

  #create(): Segment {
    const path = segmentPath(this.dir);
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (err) {
      throw noSpaceOr(err, `journal ${path}`);
    }
    LIVE.add(path);
    const seg: Segment = {
      path,
      fd,
      size: 0,
      synced: 0,
      syncing: undefined,
      dirSynced: false,
      failed: undefined,
      outstanding: 0,
      sealed: false,
      files: [],
      shards: new Set(),
    };
    this.#active = seg;
    return seg;
  }

  #seal(seg: Segment): void {
    if (seg.sealed) return;
    seg.sealed = true;
    if (this.#active === seg) this.#active = undefined;
    if (seg.outstanding === 0) this.#scheduleCheckpoint(seg);
  }

  #armIdle(): void {
    if (this.#closed || this.#idleMs <= 0) return;
    if (this.#timer) this.#timer.refresh();
    else {
      this.#timer = setTimeout(() => {
        const seg = this.#active;
        if (seg && seg.size > 0) this.#seal(seg);
      }, this.#idleMs);
      this.#timer.unref();
    }
  }

  #scheduleCheckpoint(seg: Segment): void {
    // Counted once scheduled (not at sealing): room() waits only on checkpoints that can run.
    this.#backlog++;
    this.#checkpoints = this.#checkpoints.then(() => this.#checkpointSegment(seg));
  }

  async #checkpointSegment(seg: Segment): Promise<void> {
    try {
      await this.#checkpointFiles(seg);
    } finally {
      this.#backlog--;
    }
  }

  async #checkpointFiles(seg: Segment): Promise<void> {
    try {
      // A segment whose fdatasync failed still names durable files (linked
      // only after an earlier sync succeeded): those are fsynced like any other.
      await fsyncFiles(seg.files, this.#inFlight, true);
      await Promise.all([...seg.shards].map((d) => fsyncDir(d)));
      closeSync(seg.fd);
      unlinkSync(seg.path);
      LIVE.delete(seg.path);
      this.checkpointed++;
    } catch {
      // Left on disk (closed): the next start replays it. Nothing is lost meanwhile,
      // its blobs are served from their files.
      this.checkpointFailures++;
      try {
        closeSync(seg.fd);
      } catch {
        // closing a failed segment: nothing more to do
      }
    }
  }
}
