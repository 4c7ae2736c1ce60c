// The tier stack's reads of its disk tier (tiered-blob-store.ts), and the
// trust they rest on. A disk file is trusted only once this process has
// hashed it and while it stays the same file (disk-verify.ts): the first
// whole read of a disk blob is verified while it streams, its last chunk held
// back until the digest matches; a mismatch quarantines the file (store/
// fsck.ts's quarantine), counts in hoard_blob_corrupt_total and cuts the
// response off, and the next read falls through to the shared tier (or 404s,
// as `missing` then says). Small blobs (≤ 64 KiB) and ranged reads of an
// untrusted file are verified before the answer starts, by one hash pass of
// the whole file (single-flight per blob): a range cannot be checked on its
// own, and streaming it unverified would serve bytes no digest vouches for;
// the cost is one sequential read of the blob, once per process, before the
// first range of it. A corrupt copy found that way is a plain miss.
//
// The disk is read with synchronous calls when asked (syncReads: the
// server's data directory is a local disk, and a page-cached 4 KiB read costs
// microseconds against four thread-pool round trips), falling back to the
// thread pool while the disk is slow (sync-read-guard.ts). A whole read of a
// blob that fits the memory tier keeps a copy there, but only with a
// reservation within the tier's bound, and only once it verified; a slow
// client pins about two chunks (DEFAULTS.serveChunkBytes) of a streamed one.
//
// The trust set, the per-blob check flight and the quarantine stay private
// here: the facade and the write paths ask (checked, trustWritten,
// trustWrittenSync, forget), they never hold the set.

import type { Stats } from 'node:fs';
import { type FileHandle, stat as fsStat, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, sha256 } from '../core/digest.ts';
import { DigestMismatchError, HoardError } from '../core/errors.ts';
import { SingleFlight } from '../core/single-flight.ts';
import { type BlobHandle, bufferHandle } from '../store/blob-handle.ts';
import { isErrno } from '../store/fs-atomic.ts';
import { readSmallBlobSync, statSyncIfExists } from '../store/sync-metadata.ts';
import { diskStream } from './disk-stream.ts';
import { fileIdentity, hashFile, readFully, TrustedFiles } from './disk-verify.ts';
import { HotBlobs } from './hot-blobs.ts';
import { SyncReadGuard } from './sync-read-guard.ts';
import type { CorruptSource, DiskCheck, DiskTier, MemoryTier, TierHooks, TierName } from './tier-types.ts';

/** Disk blobs up to this size are read in one call and sent as a buffer, not streamed. */
const SMALL_READ_BYTES = 64 * 1024;

export interface DiskTierReaderOptions {
  memory: MemoryTier;
  disk: DiskTier;
  /** Told of every corrupt copy found (the same object the facade's hooks are: set later, still seen). */
  hooks: TierHooks;
  /** How many verified disk files are remembered (DEFAULTS.trustedDiskFiles). */
  trustedFiles?: number;
  /** Read the disk with synchronous calls (TieredOptions.syncReads). */
  syncReads?: boolean;
  /** The guard's threshold and clock (tests). */
  syncReadGuard?: { slowMs?: number; now?: () => number };
  /** With syncReads: bytes of small verified blobs kept for readSync (hot-blobs.ts); 0 for none. */
  hotBlobBytes?: number;
}

export class DiskTierReader {
  readonly #memory: MemoryTier;
  readonly #disk: DiskTier;
  readonly #hooks: TierHooks;
  readonly #trusted: TrustedFiles;
  /** One verification pass of a disk file at a time per blob (ranged reads, writes). */
  readonly #checks = new SingleFlight<Digest, DiskCheck>();
  /** Set when the disk is read with synchronous calls (syncReads). */
  readonly #sync: SyncReadGuard | undefined;
  /** Small disk blobs read and hashed for readSync that the memory tier did not take (hot-blobs.ts). */
  readonly #hot: HotBlobs | undefined;
  /** Corrupt disk copies found (and quarantined) since start. */
  corruptFound = 0;

  constructor(opts: DiskTierReaderOptions) {
    this.#memory = opts.memory;
    this.#disk = opts.disk;
    this.#hooks = opts.hooks;
    this.#trusted = new TrustedFiles(opts.trustedFiles ?? DEFAULTS.trustedDiskFiles);
    this.#sync = opts.syncReads ? new SyncReadGuard(opts.syncReadGuard) : undefined;
    const hotBytes = opts.hotBlobBytes ?? DEFAULTS.hotBlobBytes;
    this.#hot =
      this.#sync && hotBytes > 0
        ? new HotBlobs({ maxBytes: hotBytes, maxBlobBytes: SMALL_READ_BYTES })
        : undefined;
  }

  /** Whether disk reads go through the thread pool for now (synchronous ones were slow). */
  get syncReadsPaused(): boolean {
    return this.#sync?.paused ?? false;
  }

  /** Times slow synchronous reads paused them, since start (tests). */
  get syncReadPauses(): number {
    return this.#sync?.pauses ?? 0;
  }

