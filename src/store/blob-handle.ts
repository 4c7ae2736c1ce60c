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
