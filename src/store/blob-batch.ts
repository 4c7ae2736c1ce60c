// A capability a blob store may offer bulk writers (push to a file://
// remote): many small blobs written from memory, their durability settled
// together by one flush() before anything names them. A writer that holds a
// file's bytes in one buffer (it just hashed them) stores them without a
// second read, a second hash or a stream per blob, and the per-blob folder
// fsyncs collapse into one per folder. FsBlobStore implements it
// (fs-blob-batch.ts); stores without it are written blob by blob.

import type { Digest } from '../core/digest.ts';

export interface BlobBatch {
  /**
   * Stores `bytes` as `digest` unless the store has it. The caller hashed
   * exactly these bytes (that is the point: they are not hashed again).
   * Resolves once the batch has room for more; the write itself may still be
   * in flight, and its failure is thrown by a later add() or by flush().
   * `created` is false when the store (or this batch) already had the blob.
   */
  add(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }>;
  /**
   * Waits for every write and makes all of them durable — contents and
   * names — before it resolves: call it before a ref that names them moves.
   */
  flush(): Promise<void>;
  /** Waits for what is in flight and drops it (after a failure elsewhere); never throws. */
  abort(): Promise<void>;
}

export interface BatchingBlobStore {
  batch(): BlobBatch;
}

export function isBatching(store: object): store is BatchingBlobStore {
  return typeof (store as Partial<BatchingBlobStore>).batch === 'function';
}

/**
 * A capability of stores behind a network hop (a hoard server): many small
 * blobs the caller already knows the store lacks (it asked `missing`), sent
 * together — one request per few hundred blobs instead of one each, their
 * durability settled once per request on the other side. Unlike batch(),
 * add() does not ask whether the store has a blob: the caller did.
 */
export interface UploadBatchingBlobStore {
  uploadBatch(opts?: { signal?: AbortSignal }): BlobBatch;
}

export function isUploadBatching(store: object): store is UploadBatchingBlobStore {
  return typeof (store as Partial<UploadBatchingBlobStore>).uploadBatch === 'function';
}