  /**
   * A small disk blob's bytes without waiting (TieredBlobStore.openSync):
   * read with synchronous calls and trusted or hashed now, or kept hot and
   * its file unchanged (one stat). 'async' for anything else (no synchronous
   * reads, paused, absent, large, a file that does not hash): nothing was
   * counted or changed then.
   */
  readSync(digest: Digest): Buffer | 'async' {
    const sync = this.#sync;
    if (!sync || sync.paused) return 'async';
    const path = this.#disk.fileOf(digest);
    // Read and hashed before, its file unchanged since (one stat, no read): as a disk read.
    const hot = this.#hot?.get(digest, path);
    if (hot) {
      this.#disk.used?.(digest);
      return hot;
    }
    const got = sync.run(() => readSmallBlobSync(path, SMALL_READ_BYTES));
    if (got === 'absent' || got === 'large' || got.bytes.byteLength !== got.stats.size) return 'async';
    const identity = fileIdentity(got.stats);
    if (!this.#trusted.has(digest, identity)) {
      if (sha256(got.bytes) !== digest) return 'async';
      this.#trusted.add(digest, identity);
    }
    this.#disk.used?.(digest);
    if (this.#memory.reserve(got.stats.size)) this.#memory.put(digest, got.bytes, { reserved: true });
    else this.#hot?.add(digest, got.bytes, got.stats);
    return got.bytes;
  }

  /**
   * Opens the disk copy of a blob, or undefined (absent, or corrupt and
   * quarantined). `ranged`: only part of it is wanted, so an untrusted file
   * is hashed whole first.
   */
  async open(digest: Digest, ranged: boolean, attempt = 0): Promise<BlobHandle<TierName> | undefined> {
    const sync = this.#sync;
    if (sync && !sync.paused) {
      const path = this.#disk.fileOf(digest);
      const got = sync.run(() => readSmallBlobSync(path, SMALL_READ_BYTES));
      if (got === 'absent') return undefined;
      if (got !== 'large') return this.#small(digest, got.bytes, got.stats, ranged, attempt);
      // Large: streamed from a descriptor opened below (its own fstat decides trust).
    }
    let fh: FileHandle;
    try {
      fh = await open(this.#disk.fileOf(digest), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    let st: Stats;
    try {
      st = await fh.stat();
    } catch (err) {
      await fh.close();
      throw err;
    }
    const size = st.size;
    if (size <= SMALL_READ_BYTES) {
      let buf: Buffer;
      try {
        buf = Buffer.allocUnsafe(size);
        buf = buf.subarray(0, await readFully(fh, buf, size, 0));
      } finally {
        await fh.close();
      }
      return this.#small(digest, buf, st, ranged, attempt);
    }
    this.#disk.used?.(digest);
    const trusted = this.#trusted.has(digest, fileIdentity(st));
    if (!trusted && ranged) {
      // A range cannot be verified on its own: hash the whole file once first.
      await fh.close();
      const check = await this.checked(digest, 'read');
      if (check !== 'sound' || attempt >= 2) return undefined;
      return this.open(digest, ranged, attempt + 1);
    }
    return this.#handle(digest, fh, st, trusted);
  }

  /**
   * A small disk blob read whole (`buf`, from the file `st` describes): checked
   * before answering unless this process trusts that file, so a corrupt copy
   * is a plain miss. A read shorter than the stat (truncated under us) retries.
   */
  async #small(
    digest: Digest,
    buf: Buffer,
    st: Stats,
    ranged: boolean,
    attempt: number,
  ): Promise<BlobHandle<TierName> | undefined> {
    const size = st.size;
    if (buf.byteLength !== size) return attempt < 2 ? this.open(digest, ranged, attempt + 1) : undefined;
    this.#disk.used?.(digest);
    const identity = fileIdentity(st);
    if (!this.#trusted.has(digest, identity)) {
      if (sha256(buf) !== digest) {
        await this.#quarantine(digest, st.ino, 'read');
        return undefined;
      }
      this.#trusted.add(digest, identity);
    }
    if (this.#memory.reserve(size)) this.#memory.put(digest, buf, { reserved: true });
    return bufferHandle(buf, 'disk');
  }

  #handle(digest: Digest, fh: FileHandle, st: Stats, trusted: boolean): BlobHandle<TierName> {
    const size = st.size;
    const identity = fileIdentity(st);
    const memory = this.#memory;
    let taken = false;
    const closeFh = () => {
      fh.close().catch(() => {});
    };
    return {
      size,
      tier: 'disk',
      stream: (start, end) => {
        taken = true;
        if (end <= start) {
          closeFh();
          return Readable.from([]);
        }
        const whole = start === 0 && end === size;
        if (!trusted && !whole) return this.#verifiedRange(digest, fh, st, start, end);
        // Keep a copy in memory only within the tier's bound, reserved before a byte is read.
        const keep = whole && size <= memory.maxBlobBytes && memory.reserve(size);
        const into = keep ? Buffer.allocUnsafe(size) : undefined;
        return diskStream({
          fh,
          start,
          end,
          chunkBytes: DEFAULTS.serveChunkBytes,
          sync: this.#sync,
          into,
          verify: trusted
            ? undefined
            : {
                digest,
                verified: () => this.#trusted.add(digest, identity),
                mismatch: () => this.#quarantine(digest, st.ino, 'read'),
              },
          done: (complete) => {
            closeFh();
            if (!into) return;
            if (complete) memory.put(digest, into, { reserved: true });
            else memory.unreserve(size);
          },
        });
      },
      close() {
        if (!taken) closeFh();
      },
    };
  }

  /** A range of a file not trusted yet (a caller that opened without `ranged`): hash it all, then serve. */
  #verifiedRange(digest: Digest, fh: FileHandle, st: Stats, start: number, end: number): Readable {
    const self = this;
    const stream = Readable.from(
      (async function* () {
        const actual = await hashFile(fh, st.size, { chunkBytes: DEFAULTS.streamChunkBytes });
        if (actual !== digest) {
          await self.#quarantine(digest, st.ino, 'read');
          throw new DigestMismatchError(digest, actual);
        }
        self.#trusted.add(digest, fileIdentity(st));
        yield* diskStream({ fh, start, end, chunkBytes: DEFAULTS.serveChunkBytes, done: () => {} });
      })(),
      { objectMode: false, highWaterMark: DEFAULTS.serveChunkBytes },
    );
    stream.once('close', () => {
      fh.close().catch(() => {});
    });
    return stream;
  }

  /** check() for readers and writers: one verification pass of a blob's disk file at a time. */
  checked(digest: Digest, source: CorruptSource): Promise<DiskCheck> {
    return this.#checks.do(digest, () => this.check(digest, source));
  }

  /**
   * Hashes the disk copy of a blob unless this process already trusts that
   * file (`force`: even then — the scrub looks for bit rot, which changes no
   * file identity); a corrupt copy is quarantined. `beforeChunk` paces the
   * reads (the scrub's rate). Not single-flight: readers and writers go
   * through checked().
   */
  async check(
    digest: Digest,
    source: CorruptSource,
    opts: { force?: boolean; beforeChunk?: (bytes: number) => Promise<void> } = {},
  ): Promise<DiskCheck> {
    const { beforeChunk } = opts;
    let fh: FileHandle;
    try {
      fh = await open(this.#disk.fileOf(digest), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 'absent';
      throw err;
    }
    try {
      const st = await fh.stat();
      const identity = fileIdentity(st);
      if (!opts.force && this.#trusted.has(digest, identity)) return 'sound';
      let actual: Digest | undefined;
      try {
        actual = await hashFile(fh, st.size, { chunkBytes: DEFAULTS.streamChunkBytes, beforeChunk });
      } catch (err) {
        // The file shrank while being read: it is being changed in place, which a blob never is.
        if (!(err instanceof HoardError && err.code === 'HOARD_ETRUNCATED')) throw err;
      }
      if (actual === digest) {
        this.#trusted.add(digest, identity);
        return 'sound';
      }
      await this.#quarantine(digest, st.ino, source);
      return 'corrupt';
    } finally {
      await fh.close();
    }
  }

  /** Whether this process has verified the blob's current disk file (tests, scrub). */
  async isTrusted(digest: Digest): Promise<boolean> {
    const st = await fsStat(this.#disk.fileOf(digest)).catch(() => undefined);
    return st !== undefined && this.#trusted.has(digest, fileIdentity(st));
  }

  /** Records a file this process just wrote and verified (a PUT, a fill) as trusted. */
  async trustWritten(digest: Digest): Promise<void> {
    const st = await fsStat(this.#disk.fileOf(digest)).catch(() => undefined);
    if (st) this.#trusted.add(digest, fileIdentity(st));
  }

  /** trustWritten with one synchronous stat (a write batch's linked files, once flushed). */
  trustWrittenSync(digest: Digest): void {
    const st = statSyncIfExists(this.#disk.fileOf(digest));
    if (st) this.#trusted.add(digest, fileIdentity(st));
  }

  /** Forgets the blob's trust (it is being deleted). */
  forget(digest: Digest): void {
    this.#trusted.forget(digest);
  }

  /**
   * Moves a corrupt disk copy to quarantine (only if it is still the file
   * found corrupt: a re-upload may have replaced it) and drops every trace
   * of it: trust, the memory copy, the disk index entry.
   */
  async #quarantine(digest: Digest, ino: number, source: CorruptSource): Promise<void> {
    this.#trusted.forget(digest);
    this.#hot?.forget(digest);
    this.corruptFound++;
    await this.#memory.delete(digest);
    let moved: string | undefined;
    try {
      moved = await this.#disk.quarantine(digest, { ifIno: ino });
    } catch {
      // Could not move it (permissions?): it stays untrusted, so every read checks it again.
    }
    this.#hooks.corrupt?.(digest, source, moved);
  }
}
