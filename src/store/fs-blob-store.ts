// Filesystem BlobStore: `<root>/blobs/sha256/<2 hex>/<64 hex>`, the same
// layout the bucket remotes use. A write streams into `<root>/tmp/` while
// hashing, fsyncs, and publishes with link(2): link fails if the blob exists,
// which makes publication create-if-absent and safe between processes — the
// loser of a race simply drops its temp file, and a published blob is never
// replaced. A crash leaves at most a temp file, removed by the next open.

import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobWant } from '../core/blob-batch-frame.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, digestFromHex, Hasher, hexOf, sha256, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError, DigestMismatchError, HoardError, noSpaceOr } from '../core/errors.ts';
import { drain } from '../core/streams.ts';
import type { BatchingBlobStore } from './blob-batch.ts';
import { BlobJournal, type JournalOptions } from './blob-journal.ts';
import {
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type ByteSource,
  type ListOptions,
  missingByHas,
  type ReadManyOptions,
  type ReadManyRecord,
  resolveRange,
  type WriteOptions,
  type WriteResult,
} from './blob-store.ts';
import { cleanStaleTemps, fsyncDir, isErrno, tempName, writeFullyAt } from './fs-atomic.ts';
import { FsBlobBatch } from './fs-blob-batch.ts';
import type { BlobFileWriter, LocalBlobFiles } from './local-blob-files.ts';
import { readManyByRead } from './read-many.ts';
import { type SyncFilesystem, syncFilesystem } from './sync-filesystem.ts';
import { readBlobIntoSync, readSmallBlobSync, statSyncIfExists } from './sync-metadata.ts';
import type { FilesystemSync } from './syncfs-rounds.ts';

export interface FsBlobStoreOptions {
  /** Existence checks with synchronous calls (sync-metadata.ts): for the server's own local data directory. */
  syncStat?: boolean;
  /**
   * Whole reads of blobs up to syncSmallFileBytes with synchronous calls
   * (open, fstat, read, close: microseconds when page-cached, against four
   * thread-pool hand-offs and a stream). Only for a process whose event loop
   * nothing else waits on (the CLI's push and pull): on a slow or network
   * disk each read blocks the loop.
   */
  syncReads?: boolean;
  /**
   * Batches make their blobs durable with syncfs(2) of the store's file
   * system, not one fsync per blob (fs-blob-batch.ts, "filesystem mode"):
   * `true` runs coreutils' `sync -f` (sync-filesystem.ts), a function is
   * called instead (tests). Only for a process that owns its writes (the
   * CLI's push): a syncfs also writes back every other process's dirty data
   * on that file system, which a busy server must not do per request.
   */
  syncFilesystem?: boolean | SyncFilesystem;
  /**
   * Batches (the server's group-committed small PUTs and batched uploads)
   * make their blobs durable through a write-ahead journal in
   * `<root>/journal` (blob-journal.ts): one fdatasync per group instead of an
   * fsync per blob and per shard folder. open() replays what a dead writer
   * left there; close() checkpoints. Only for the one process that serves
   * the data directory (a server): `true`, or the journal's settings (tests).
   */
  journal?: boolean | Omit<JournalOptions, 'blobsDir' | 'tmpDir'>;
}

export class FsBlobStore implements BlobStore, LocalBlobFiles, BatchingBlobStore {
  readonly root: string;
  readonly description: string;
  readonly blobsDir: string;
  readonly tmpDir: string;

  /** Existence checks done synchronously (sync-metadata.ts): the server's own local data directory. */
  readonly #syncStat: boolean;
  /** Whole reads of small blobs done synchronously: a CLI process, whose event loop nothing else waits on. */
  readonly #syncReads: boolean;
  /** Shard folders this store's batches know exist (fs-blob-batch.ts). */
  readonly #shards = new Set<string>();
  /** Filesystem mode of this store's batches (shared, so a syncfs that cannot run is tried once). */
  readonly #filesystemSync: FilesystemSync | undefined;
  /** The small-blob journal of this store's batches (FsBlobStoreOptions.journal). */
  #journal: BlobJournal | undefined;

