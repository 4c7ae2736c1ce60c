// The server's blob store: memory (LRU) → disk (FsBlobStore) → optional
// shared remote, which is authoritative when present.
//
// Reads: the first tier holding the blob serves it. A disk file is trusted
// only once this process has hashed it and while it stays the same file
// (disk-verify.ts): the first whole read of a disk blob is verified while it
// streams, its last chunk held back until the digest matches; a mismatch
// quarantines the file (store/fsck.ts's quarantine), counts in
// hoard_blob_corrupt_total and cuts the response off, and the next read
// falls through to the shared tier (or 404s, as `missing` then says).
// Small blobs (≤ 64 KiB) and ranged reads of an untrusted file are
// verified before the answer starts, by one hash pass of the whole file
// (single-flight per blob): a range cannot be checked on its own, and
// streaming it unverified would serve bytes no digest vouches for; the cost
// is one sequential read of the blob, once per process, before the first
// range of it. A corrupt copy found that way is a plain miss. The server
// reads its disk with synchronous calls (syncReads: its data directory is a
// local disk, and a page-cached 4 KiB read costs microseconds against four
// thread-pool round trips), falling back to the thread pool while the disk
// is slow (sync-read-guard.ts).
//
// Memory: a disk read streams chunk by chunk (a slow client pins about two
// chunks, DEFAULTS.serveChunkBytes). A whole read of a blob that fits the
// memory tier also keeps a copy, but only with a reservation within the
// tier's bound (memory-blob-store.ts), and only once it verified. Without a
// shared tier the memory tier holds copies of disk files only, so a memory
// hit is served only while the file is still there (fsck may have moved it):
// GET and `missing` agree. A miss of both upper tiers starts (or joins) the one Fill of
// that blob (fill.ts): a single upstream read teed into the disk tier's temp
// file, which every waiting client follows as it grows — 100 concurrent GETs
// of a cold blob are one read of the shared tier, and each client gets bytes
// as they arrive. A failed fill reaches every reader and is forgotten, so the
// next request starts a fresh one.
//
// Ranged cold reads: a range is passed down to the shared tier (a ranged
// read, streamed straight through) unless a fill of the blob is already in
// progress and has reached, or will soon reach, the range's start
// (fillFollowWindowBytes), in which case the range follows the fill. A
// ranged cold read also starts a background fill (fillOnRangeRead), so the
// next reader is warm; parallel range downloads of a big snapshot therefore
// cost the shared tier at most one whole read plus the ranges that ran ahead
// of it, and never make a small range wait for the whole blob.
//
// Writes: verified into the disk tier first (a temp file, hashed while it
// streams), then copied to the shared tier before the write returns, so a
// PUT is acknowledged only once the authoritative tier has the blob. A
// write of a blob whose disk copy is not trusted yet verifies that copy
// first: a corrupt one is quarantined and replaced by the uploaded bytes,
// so re-uploading correct bytes repairs the blob in every tier.

import type { Stats } from 'node:fs';
import { type FileHandle, stat as fsStat, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, sha256, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError, DigestMismatchError, HoardError } from '../core/errors.ts';
import { SingleFlight } from '../core/single-flight.ts';
import { drain } from '../core/streams.ts';
import { isBatching } from '../store/blob-batch.ts';
import type { ReservingBlobCache } from '../store/blob-cache.ts';
import {
  type BlobHandle,
  bufferHandle,
  type ServingBlobStore,
  type ServingWriteBatch,
  type StoredBlob,
} from '../store/blob-handle.ts';
import {
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type ByteSource,
  type ListOptions,
  resolveRange,
  type WriteOptions,
  type WriteResult,
} from '../store/blob-store.ts';
import { isErrno } from '../store/fs-atomic.ts';
import type { LocalBlobFiles } from '../store/local-blob-files.ts';
import { readSmallBlobSync, statSyncIfExists } from '../store/sync-metadata.ts';
import { diskStream } from './disk-stream.ts';
import { fileIdentity, hashFile, readFully, TrustedFiles } from './disk-verify.ts';
import { Fill } from './fill.ts';
import { HotBlobs } from './hot-blobs.ts';
import { SyncReadGuard } from './sync-read-guard.ts';

