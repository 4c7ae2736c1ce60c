// The server's blob store: memory (LRU) → disk (FsBlobStore) → optional
// shared remote, which is authoritative when present. This class composes
// the tiers; each path has its own module:
//
//   disk-tier-reader.ts    reads of the disk tier and the trust they rest on
//                          (verified streaming, hashed ranges, quarantine,
//                          synchronous reads while the disk is fast)
//   shared-tier-fills.ts   misses of both upper tiers: one Fill per blob,
//                          ranges passed down or following the fill
//   small-write-groups.ts  group commit of small PUTs
//   tiered-write-batch.ts  many small blobs made durable together, and the
//                          names not durable yet (UnsettledNames)
//   write-body-checks.ts   a body checked against its digest without storing it
//
// Reads: the first tier holding the blob serves it. Without a shared tier the
// memory tier holds copies of disk files only, so a memory hit is served only
// while the file is still there (fsck may have moved it): GET and `missing`
// agree.
//
// Writes: verified into the disk tier first (a temp file, hashed while it
// streams), then copied to the shared tier before the write returns, so a
// PUT is acknowledged only once the authoritative tier has the blob. A
// write of a blob whose disk copy is not trusted yet verifies that copy
// first: a corrupt one is quarantined and replaced by the uploaded bytes,
// so re-uploading correct bytes repairs the blob in every tier.

