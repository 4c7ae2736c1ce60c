// What the HTTP routes need from the store behind them, beyond BlobStore:
// open a blob once and learn its size before choosing the status (200, 206,
// 416) and headers, then stream any range of it from the same copy — a
// stat followed by a read could meet two different tiers. And whether the
// authoritative tier has a blob (what a ref may point at). TieredBlobStore
// implements it.

import { Readable } from 'node:stream';
import type { Digest } from '../core/digest.ts';
import type { BlobStore } from './blob-store.ts';

/** An opened blob: its size and a way to stream any range of it. */
export interface BlobHandle<Tier extends string = string> {
  readonly size: number;
  /** Which tier serves it (the x-hoard-tier header). */
  readonly tier: Tier;
  stream(start: number, end: number): Readable;
  /** For blobs held in memory: the bytes themselves (cheaper to send than a stream). */
  bytes?(start: number, end: number): Buffer;
  /** Releases resources when no stream was taken (HEAD, 304, 416). */
  close(): void;
}

export interface ServingBlobStore extends BlobStore {
  /** Opens a blob from the highest tier that has it; `ranged`: only part of it is wanted. */
  open(digest: Digest, opts?: { ranged?: boolean }): Promise<BlobHandle | undefined>;
  /** Whether the authoritative tier has the blob (what refs and PUT decide on). */
  hasAuthoritative(digest: Digest): Promise<boolean>;
  /** Many small verified blobs stored together, durable once flush() resolves (POST /v1/blobs/batch-upload). */
  writeBatch(): ServingWriteBatch;
}

/** What a batched upload stored: per blob, in the order added. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  /** False when the authoritative tier already had it. */
  created: boolean;
}

/**
 * A batched write through the tiers. add() takes bytes the caller verified
 * against `digest`; nothing counts as stored until flush() resolved, which
 * settles durability once for the whole batch (the authoritative tier has
 * every blob). After a failure, flush() still settles what was added.
 */
export interface ServingWriteBatch {
  /** The blob's entry in flush()'s answer (its `created` final once flush() resolved). */
  add(digest: Digest, bytes: Buffer): Promise<StoredBlob>;
  flush(): Promise<StoredBlob[]>;
  /** Waits for what is in flight and drops the rest; never throws. */
  abort(): Promise<void>;
}

/** A handle on bytes in memory: `bytes` lets a route send them without a stream. */
export function bufferHandle<Tier extends string>(buf: Buffer, tier: Tier): BlobHandle<Tier> {
  return {
    size: buf.byteLength,
    tier,
    stream: (start, end) => Readable.from(end > start ? [buf.subarray(start, end)] : []),
    bytes: (start, end) => buf.subarray(start, end),
    close() {},
  };
}