export type TierName = 'memory' | 'disk' | 'shared';

/** Who found a corrupt disk copy: a client's read, a write that checked the copy, the background scrub. */
export type CorruptSource = 'read' | 'write' | 'scrub';

/** The state of a blob's disk copy after a check. */
export type DiskCheck = 'sound' | 'absent' | 'corrupt';

/** Disk blobs up to this size are read in one call and sent as a buffer, not streamed. */
const SMALL_READ_BYTES = 64 * 1024;

/** Writes of a declared size up to this are gathered in memory and group-committed (#groupWrite). */
const GROUP_WRITE_BYTES = 64 * 1024;

interface WriteGroup {
  batch: ServingWriteBatch;
  adds: Promise<unknown>[];
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

/** Observers for metrics (all optional). The disk bound is the disk store's own (bounded-disk-store.ts). */
export interface TierHooks {
  /** A read served by `tier` (the digest feeds the console's most-read list, read-tally.ts). */
  hit?(tier: TierName, digest: Digest): void;
  miss?(tier: TierName): void;
  /** A reader joined a fill already in flight. */
  coalesced?(): void;
  fillDone?(seconds: number, ok: boolean): void;
  /** A disk copy did not hash to its name; `quarantined` is where it went (undefined if it was already gone or replaced). */
  corrupt?(digest: Digest, source: CorruptSource, quarantined: string | undefined): void;
}

/** The top tier: a bounded memory store that readers may fill within reservations (MemoryBlobStore). */
export type MemoryTier = BlobStore & ReservingBlobCache;
/** The disk tier: a store of local files (FsBlobStore). */
export type DiskTier = BlobStore & LocalBlobFiles;

export interface TieredOptions<D extends DiskTier = DiskTier, M extends MemoryTier = MemoryTier> {
  memory: M;
  disk: D;
  shared?: BlobStore;
  hooks?: TierHooks;
  fillOnRangeRead?: boolean;
  fillFollowWindowBytes?: number;
  /** How many verified disk files are remembered (DEFAULTS.trustedDiskFiles). */
  trustedFiles?: number;
  /**
   * Read the disk with synchronous calls: small blobs (≤ 64 KiB) whole, and
   * the chunks of larger ones: microseconds from the page cache, against
   * two thread-pool hand-offs per call. For a disk tier on a local disk (the
   * server's data directory); while the disk is slow, reads go through the
   * thread pool (sync-read-guard.ts).
   */
  syncReads?: boolean;
  /** The guard's threshold and clock (tests). */
  syncReadGuard?: { slowMs?: number; now?: () => number };
  /**
   * With syncReads: bytes of small verified disk blobs openSync keeps when
   * the memory tier does not take them, each read re-validated by a stat
   * (hot-blobs.ts); DEFAULTS.hotBlobBytes, 0 for none.
   */
  hotBlobBytes?: number;
}

export class TieredBlobStore<D extends DiskTier = DiskTier, M extends MemoryTier = MemoryTier>
  implements ServingBlobStore
{
  readonly description: string;
  readonly memory: M;
  readonly disk: D;
  readonly shared: BlobStore | undefined;
  readonly hooks: TierHooks;
  #fills = new Map<Digest, Fill>();
  /** The group of small writes being gathered, and whether one is being flushed (#groupWrite). */
  #group: WriteGroup | undefined;
  #committing = false;
  /** Blobs a write batch linked whose names are not durable yet, to its flush (writeBatch). */
  readonly #settling = new Map<Digest, Promise<void>>();
  #stats = new SingleFlight<Digest, BlobInfo | undefined>();
  /** One verification pass of a disk file at a time per blob (ranged reads, writes). */
  #checks = new SingleFlight<Digest, DiskCheck>();
  #trusted: TrustedFiles;
  #fillOnRange: boolean;
  #followWindow: number;
  /** Set when the disk is read with synchronous calls (syncReads). */
  readonly #sync: SyncReadGuard | undefined;
  /** Small disk blobs read and hashed for openSync that the memory tier did not take (hot-blobs.ts). */
  readonly #hot: HotBlobs | undefined;
  /** Fills started (one upstream read each), for tests and metrics. */
  fillsStarted = 0;
  /** Groups of small writes flushed (#groupWrite), since start (tests). */
  groupCommits = 0;
  /** Corrupt disk copies found (and quarantined) since start. */
  corruptFound = 0;

  constructor(opts: TieredOptions<D, M>) {
    this.memory = opts.memory;
    this.disk = opts.disk;
    this.shared = opts.shared;
    this.hooks = opts.hooks ?? {};
    this.#fillOnRange = opts.fillOnRangeRead ?? DEFAULTS.fillOnRangeRead;
    this.#followWindow = opts.fillFollowWindowBytes ?? DEFAULTS.fillFollowWindowBytes;
    this.#trusted = new TrustedFiles(opts.trustedFiles ?? DEFAULTS.trustedDiskFiles);
    this.#sync = opts.syncReads ? new SyncReadGuard(opts.syncReadGuard) : undefined;
    const hotBytes = opts.hotBlobBytes ?? DEFAULTS.hotBlobBytes;
    this.#hot =
      this.#sync && hotBytes > 0
        ? new HotBlobs({ maxBytes: hotBytes, maxBlobBytes: SMALL_READ_BYTES })
        : undefined;
    this.description = `tiers(memory, ${this.disk.description}${this.shared ? `, ${this.shared.description}` : ''})`;
  }

  /** The authoritative store: the shared tier when there is one, else the disk. */
  get authority(): BlobStore {
    return this.shared ?? this.disk;
  }

  /** Whether disk reads go through the thread pool for now (synchronous ones were slow). */
  get syncReadsPaused(): boolean {
    return this.#sync?.paused ?? false;
  }

  /** Times slow synchronous reads paused them, since start (tests). */
  get syncReadPauses(): number {
    return this.#sync?.pauses ?? 0;
  }

  get fillsInFlight(): number {
    return this.#fills.size;
  }

  // ---- reads ------------------------------------------------------------

  /**
   * Opens a blob for reading from the highest tier that has it, or undefined.
   * `ranged` tells a cold read that only part of the blob is wanted.
   */
  async open(digest: Digest, opts: { ranged?: boolean } = {}): Promise<BlobHandle<TierName> | undefined> {
    const buf = await this.#memoryHit(digest);
    if (buf) {
      this.hooks.hit?.('memory', digest);
      // Keeps its disk copy warm in a bounded disk's LRU.
      this.disk.used?.(digest);
      return bufferHandle(buf, 'memory');
    }
    this.hooks.miss?.('memory');
    const disk = await this.#openDisk(digest, opts.ranged ?? false);
    if (disk) {
      this.hooks.hit?.('disk', digest);
      return disk;
    }
    this.hooks.miss?.('disk');
    if (!this.shared) return undefined;
    return this.#openShared(digest, this.shared, opts.ranged ?? false);
  }

  /**
   * open() without waiting, for the server's fast path (blob-fast-path.ts):
   * only what needs no await — a memory-tier copy (without a shared tier,
   * while its disk file exists, as #memoryHit checks), or a small disk file
   * read with synchronous calls and trusted or hashed now — with open()'s
   * hooks and effects. 'async' for anything else (a miss, a large blob,
   * synchronous reads paused, a file that does not hash: open() then reads it
   * again and quarantines it); nothing was counted or changed then, so the
   * caller's open() counts as the only read.
   */
  openSync(digest: Digest): BlobHandle<TierName> | 'async' {
    const buf = this.memory.bytesOf(digest);
    if (buf) {
      if (!this.shared && statSyncIfExists(this.disk.fileOf(digest)) === undefined) return 'async';
      this.hooks.hit?.('memory', digest);
      this.disk.used?.(digest);
      return bufferHandle(buf, 'memory');
    }
    const sync = this.#sync;
    if (!sync || sync.paused) return 'async';
    const path = this.disk.fileOf(digest);
    // Read and hashed before, its file unchanged since (one stat, no read): as a disk read.
    const hot = this.#hot?.get(digest, path);
    if (hot) {
      this.hooks.miss?.('memory');
      this.disk.used?.(digest);
      this.hooks.hit?.('disk', digest);
      return bufferHandle(hot, 'disk');
    }
    const got = sync.run(() => readSmallBlobSync(path, SMALL_READ_BYTES));
    if (got === 'absent' || got === 'large' || got.bytes.byteLength !== got.stats.size) return 'async';
    const identity = fileIdentity(got.stats);
    if (!this.#trusted.has(digest, identity)) {
      if (sha256(got.bytes) !== digest) return 'async';
      this.#trusted.add(digest, identity);
    }
    this.hooks.miss?.('memory');
    this.disk.used?.(digest);
    if (this.memory.reserve(got.stats.size)) this.memory.put(digest, got.bytes, { reserved: true });
    else this.#hot?.add(digest, got.bytes, got.stats);
    this.hooks.hit?.('disk', digest);
    return bufferHandle(got.bytes, 'disk');
  }

  async #memoryHit(digest: Digest): Promise<Buffer | undefined> {
    const buf = this.memory.bytesOf(digest);
    if (!buf) return undefined;
    // Without a shared tier the disk is authoritative and `missing` asks it:
    // a copy in memory of a file that is gone (quarantined by fsck, collected)
    // must not be served, or GET and `missing` would disagree.
    if (!this.shared && !(await this.disk.has(digest))) {
      await this.memory.delete(digest);
      return undefined;
    }
    return buf;
  }

