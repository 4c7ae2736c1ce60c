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

import {
  closeSync,
  fdatasync,
  fstatSync,
  fsync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, digestFromHex, hexOf, sha256 } from '../core/digest.ts';
import { noSpaceOr } from '../core/errors.ts';
import { fsyncDir, isErrno, isPidAlive, pidOfTempName, tempName } from './fs-atomic.ts';
import { statSyncIfExists } from './sync-metadata.ts';

const fsyncFd = promisify(fsync);
// fdatasync: the segment's data and its size (metadata needed to read the data back), not its times.
const fdatasyncFd = promisify(fdatasync);

const MAGIC = 0x484a5231; // "HJR1"
export const JOURNAL_HEAD_BYTES = 40;
const PREFIX = 'journal-';
const SUFFIX = '.log';
/** A record larger than this is not one of ours (replay stops there). */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** Segments this process has open, by path: never replayed by a second store opened in the same process. */
const LIVE = new Set<string>();
/** This boot of the machine (first 8 hex digits of its boot id), in segment names; '0' where there is none. */
export const JOURNAL_BOOT = bootId();
const BOOT = JOURNAL_BOOT;
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

export interface ReplayResult {
  segments: number;
  records: number;
  /** Records whose file was absent or did not verify, written again. */
  rewritten: number;
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
    const head = Buffer.allocUnsafe(JOURNAL_HEAD_BYTES);
    head.writeUInt32BE(MAGIC, 0);
    head.writeUInt32BE(bytes.byteLength, 4);
    head.write(hexOf(digest), 8, 'hex');
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
    const path = join(this.dir, tempName(PREFIX, SUFFIX).replace(/^(journal-\d+\.)/, `$1${BOOT}.`));
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
      await fsyncFiles(seg.files, this.#inFlight);
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

function bootId(): string {
  try {
    return (
      readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')
        .replace(/[^0-9a-f]/g, '')
        .slice(0, 8) || '0'
    );
  } catch {
    return '0';
  }
}

/** writev of head and body, looping on short writes. */
function writeAll(fd: number, head: Buffer, body: Uint8Array): void {
  const total = head.byteLength + body.byteLength;
  let n = writevSync(fd, [head, body]);
  while (n < total) {
    n +=
      n < head.byteLength
        ? writevSync(fd, [head.subarray(n), body])
        : writevSync(fd, [body.subarray(n - head.byteLength)]);
  }
}

/** fsync each file, `limit` at a time in the thread pool; a file gone since (deleted, quarantined) is skipped. */
async function fsyncFiles(paths: readonly string[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++];
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      try {
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, paths.length)) }, worker));
}

/**
 * Replays every segment in `dir` left by a writer that is gone (see the
 * header): each valid record's blob file made whole and durable, then the
 * segment deleted. Runs before the store serves anything.
 */
export async function replayJournal(dir: string, blobsDir: string, tmpDir: string): Promise<ReplayResult> {
  const result: ReplayResult = { segments: 0, records: 0, rewritten: 0 };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return result;
    throw err;
  }
  for (const name of names) {
    if (!name.endsWith(SUFFIX)) continue;
    const pid = pidOfTempName(name, PREFIX);
    // A segment from before the last boot: its writer is gone, whatever runs under its pid now.
    const earlierBoot = name.split('.')[1] !== BOOT;
    const path = join(dir, name);
    if (pid === undefined || LIVE.has(path)) continue;
    // Our own pid on a segment we did not create: an earlier process that had this pid (a restarted container).
    if (!earlierBoot && pid !== process.pid && isPidAlive(pid)) continue;
    await replaySegment(path, blobsDir, tmpDir, result);
    result.segments++;
  }
  if (result.segments > 0) await fsyncDir(dir);
  return result;
}

async function replaySegment(
  path: string,
  blobsDir: string,
  tmpDir: string,
  result: ReplayResult,
): Promise<void> {
  const fd = openSync(path, 'r');
  const shards = new Set<string>();
  const durable: Promise<void>[] = [];
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.allocUnsafe(JOURNAL_HEAD_BYTES);
    for (let off = 0; off + JOURNAL_HEAD_BYTES <= size; ) {
      if (readFully(fd, head, off) < JOURNAL_HEAD_BYTES) break;
      const len = head.readUInt32BE(4);
      if (head.readUInt32BE(0) !== MAGIC || len > MAX_RECORD_BYTES || off + JOURNAL_HEAD_BYTES + len > size)
        break;
      const body = Buffer.allocUnsafe(len);
      if (readFully(fd, body, off + JOURNAL_HEAD_BYTES) < len) break;
      const digest = digestFromHex(head.toString('hex', 8, 40));
      if (sha256(body) !== digest) break; // a torn tail: nothing after it was acknowledged
      off += JOURNAL_HEAD_BYTES + len;
      result.records++;
      const hex = hexOf(digest);
      const shard = join(blobsDir, hex.slice(0, 2));
      const file = join(shard, hex);
      shards.add(shard);
      if (fileHolds(file, body, digest)) durable.push(fsyncFiles([file], 1));
      else {
        result.rewritten++;
        durable.push(rewrite(file, shard, tmpDir, body, digest));
      }
      // Bounded: a few fsyncs at a time, not one promise per record of a 64 MiB segment.
      if (durable.length >= 16) await Promise.all(durable.splice(0));
    }
    await Promise.all(durable.splice(0));
    await Promise.all([...shards].map((d) => fsyncDir(d)));
  } finally {
    await Promise.allSettled(durable);
    closeSync(fd);
  }
  try {
    unlinkSync(path);
  } catch (err) {
    // Two processes starting at once replayed it both (replay is idempotent): gone already.
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/** Whether `file` holds exactly `body` (a torn file from a power loss does not). */
function fileHolds(file: string, body: Buffer, digest: Digest): boolean {
  const st = statSyncIfExists(file);
  if (!st?.isFile() || st.size !== body.byteLength) return false;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.allocUnsafe(body.byteLength);
    return readFully(fd, buf, 0) === body.byteLength && sha256(buf) === digest;
  } finally {
    closeSync(fd);
  }
}

/** The record's bytes written again under its name: temp, fsync, rename (over a torn file). */
async function rewrite(
  file: string,
  shard: string,
  tmpDir: string,
  body: Buffer,
  digest: Digest,
): Promise<void> {
  mkdirSync(shard, { recursive: true });
  mkdirSync(tmpDir, { recursive: true });
  const tmp = join(tmpDir, tempName());
  const fd = openSync(tmp, 'wx');
  try {
    for (let o = 0; o < body.byteLength; ) o += writeSync(fd, body, o);
    await fsyncFd(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw noSpaceOr(err, `blob ${digest}`);
  }
  closeSync(fd);
  renameSync(tmp, file);
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let n = 0;
  while (n < buf.byteLength) {
    const got = readSync(fd, buf, n, buf.byteLength - n, position + n);
    if (got === 0) break;
    n += got;
  }
  return n;
}
