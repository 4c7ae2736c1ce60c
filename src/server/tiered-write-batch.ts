// Many small blobs written to the tier stack together (POST
// /v1/blobs/batch-upload, and the group commit of small PUTs,
// small-write-groups.ts), their durability settled once per batch instead of
// once per blob: the disk tier's BlobBatch (fs-blob-batch.ts: temp file,
// fsync in the thread pool with bounded parallelism, link; one fsync per
// touched shard folder at flush), and, with a shared tier, each blob written
// up to it (bounded parallelism) before flush() resolves — the bucket stays
// authoritative.
//
// The crash windows are the file batch's: a linked name is durable only
// after flush(). Until then another request must not take it for stored, so
// a PUT, another batch, or `missing` that meets such a blob waits for this
// batch's flush (UnsettledNames) before answering "already there".

import { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { isBatching } from '../store/blob-batch.ts';
import type { ServingWriteBatch, StoredBlob } from '../store/blob-handle.ts';
import type { BlobStore, ByteSource, WriteOptions, WriteResult } from '../store/blob-store.ts';
import { statSyncIfExists } from '../store/sync-metadata.ts';
import type { DiskTierReader } from './disk-tier-reader.ts';
import type { DiskCheck, DiskTier, MemoryTier } from './tier-types.ts';

/** Blobs a write batch linked whose names are not durable yet, each with its batch's flush. */
export class UnsettledNames {
  readonly #names = new Map<Digest, Promise<void>>();

  get size(): number {
    return this.#names.size;
  }

  /** The flush that makes the blob's name durable, if a batch linked it and has not flushed yet. */
  get(digest: Digest): Promise<void> | undefined {
    return this.#names.get(digest);
  }

  /** Waits for every one of `digests` that a batch linked, except those the store reported missing. */
  async settledPresent(digests: readonly Digest[], missing: readonly Digest[]): Promise<void> {
    if (this.#names.size === 0) return;
    const absent = new Set(missing);
    const waits = new Set<Promise<void>>();
    for (const d of digests) {
      const w = this.#names.get(d);
      if (w && !absent.has(d)) waits.add(w);
    }
    await Promise.all(waits);
  }

  add(digest: Digest, flushed: Promise<void>): void {
    this.#names.set(digest, flushed);
  }

  /** Forgets a name once its batch settled (unless a later batch linked it since). */
  release(digest: Digest, flushed: Promise<void>): void {
    if (this.#names.get(digest) === flushed) this.#names.delete(digest);
  }
}

export interface TieredWriteBatchDeps {
  memory: MemoryTier;
  disk: DiskTier;
  shared: BlobStore | undefined;
  reader: DiskTierReader;
  unsettled: UnsettledNames;
  /** Stores a blob in the disk tier on its own (a disk tier that cannot batch). */
  writeDisk(digest: Digest, source: ByteSource, opts: WriteOptions): Promise<WriteResult>;
}

export function tieredWriteBatch(deps: TieredWriteBatchDeps): ServingWriteBatch {
  const { memory, shared, reader, unsettled } = deps;
  const disk = isBatching(deps.disk) ? deps.disk.batch() : undefined;
  const results: StoredBlob[] = [];
  /** Blobs this batch linked on disk: trusted, and released from `unsettled`, once flushed. */
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
      if (flushDisk) for (const d of linked) reader.trustWrittenSync(d);
    } finally {
      for (const d of linked) unsettled.release(d, settled);
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
      const other = unsettled.get(digest);
      if (other && other !== settled) await other;
      const result: StoredBlob = { digest, size: bytes.byteLength, created: false };
      results.push(result);
      // A disk copy counts only once it verifies (a corrupt one is quarantined here and replaced below).
      const check: DiskCheck = statSyncIfExists(deps.disk.fileOf(digest))
        ? await reader.checked(digest, 'write')
        : 'absent';
      if (check !== 'sound') {
        if (memory.bytesOf(digest)) await memory.delete(digest);
        if (disk) {
          const { created } = await disk.add(digest, bytes);
          if (created) {
            linked.push(digest);
            unsettled.add(digest, settled);
          }
          result.created = created;
        } else {
          const { created } = await deps.writeDisk(digest, Readable.from([bytes]), {
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