import type { Readable } from 'node:stream';
import type { Digest } from '../core/digest.ts';
import { BlobNotFoundError } from '../core/errors.ts';
import {
  type BlobHandle,
  bufferHandle,
  type ServingBlobStore,
  type ServingWriteBatch,
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
import { statSyncIfExists } from '../store/sync-metadata.ts';
import { DiskTierReader } from './disk-tier-reader.ts';
import { SharedTierFills } from './shared-tier-fills.ts';
import { SmallWriteGroups } from './small-write-groups.ts';
import type { CorruptSource, DiskCheck, DiskTier, MemoryTier, TierHooks, TierName } from './tier-types.ts';
import { tieredWriteBatch, UnsettledNames } from './tiered-write-batch.ts';
import { gatherExactly, verifyDrain } from './write-body-checks.ts';

export type { CorruptSource, DiskCheck, DiskTier, MemoryTier, TierHooks, TierName } from './tier-types.ts';

/** Writes of a declared size up to this are gathered in memory and group-committed (small-write-groups.ts). */
const GROUP_WRITE_BYTES = 64 * 1024;

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
  readonly #reader: DiskTierReader;
  /** Set when there is a shared tier. */
  readonly #fills: SharedTierFills | undefined;
  readonly #groups: SmallWriteGroups;
  /** Blobs a write batch linked whose names are not durable yet, to its flush (writeBatch). */
  readonly #unsettled = new UnsettledNames();

  constructor(opts: TieredOptions<D, M>) {
    this.memory = opts.memory;
    this.disk = opts.disk;
    this.shared = opts.shared;
    this.hooks = opts.hooks ?? {};
    this.#reader = new DiskTierReader({
      memory: this.memory,
      disk: this.disk,
      hooks: this.hooks,
      trustedFiles: opts.trustedFiles,
      syncReads: opts.syncReads,
      syncReadGuard: opts.syncReadGuard,
      hotBlobBytes: opts.hotBlobBytes,
    });
    this.#fills = this.shared
      ? new SharedTierFills({
          shared: this.shared,
          disk: this.disk,
          hooks: this.hooks,
          fillOnRangeRead: opts.fillOnRangeRead,
          fillFollowWindowBytes: opts.fillFollowWindowBytes,
          published: (digest) => {
            this.#reader.trustWritten(digest).catch(() => {});
          },
        })
      : undefined;
    this.#groups = new SmallWriteGroups(() => this.writeBatch());
    this.description = `tiers(memory, ${this.disk.description}${this.shared ? `, ${this.shared.description}` : ''})`;
  }

  /** The authoritative store: the shared tier when there is one, else the disk. */
  get authority(): BlobStore {
    return this.shared ?? this.disk;
  }

  /** Whether disk reads go through the thread pool for now (synchronous ones were slow). */
  get syncReadsPaused(): boolean {
    return this.#reader.syncReadsPaused;
  }

  /** Times slow synchronous reads paused them, since start (tests). */
  get syncReadPauses(): number {
    return this.#reader.syncReadPauses;
  }

  get fillsInFlight(): number {
    return this.#fills?.inFlight ?? 0;
  }

  /** Fills started (one upstream read each), for tests and metrics. */
  get fillsStarted(): number {
    return this.#fills?.started ?? 0;
  }

  /** Groups of small writes flushed, since start (tests). */
  get groupCommits(): number {
    return this.#groups.commits;
  }

  /** Corrupt disk copies found (and quarantined) since start. */
  get corruptFound(): number {
    return this.#reader.corruptFound;
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
    const disk = await this.#reader.open(digest, opts.ranged ?? false);
    if (disk) {
      this.hooks.hit?.('disk', digest);
      return disk;
    }
    this.hooks.miss?.('disk');
    if (!this.#fills) return undefined;
    return this.#fills.open(digest, opts.ranged ?? false);
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
    const bytes = this.#reader.readSync(digest);
    if (bytes === 'async') return 'async';
    this.hooks.miss?.('memory');
    this.hooks.hit?.('disk', digest);
    return bufferHandle(bytes, 'disk');
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

  /**
   * Hashes the disk copy of a blob unless this process already trusts that
   * file (`force`: even then, for the scrub); a corrupt copy is quarantined.
   * `beforeChunk` paces the reads (the scrub's rate). See DiskTierReader.check.
   */
  checkDisk(
    digest: Digest,
    source: CorruptSource,
    opts: { force?: boolean; beforeChunk?: (bytes: number) => Promise<void> } = {},
  ): Promise<DiskCheck> {
    return this.#reader.check(digest, source, opts);
  }

  /** Whether this process has verified the blob's current disk file (tests, scrub). */
  isTrusted(digest: Digest): Promise<boolean> {
    return this.#reader.isTrusted(digest);
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    // Without a shared tier, memory only holds copies of disk files: the disk decides.
    if (!this.#fills) return this.disk.stat(digest);
    const mem = await this.memory.stat(digest);
    if (mem) return mem;
    const disk = await this.disk.stat(digest);
    if (disk) return disk;
    return this.#fills.stat(digest);
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  /** Whether the authoritative tier has the blob (what refs and PUT decide on). */
  async hasAuthoritative(digest: Digest): Promise<boolean> {
    const settling = this.#unsettled.get(digest);
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
      return this.#groups.write(digest, bytes);
    }
    // A batch published it and has not made its name durable yet: "already there" only once it has.
    const settling = this.#unsettled.get(digest);
    if (settling) await settling;
    // The disk copy (authoritative without a shared tier) counts only once it verifies;
    // a corrupt one is quarantined here and replaced by the uploaded bytes below.
    const check = await this.#reader.checked(digest, 'write');
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
    if (res.created) await this.#reader.trustWritten(digest);
    return res;
  }

  /** Many small blobs made durable together (tiered-write-batch.ts). */
  writeBatch(): ServingWriteBatch {
    return tieredWriteBatch({
      memory: this.memory,
      disk: this.disk,
      shared: this.shared,
      reader: this.#reader,
      unsettled: this.#unsettled,
      writeDisk: (digest, source, opts) => this.#writeDisk(digest, source, opts),
    });
  }

  async delete(digest: Digest): Promise<boolean> {
    this.#reader.forget(digest);
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
    if (this.#unsettled.size === 0) return missing;
    // Present but not durable yet (a batch in flight): answered once it is.
    await this.#unsettled.settledPresent(digests, missing);
    return missing;
  }

  async close(): Promise<void> {
    await this.#fills?.close();
    // The disk tier's journal checkpointed (its blobs' files and folders fsynced): a clean stop leaves none to replay.
    await this.disk.close?.();
  }
}
