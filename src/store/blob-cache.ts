// The capability a bounded in-memory tier offers the tier above it beyond
// the BlobStore interface: a reader that is about to gather a blob it will
// verify itself reserves room first, so resident + reserved bytes stay within
// the bound however many readers run at once, and hands the verified bytes
// over without another copy. MemoryBlobStore implements it.

import type { Digest } from '../core/digest.ts';

export interface ReservingBlobCache {
  /** Larger blobs are never kept. */
  readonly maxBlobBytes: number;
  /** Bytes of resident blobs. */
  readonly bytes: number;
  /** Bytes reserved by readers gathering a blob to keep. */
  readonly reservedBytes: number;
  /** The bytes of a resident blob (counts as a use, for the LRU order), without copying; undefined when absent. */
  bytesOf(digest: Digest): Buffer | undefined;
  /** Reserves room for `size` bytes about to be gathered; false when they cannot fit (stream without keeping a copy). */
  reserve(size: number): boolean;
  /** Ends a reservation that will not be put (the read failed or was cut short). */
  unreserve(size: number): void;
  /** Inserts bytes already verified against `digest`; `reserved` ends the reservation of the same size. */
  put(digest: Digest, buf: Buffer, opts?: { reserved?: boolean }): void;
}