  async #openDisk(digest: Digest, ranged: boolean, attempt = 0): Promise<BlobHandle<TierName> | undefined> {
    const sync = this.#sync;
    if (sync && !sync.paused) {
      const path = this.disk.fileOf(digest);
      const got = sync.run(() => readSmallBlobSync(path, SMALL_READ_BYTES));
      if (got === 'absent') return undefined;
      if (got !== 'large') return this.#smallDisk(digest, got.bytes, got.stats, ranged, attempt);
      // Large: streamed from a descriptor opened below (its own fstat decides trust).
    }
    let fh: FileHandle;
    try {
      fh = await open(this.disk.fileOf(digest), 'r');
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
      return this.#smallDisk(digest, buf, st, ranged, attempt);
    }
    this.disk.used?.(digest);
    const trusted = this.#trusted.has(digest, fileIdentity(st));
    if (!trusted && ranged) {
      // A range cannot be verified on its own: hash the whole file once first.
      await fh.close();
      const check = await this.#checks.do(digest, () => this.checkDisk(digest, 'read'));
      if (check !== 'sound' || attempt >= 2) return undefined;
      return this.#openDisk(digest, ranged, attempt + 1);
    }
    return this.#diskHandle(digest, fh, st, trusted);
  }

  /**
   * A small disk blob read whole (`buf`, from the file `st` describes): checked
   * before answering unless this process trusts that file, so a corrupt copy
   * is a plain miss. A read shorter than the stat (truncated under us) retries.
   */
  async #smallDisk(
    digest: Digest,
    buf: Buffer,
    st: Stats,
    ranged: boolean,
    attempt: number,
  ): Promise<BlobHandle<TierName> | undefined> {
    const size = st.size;
    if (buf.byteLength !== size) return attempt < 2 ? this.#openDisk(digest, ranged, attempt + 1) : undefined;
    this.disk.used?.(digest);
    const identity = fileIdentity(st);
    if (!this.#trusted.has(digest, identity)) {
      if (sha256(buf) !== digest) {
        await this.#quarantine(digest, st.ino, 'read');
        return undefined;
      }
      this.#trusted.add(digest, identity);
    }
    if (this.memory.reserve(size)) this.memory.put(digest, buf, { reserved: true });
    return bufferHandle(buf, 'disk');
  }

  #diskHandle(digest: Digest, fh: FileHandle, st: Stats, trusted: boolean): BlobHandle<TierName> {
    const size = st.size;
    const identity = fileIdentity(st);
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
        const keep = whole && size <= this.memory.maxBlobBytes && this.memory.reserve(size);
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
            if (complete) this.memory.put(digest, into, { reserved: true });
            else this.memory.unreserve(size);
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

  /**
   * Hashes the disk copy of a blob unless this process already trusts that
   * file (`force`: even then — the scrub looks for bit rot, which changes no
   * file identity); a corrupt copy is quarantined. `beforeChunk` paces the
   * reads (the scrub's rate). Not single-flight: readers and writers go
   * through #checks.
   */
  async checkDisk(
    digest: Digest,
    source: CorruptSource,
    opts: { force?: boolean; beforeChunk?: (bytes: number) => Promise<void> } = {},
  ): Promise<DiskCheck> {
    const { beforeChunk } = opts;
    let fh: FileHandle;
    try {
      fh = await open(this.disk.fileOf(digest), 'r');
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
    const st = await fsStat(this.disk.fileOf(digest)).catch(() => undefined);
    return st !== undefined && this.#trusted.has(digest, fileIdentity(st));
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
    await this.memory.delete(digest);
    let moved: string | undefined;
    try {
      moved = await this.disk.quarantine(digest, { ifIno: ino });
    } catch {
      // Could not move it (permissions?): it stays untrusted, so every read checks it again.
    }
    this.hooks.corrupt?.(digest, source, moved);
  }

  /** Records a file this process just wrote and verified (a PUT, a fill) as trusted. */
  async #trustWritten(digest: Digest): Promise<void> {
    const st = await fsStat(this.disk.fileOf(digest)).catch(() => undefined);
    if (st) this.#trusted.add(digest, fileIdentity(st));
  }

  async #openShared(
    digest: Digest,
    shared: BlobStore,
    ranged: boolean,
  ): Promise<BlobHandle<TierName> | undefined> {
    let fill = this.#fills.get(digest);
    if (fill) this.hooks.coalesced?.();
    else if (!ranged) fill = this.#startFill(digest, shared);
    if (fill) {
      try {
        const size = await fill.ready;
        this.hooks.hit?.('shared', digest);
        return this.#fillHandle(digest, shared, fill, size);
      } catch (err) {
        if (err instanceof BlobNotFoundError) {
          this.hooks.miss?.('shared');
          return undefined;
        }
        throw err;
      }
    }
    // Ranged and no fill in flight: learn the size (one stat per key at a time).
    const info = await this.#stats.do(digest, () => shared.stat(digest));
    if (!info) {
      this.hooks.miss?.('shared');
      return undefined;
    }
    this.hooks.hit?.('shared', digest);
    return this.#fillHandle(digest, shared, undefined, info.size);
  }

  #startFill(digest: Digest, shared: BlobStore, knownSize?: number): Fill {
    const fill = new Fill(digest, shared, this.disk, knownSize);
    this.fillsStarted++;
    this.#fills.set(digest, fill);
    fill.settled.then(() => {
      // Forget the fill first, so a request after a failure starts afresh.
      if (this.#fills.get(digest) === fill) this.#fills.delete(digest);
      this.hooks.fillDone?.((performance.now() - fill.startedAt) / 1000, fill.state === 'done');
      if (fill.published) this.#trustWritten(digest).catch(() => {});
    });
    return fill;
  }

  #fillHandle(digest: Digest, shared: BlobStore, fill: Fill | undefined, size: number): BlobHandle<TierName> {
    return {
      size,
      tier: 'shared',
      stream: (start, end) => {
        if (end <= start) return Readable.from([]);
        let f = fill ?? this.#fills.get(digest);
        if (f && f.state !== 'failed' && start <= f.written + this.#followWindow) return f.reader(start, end);
        // Pass the range down to the shared tier, and warm the disk tier in the background.
        if (!f && this.#fillOnRange) f = this.#startFill(digest, shared, size);
        return passDown(shared, digest, start, end);
      },
      close() {},
    };
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    // Without a shared tier, memory only holds copies of disk files: the disk decides.
    if (!this.shared) return this.disk.stat(digest);
    const mem = await this.memory.stat(digest);
    if (mem) return mem;
    const disk = await this.disk.stat(digest);
    if (disk) return disk;
    const fill = this.#fills.get(digest);
    if (fill && fill.size >= 0) return { digest, size: fill.size };
    if (!this.shared) return undefined;
    const shared = this.shared;
    return this.#stats.do(digest, () => shared.stat(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  /** Whether the authoritative tier has the blob (what refs and PUT decide on). */
  async hasAuthoritative(digest: Digest): Promise<boolean> {
    const settling = this.#settling.get(digest);
    if (settling) await settling;
    if (!this.shared) return this.disk.has(digest);
    return this.shared.has(digest);
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    const h = await this.open(digest, { ranged: range !== undefined });
    if (!h) throw new BlobNotFoundError(digest);
    let start: number;
    let end: number;
    try {
      ({ start, end } = resolveRange(range, h.size));
    } catch (err) {
      h.close();
      throw err;
    }
    return h.stream(start, end);
  }

  // ---- writes -----------------------------------------------------------

  /**
   * Verified create-if-absent write through every tier: disk (verified temp
   * file), then the shared tier before returning. `created` reports whether
   * the authoritative tier did not have the blob.
   */
  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    if (opts.size !== undefined && opts.size <= GROUP_WRITE_BYTES) {
      const bytes = await gatherExactly(digest, source, opts.size, opts.signal);
      return this.#groupWrite(digest, bytes);
    }
    // A batch published it and has not made its name durable yet: "already there" only once it has.
    const settling = this.#settling.get(digest);
    if (settling) await settling;
    // The disk copy (authoritative without a shared tier) counts only once it verifies;
    // a corrupt one is quarantined here and replaced by the uploaded bytes below.
    const check = await this.#checks.do(digest, () => this.checkDisk(digest, 'write'));
    if (this.shared) {
      const existing = await this.shared.stat(digest);
      if (existing) {
        if (check === 'corrupt') {
          // The shared tier has it, the disk had a bad copy: the upload repairs the disk tier too.
          const { size } = await this.#writeDisk(digest, source, opts);
          return { created: false, size };
        }
        // Still verify what was sent, so a wrong body is refused even for a known digest.
        await verifyDrain(digest, source, opts.size ?? existing.size, opts.signal);
        return { created: false, size: existing.size };
      }
    }
    // With a shared tier the upload below reads the disk copy: a bounded disk must not evict it first.
    const unpin = this.shared ? this.disk.pin?.(digest) : undefined;
    try {
      const cached = check === 'sound' ? await this.disk.stat(digest) : undefined;
      let size: number;
      let created = false;
      if (cached) {
        // Without a shared tier: already stored. With one: a write-through that failed earlier; pushed up below.
        size = cached.size;
        await verifyDrain(digest, source, opts.size ?? size, opts.signal);
      } else {
        ({ size, created } = await this.#writeDisk(digest, source, opts));
      }
      if (!this.shared) return { created, size };
      const up = await this.shared.write(digest, await this.disk.read(digest), { size, signal: opts.signal });
      return { created: up.created, size };
    } finally {
      unpin?.();
    }
  }

  /**
   * Stores verified uploaded bytes in the disk tier (absent or just
   * quarantined there), dropping any memory copy so every tier serves this
   * file from now on.
   */
  async #writeDisk(digest: Digest, source: ByteSource, opts: WriteOptions): Promise<WriteResult> {
    await this.memory.delete(digest);
    const res = await this.disk.write(digest, source, opts);
    if (res.created) await this.#trustWritten(digest);
    return res;
  }

  /**
   * Group commit of small single writes (a PUT of a few KiB): every write
   * that arrives while a group is being made durable joins the next group,
   * one writeBatch() shared by all of them, so concurrent PUTs share its
   * durability pass (one fsync per touched shard folder per group, the file
   * fsyncs overlapping in the thread pool) instead of each paying a dozen
   * thread-pool round trips and its own folder fsync. A write is answered
   * only once its group's flush resolved: durable, and in the shared tier
   * when there is one. A group that fails fails every write in it (a disk
   * error: each client is told, nothing is reported stored).
   */
  async #groupWrite(digest: Digest, bytes: Buffer): Promise<WriteResult> {
    let g = this.#group;
    if (!g) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      done.catch(() => {}); // awaited by every write of the group; none may be left to see it
      g = { batch: this.writeBatch(), adds: [], done, resolve, reject };
      this.#group = g;
    }
    const add = g.batch.add(digest, bytes);
    g.adds.push(add.catch(() => {}));
    if (!this.#committing) void this.#commitGroups();
    const result = await add;
    await g.done;
    return { created: result.created, size: result.size };
  }

  /** Flushes groups one after another while writes keep arriving. */
  async #commitGroups(): Promise<void> {
    this.#committing = true;
    try {
      for (let g = this.#group; g; g = this.#group) {
        this.#group = undefined;
        this.groupCommits++;
        await Promise.all(g.adds);
        try {
          await g.batch.flush();
          g.resolve();
        } catch (err) {
          g.reject(err);
        }
      }
    } finally {
      this.#committing = false;
    }
  }

  /**
   * Many small blobs uploaded together (POST /v1/blobs/batch-upload), their
   * durability settled once per batch instead of once per blob: the disk
   * tier's BlobBatch (fs-blob-batch.ts: temp file, fsync in the thread pool
   * with bounded parallelism, link; one fsync per touched shard folder at
   * flush), and, with a shared tier, each blob written up to it (bounded
   * parallelism) before flush() resolves — the bucket stays authoritative.
   *
   * The crash windows are the file batch's: a linked name is durable only
   * after flush(). Until then another request must not take it for stored,
   * so a PUT, another batch, or `missing` that meets such a blob waits for
   * this batch's flush (#settling) before answering "already there".
   */
  writeBatch(): ServingWriteBatch {
    const shared = this.shared;
    const disk = isBatching(this.disk) ? this.disk.batch() : undefined;
    const results: StoredBlob[] = [];
    /** Blobs this batch linked on disk: trusted, and out of #settling, once flushed. */
    const linked: Digest[] = [];
    const inFlight = new Set<Promise<void>>();
    const slotWaiters: (() => void)[] = [];
    let error: unknown;
    let done = false;
    let settle!: () => void;
    const settled = new Promise<void>((r) => {
      settle = r;
    });
    const throwIfFailed = () => {
      if (error !== undefined) throw error;
    };
    const finish = async (flushDisk: boolean): Promise<void> => {
      if (done) return;
      done = true;
      try {
        while (inFlight.size > 0) await Promise.all(inFlight);
        if (disk) {
          if (flushDisk) await disk.flush();
          else await disk.abort();
        }
        if (flushDisk)
          for (const d of linked) {
            const st = statSyncIfExists(this.disk.fileOf(d));
            if (st) this.#trusted.add(d, fileIdentity(st));
          }
      } finally {
        for (const d of linked) if (this.#settling.get(d) === settled) this.#settling.delete(d);
        settle();
      }
    };
    const track = (p: Promise<void>) => {
      const t: Promise<void> = p
        .catch((err: unknown) => {
          error ??= err;
        })
        .finally(() => {
          inFlight.delete(t);
          slotWaiters.shift()?.();
        });
      inFlight.add(t);
    };
    return {
      add: async (digest, bytes) => {
        throwIfFailed();
        if (done) throw new HoardError('HOARD_EINTERNAL', 'write batch already flushed');
        // Another batch published it but has not made its name durable yet.
        const other = this.#settling.get(digest);
        if (other && other !== settled) await other;
        const result: StoredBlob = { digest, size: bytes.byteLength, created: false };
        results.push(result);
        // A disk copy counts only once it verifies (a corrupt one is quarantined here and replaced below).
        const check: DiskCheck = statSyncIfExists(this.disk.fileOf(digest))
          ? await this.#checks.do(digest, () => this.checkDisk(digest, 'write'))
          : 'absent';
        if (check !== 'sound') {
          if (this.memory.bytesOf(digest)) await this.memory.delete(digest);
          if (disk) {
            const { created } = await disk.add(digest, bytes);
            if (created) {
              linked.push(digest);
              this.#settling.set(digest, settled);
            }
            result.created = created;
          } else {
            const { created } = await this.#writeDisk(digest, Readable.from([bytes]), {
              size: bytes.byteLength,
            });
            result.created = created;
          }
        }
        if (!shared) return result;
        result.created = false;
        while (inFlight.size >= DEFAULTS.transferConcurrency)
          await new Promise<void>((r) => slotWaiters.push(r));
        throwIfFailed();
        track(
          shared.write(digest, Readable.from([bytes]), { size: bytes.byteLength }).then((up) => {
            result.created = up.created;
          }),
        );
        return result;
      },
      flush: async () => {
        try {
          await finish(true);
        } catch (err) {
          error ??= err;
        }
        throwIfFailed();
        return results;
      },
      abort: async () => {
        await finish(false).catch(() => {});
      },
    };
  }

  async delete(digest: Digest): Promise<boolean> {
    this.#trusted.forget(digest);
    const m = await this.memory.delete(digest);
    const d = await this.disk.delete(digest);
    const s = this.shared ? await this.shared.delete(digest) : false;
    return this.shared ? s : m || d;
  }

  list(opts?: ListOptions): AsyncIterable<BlobInfo> {
    return this.authority.list(opts);
  }

  async missing(digests: readonly Digest[], signal?: AbortSignal): Promise<Digest[]> {
    const missing = await this.authority.missing(digests, signal);
    if (this.#settling.size === 0) return missing;
    // Present but not durable yet (a batch in flight): answered once it is.
    const absent = new Set(missing);
    const waits = new Set<Promise<void>>();
    for (const d of digests) {
      const w = this.#settling.get(d);
      if (w && !absent.has(d)) waits.add(w);
    }
    await Promise.all(waits);
    return missing;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#fills.values()].map((f) => f.settled));
    // The disk tier's journal checkpointed (its blobs' files and folders fsynced): a clean stop leaves none to replay.
    await this.disk.close?.();
  }
}