  private constructor(root: string, opts: FsBlobStoreOptions = {}) {
    this.root = root;
    this.#syncStat = opts.syncStat ?? false;
    this.#syncReads = opts.syncReads ?? false;
    this.readMany = this.#syncReads ? (wants, each, o) => this.#readManySync(wants, each, o) : undefined;
    const run = opts.syncFilesystem === true ? syncFilesystem : opts.syncFilesystem || undefined;
    this.#filesystemSync = run && {
      run,
      failed: false,
      minBlobs: DEFAULTS.syncFsMinBlobs,
      roundFiles: DEFAULTS.syncFsRoundFiles,
      roundBytes: DEFAULTS.syncFsRoundBytes,
      maxUnsyncedFiles: DEFAULTS.syncFsMaxUnsyncedFiles,
    };
    this.description = `file://${root}`;
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.tmpDir = join(root, 'tmp');
  }

  /** Opens (creating) a store and removes temp files left by dead writers. */
  static async open(root: string, opts: FsBlobStoreOptions = {}): Promise<FsBlobStore> {
    const store = new FsBlobStore(root, opts);
    await mkdir(store.blobsDir, { recursive: true });
    await mkdir(store.tmpDir, { recursive: true });
    await cleanStaleTemps(store.tmpDir, DEFAULTS.staleTempMs);
    if (opts.journal) {
      store.#journal = await BlobJournal.open(join(root, 'journal'), {
        ...(opts.journal === true ? {} : opts.journal),
        blobsDir: store.blobsDir,
        tmpDir: store.tmpDir,
      });
    }
    return store;
  }

  /** The small-blob journal, when the store was opened with one (tests, metrics). */
  get journal(): BlobJournal | undefined {
    return this.#journal;
  }

  /** Checkpoints the journal (its blobs' files and folders fsynced, its segments deleted). */
  async close(): Promise<void> {
    await this.#journal?.close();
  }

  /** Opens without creating or cleaning anything (for fsck on a live data directory). */
  static async openReadOnly(root: string, opts: FsBlobStoreOptions = {}): Promise<FsBlobStore> {
    return new FsBlobStore(root, opts);
  }

  pathOf(digest: Digest): string {
    return FsBlobStore.pathIn(this.root, digest);
  }

  fileOf(digest: Digest): string {
    return this.pathOf(digest);
  }

  /** Where a blob's file lives in the store rooted at `root`. */
  static pathIn(root: string, digest: Digest): string {
    const hex = hexOf(digest);
    return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    if (this.#syncStat) {
      const st = statSyncIfExists(this.pathOf(digest));
      return st && { digest, size: st.size };
    }
    try {
      const st = await stat(this.pathOf(digest));
      return { digest, size: st.size };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    if (this.#syncReads && range === undefined) {
      const got = readSmallBlobSync(this.pathOf(digest), DEFAULTS.syncSmallFileBytes);
      if (got === 'absent') throw new BlobNotFoundError(digest);
      // Shorter than its stat (truncated under us): what was read; the reader's digest check says the rest.
      if (got !== 'large') return Readable.from([got.bytes]);
    }
    // Open first, then fstat: the descriptor pins the file even if it is
    // evicted or deleted while we stream it.
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(this.pathOf(digest), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new BlobNotFoundError(digest);
      throw err;
    }
    try {
      const { size } = await fh.stat();
      const { start, end } = resolveRange(range, size);
      if (end <= start) {
        await fh.close();
        return Readable.from([]);
      }
      return createReadStream('', {
        fd: fh,
        start,
        end: end - 1,
        // Small blobs get a small buffer: a 256 KiB allocation per 1 KiB file
        // is what dominated a 10,000-file pull.
        highWaterMark: Math.min(DEFAULTS.streamChunkBytes, end - start),
      });
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * Many small blobs (BlobStore.readMany), only with syncReads (a CLI's pull
   * from a file:// remote: tens of thousands of blobs of a few KiB): each is
   * read whole with synchronous calls into one buffer reused for every blob —
   * open, read, close: the wanted size bounds the read (one byte past it
   * shows a longer file), so no fstat — then verified and handed over; the
   * bytes are valid until `each` settles. No stream, no promise chain and no
   * allocation per blob: a fresh buffer per blob kept the allocator's heap
   * growing (~30 MiB more RSS at 10,000 files) and V8 collecting for the
   * external memory. Without syncReads the store has no readMany, so callers
   * take read-many.ts's fallback through the remote they hold: its `read`s,
   * bounded by their own concurrency and cancelled by their signal.
   */
  readonly readMany: BlobStore['readMany'];

  async #readManySync(
    wants: readonly BlobWant[],
    each: (record: ReadManyRecord) => void | Promise<void>,
    opts: ReadManyOptions = {},
  ): Promise<void> {
    let buf: Buffer | undefined;
    const later: BlobWant[] = [];
    for (const w of wants) {
      opts.signal?.throwIfAborted();
      if (w.size > DEFAULTS.syncSmallFileBytes) {
        later.push(w);
        continue;
      }
      if (!buf || buf.byteLength < w.size + 1)
        buf = Buffer.allocUnsafe(Math.max(w.size + 1, 64 * 1024, (buf?.byteLength ?? 0) * 2));
      const n = readBlobIntoSync(this.pathOf(w.digest), buf, w.size + 1);
      if (n === 'absent') {
        await each({ digest: w.digest, status: 'missing' });
        continue;
      }
      if (n > w.size) throw new DigestMismatchError(w.digest, `(more than the expected ${w.size} bytes)`);
      const bytes = buf.subarray(0, n);
      const actual = sha256(bytes);
      if (actual !== w.digest) throw new DigestMismatchError(w.digest, actual);
      await each({ digest: w.digest, status: 'present', bytes });
    }
    if (later.length > 0) await readManyByRead(this, later, each, { concurrency: 1, signal: opts.signal });
  }

  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const existing = await this.stat(digest);
    if (existing) {
      await drain(source);
      return { created: false, size: existing.size };
    }
    const tmp = join(this.tmpDir, tempName());
    const verify = new VerifyingStream(digest, opts.size);
    try {
      // flush: fsync before close, so the bytes are durable before the link publishes them.
      const out = createWriteStream(tmp, {
        flags: 'wx',
        flush: true,
        highWaterMark: DEFAULTS.streamChunkBytes,
      });
      await pipeline(source, verify, out, { signal: opts.signal });
    } catch (err) {
      await unlink(tmp).catch(() => {});
      // A full disk is the store's failure, not the source's: it must not read as a cut-off body.
      throw noSpaceOr(err, `blob ${digest}`);
    }
    const created = await this.#publish(tmp, digest);
    return { created, size: verify.hasher.size };
  }

  /**
   * Publishes a verified, durable temp file as the blob: link(2) is
   * create-if-absent, so a racing copy wins and ours is dropped (false).
   * The temp file is gone afterwards whatever happens.
   */
  async #publish(tmp: string, digest: Digest): Promise<boolean> {
    const final = this.pathOf(digest);
    const dir = join(this.blobsDir, hexOf(digest).slice(0, 2));
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw noSpaceOr(err, `blob ${digest}`);
    }
    let created = true;
    try {
      await link(tmp, final);
    } catch (err) {
      if (isErrno(err, 'EEXIST')) created = false;
      else if (isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV')) {
        // File systems without hard links: rename is still atomic; the bytes
        // are verified identical, so replacing a racing copy is harmless.
        await rename(tmp, final).catch(async (e) => {
          await unlink(tmp).catch(() => {});
          throw noSpaceOr(e, `blob ${digest}`);
        });
      } else {
        await unlink(tmp).catch(() => {});
        throw noSpaceOr(err, `blob ${digest}`);
      }
    }
    await unlink(tmp).catch(() => {});
    if (created) await fsyncDir(dir);
    return created;
  }

  /** Small blobs from memory, made durable together by flush() (fs-blob-batch.ts). */
  batch(): FsBlobBatch {
    return new FsBlobBatch(
      this.blobsDir,
      this.tmpDir,
      DEFAULTS.syncFsyncInFlight,
      this.#shards,
      this.#filesystemSync,
      this.#journal,
    );
  }

  /**
   * A positional writer into a temp file of this store (a fill): hashed as
   * it grows, readable while it grows, published by commit() with the same
   * fsync + link step as write().
   */
  async createWriter(digest: Digest, size: number): Promise<BlobFileWriter> {
    const tmp = join(this.tmpDir, tempName());
    const fh = await open(tmp, 'wx+');
    return new TempFileWriter(digest, size, tmp, fh, (t) => this.#publish(t, digest));
  }

  /**
   * Moves a blob file out of `<root>/blobs/` into `<root>/quarantine/<hex>.<ms>`
   * (never deletes: a human may want to look at it). With `ifIno`, only when
   * the file at the blob's path is still that inode: a server that found a
   * corrupt copy must not quarantine the correct one a re-upload put in its
   * place meanwhile. (Between that check and the rename a new copy could
   * still land; it would be quarantined and show as missing, so the next
   * upload puts it back: a lost copy, never a wrong one served.)
   * Returns the quarantine path, or undefined when there was nothing to move.
   */
  async quarantine(digest: Digest, opts: { ifIno?: number } = {}): Promise<string | undefined> {
    const path = this.pathOf(digest);
    if (opts.ifIno !== undefined) {
      const st = await stat(path).catch(() => undefined);
      if (!st || st.ino !== opts.ifIno) return undefined;
    }
    const qdir = join(this.root, 'quarantine');
    await mkdir(qdir, { recursive: true });
    const dest = join(qdir, `${hexOf(digest)}.${Date.now()}`);
    try {
      await rename(path, dest);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    return dest;
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.pathOf(digest));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async *list(opts: ListOptions = {}): AsyncIterable<BlobInfo> {
    // Seek to the cursor: shards below its shard are not read at all, and in its shard only names after it are stat'ed.
    const afterHex = opts.after === undefined ? undefined : hexOf(opts.after);
    const afterShard = afterHex?.slice(0, 2);
    let shards: string[];
    try {
      shards = (await readdir(this.blobsDir)).sort();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const shard of shards) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      if (afterShard !== undefined && shard < afterShard) continue;
      opts.signal?.throwIfAborted();
      const names = await readdir(join(this.blobsDir, shard)).catch(() => [] as string[]);
      for (const name of names.sort()) {
        if (!/^[0-9a-f]{64}$/.test(name) || !name.startsWith(shard)) continue;
        if (afterHex !== undefined && name <= afterHex) continue;
        const st = await stat(join(this.blobsDir, shard, name)).catch(() => undefined);
        if (st?.isFile()) yield { digest: digestFromHex(name), size: st.size };
      }
    }
  }

  missing(digests: readonly Digest[]): Promise<Digest[]> {
    return missingByHas(this, digests, 64);
  }
}

