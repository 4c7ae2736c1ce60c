// The bounded disk tier: the filesystem store with its LRU index
// (disk-index.ts) kept inside it, so capacity is the store's own business and
// not a set of hooks the tier above must remember to call. Every way bytes
// enter the disk reserves room first (a write of a declared size, a fill's
// positional writer) and counts the blob once it is published; every way a
// blob leaves (delete, quarantine) drops it from the index; a use (a read by
// the tier above through the blob's file, or a memory hit of its copy) keeps
// it warm. Eviction is the index's: it deletes from the inner store directly.

import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { type BatchingBlobStore, type BlobBatch, isBatching } from '../store/blob-batch.ts';
import type { BlobStore, ByteSource, WriteOptions, WriteResult } from '../store/blob-store.ts';
import type { BlobFileWriter, LocalBlobFiles } from '../store/local-blob-files.ts';
import type { TierUsage, UsageReporting } from '../store/tier-usage.ts';
import type { DiskIndex } from './disk-index.ts';

export class BoundedDiskStore implements BlobStore, LocalBlobFiles, UsageReporting, BatchingBlobStore {
  readonly inner: BlobStore & LocalBlobFiles;
  readonly index: DiskIndex;
  readonly description: string;

  constructor(inner: BlobStore & LocalBlobFiles, index: DiskIndex) {
    this.inner = inner;
    this.index = index;
    this.description = inner.description;
  }

  /**
   * A use of the blob by the tier above. Only blobs the index knows: a reader
   * may still hold a blob that eviction just removed (its open descriptor
   * pins it), and re-adding it would count bytes no longer on disk. Blobs on
   * disk the index does not know yet are added by the start-up reconcile.
   */
  used(digest: Digest): void {
    this.index.touchIfKnown(digest);
  }

  usage(): TierUsage {
    const i = this.index;
    return { bytes: i.bytes, blobs: i.count, maxBytes: i.opts.maxBytes, evictions: i.evictions };
  }

  largest(n: number): { digest: Digest; size: number }[] {
    return this.index.largest(n);
  }

  stat(...args: Parameters<BlobStore['stat']>) {
    return this.inner.stat(...args);
  }

  has(...args: Parameters<BlobStore['has']>) {
    return this.inner.has(...args);
  }

  read(...args: Parameters<BlobStore['read']>) {
    return this.inner.read(...args);
  }

  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const reserved = opts.size ?? 0;
    await this.index.reserve(reserved);
    try {
      const res = await this.inner.write(digest, source, opts);
      if (res.created) this.index.add(digest, res.size);
      return res;
    } finally {
      // At once after add: the index counts the blob twice until the reservation ends.
      this.index.unreserve(reserved);
    }
  }

  /**
   * The inner store's batch with the disk bound kept: room is reserved for
   * every blob before its bytes are written, and the blobs the batch created
   * are counted once flush() made them durable (the reservations end then).
   */
  batch(): BlobBatch {
    const inner = this.inner;
    if (!isBatching(inner))
      throw new HoardError('HOARD_EINTERNAL', `${this.description} does not batch writes`);
    const batch = inner.batch();
    const index = this.index;
    let reserved = 0;
    let created: { digest: Digest; size: number }[] = [];
    const release = () => {
      index.unreserve(reserved);
      reserved = 0;
    };
    return {
      async add(digest, bytes) {
        await index.reserve(bytes.byteLength);
        reserved += bytes.byteLength;
        const res = await batch.add(digest, bytes);
        if (res.created) created.push({ digest, size: bytes.byteLength });
        return res;
      },
      async flush() {
        try {
          await batch.flush();
          for (const c of created) index.add(c.digest, c.size);
        } finally {
          created = [];
          release();
        }
      },
      async abort() {
        await batch.abort();
        // Some may be linked already; the start-up reconcile counts what is on disk.
        created = [];
        release();
      },
    };
  }

  async createWriter(digest: Digest, size: number): Promise<BlobFileWriter> {
    await this.index.reserve(size);
    let writer: BlobFileWriter;
    try {
      writer = await this.inner.createWriter(digest, size);
    } catch (err) {
      this.index.unreserve(size);
      throw err;
    }
    let reserved = true;
    const release = () => {
      if (reserved) this.index.unreserve(size);
      reserved = false;
    };
    const index = this.index;
    return {
      digest,
      size,
      get bytesWritten() {
        return writer.bytesWritten;
      },
      write: (chunk) => writer.write(chunk),
      readAt: (buf, length, position) => writer.readAt(buf, length, position),
      async commit() {
        try {
          const res = await writer.commit();
          // Counted even when a copy was already there: the index learns of it now.
          index.add(digest, size);
          return res;
        } finally {
          release();
        }
      },
      async abort() {
        release();
        await writer.abort();
      },
      async close() {
        release();
        await writer.close();
      },
    };
  }

  async delete(digest: Digest): Promise<boolean> {
    const deleted = await this.inner.delete(digest);
    if (deleted) this.index.remove(digest);
    return deleted;
  }

  async quarantine(digest: Digest, opts?: { ifIno?: number }): Promise<string | undefined> {
    const moved = await this.inner.quarantine(digest, opts);
    if (moved) this.index.remove(digest);
    return moved;
  }

  fileOf(digest: Digest): string {
    return this.inner.fileOf(digest);
  }

  pin(digest: Digest): () => void {
    return this.index.pin(digest);
  }

  list(...args: Parameters<BlobStore['list']>) {
    return this.inner.list(...args);
  }

  missing(...args: Parameters<BlobStore['missing']>) {
    return this.inner.missing(...args);
  }
}