function passDown(shared: BlobStore, digest: Digest, start: number, end: number): Readable {
  // A lazily opened upstream ranged read, exposed as a plain Readable.
  return Readable.from(
    (async function* () {
      const src = await shared.read(digest, { offset: start, length: end - start });
      let got = 0;
      for await (const chunk of src as AsyncIterable<Buffer>) {
        got += chunk.byteLength;
        yield chunk;
      }
      if (got !== end - start)
        throw new HoardError(
          'HOARD_EREMOTE',
          `shared tier sent ${got} of ${end - start} bytes of a range of ${digest}`,
        );
    })(),
  );
}

/**
 * A small body read whole (at most `size` bytes held) and checked: exactly
 * `size` bytes (else HOARD_ETRUNCATED, as VerifyingStream says it) hashing
 * to `digest` (else a digest mismatch). Nothing is stored before this passed.
 */
async function gatherExactly(
  digest: Digest,
  source: ByteSource,
  size: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  for await (const c of source as AsyncIterable<Uint8Array>) {
    signal?.throwIfAborted();
    if (got + c.byteLength > size) {
      if (source instanceof Readable) source.destroy();
      throw new HoardError('HOARD_ETRUNCATED', `expected ${size} bytes, got more for ${digest}`);
    }
    buf.set(c, got);
    got += c.byteLength;
  }
  if (got !== size)
    throw new HoardError('HOARD_ETRUNCATED', `expected ${size} bytes, got ${got} for ${digest}`);
  const actual = sha256(buf);
  if (actual !== digest) throw new DigestMismatchError(digest, actual);
  return buf;
}

async function verifyDrain(
  digest: Digest,
  source: ByteSource,
  size: number | undefined,
  signal?: AbortSignal,
): Promise<void> {
  await pipeline(
    source,
    new VerifyingStream(digest, size),
    async (src: AsyncIterable<unknown>) => {
      await drain(src as AsyncIterable<Uint8Array>);
    },
    { signal },
  );
}