/** FsBlobStore.createWriter's writer: one descriptor for writes and followers' reads, until close(). */
class TempFileWriter implements BlobFileWriter {
  readonly digest: Digest;
  readonly size: number;
  bytesWritten = 0;
  #tmp: string;
  #fh: FileHandle | undefined;
  #hasher = new Hasher();
  #publish: (tmp: string) => Promise<boolean>;
  #ended = false;

  constructor(
    digest: Digest,
    size: number,
    tmp: string,
    fh: FileHandle,
    publish: (tmp: string) => Promise<boolean>,
  ) {
    this.digest = digest;
    this.size = size;
    this.#tmp = tmp;
    this.#fh = fh;
    this.#publish = publish;
  }

  #open(): FileHandle {
    if (!this.#fh) throw new HoardError('HOARD_EINTERNAL', `writer of ${this.digest} is closed`);
    return this.#fh;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#ended) throw new HoardError('HOARD_EINTERNAL', `writer of ${this.digest} already ended`);
    if (this.bytesWritten + chunk.byteLength > this.size)
      throw new HoardError('HOARD_ETOO_LARGE', `more than the ${this.size} bytes of ${this.digest}`);
    await writeFullyAt(this.#open(), chunk, this.bytesWritten, `blob ${this.digest}`);
    this.#hasher.update(chunk);
    this.bytesWritten += chunk.byteLength;
  }

  async readAt(buf: Buffer, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.#open().read(buf, 0, length, position);
    return bytesRead;
  }

  async commit(): Promise<{ created: boolean }> {
    if (this.#ended) throw new HoardError('HOARD_EINTERNAL', `writer of ${this.digest} already ended`);
    this.#ended = true;
    try {
      if (this.bytesWritten !== this.size)
        throw new HoardError(
          'HOARD_ETRUNCATED',
          `got ${this.bytesWritten} of ${this.size} bytes of ${this.digest}`,
        );
      const actual = this.#hasher.digest();
      if (actual !== this.digest) throw new DigestMismatchError(this.digest, actual);
      // Durable before the link makes it visible: a crash never publishes a torn blob.
      await this.#open()
        .sync()
        .catch((err) => {
          throw noSpaceOr(err, `blob ${this.digest}`);
        });
    } catch (err) {
      await unlink(this.#tmp).catch(() => {});
      throw err;
    }
    // The descriptor stays open: followers keep reading the (now linked, then unlinked) temp inode.
    return { created: await this.#publish(this.#tmp) };
  }

  async abort(): Promise<void> {
    this.#ended = true;
    await unlink(this.#tmp).catch(() => {});
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => {});
  }
}
