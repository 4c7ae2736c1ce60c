// The vocabulary of the server's tier stack (tiered-blob-store.ts), in a
// module of its own so the parts of the stack (disk-tier-reader.ts,
// shared-tier-fills.ts, tiered-write-batch.ts) and its observers (metrics.ts)
// share it without importing the facade.

import type { Digest } from '../core/digest.ts';
import type { ReservingBlobCache } from '../store/blob-cache.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { LocalBlobFiles } from '../store/local-blob-files.ts';

export type TierName = 'memory' | 'disk' | 'shared';

/** Who found a corrupt disk copy: a client's read, a write that checked the copy, the background scrub. */
export type CorruptSource = 'read' | 'write' | 'scrub';

/** The state of a blob's disk copy after a check. */
export type DiskCheck = 'sound' | 'absent' | 'corrupt';

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
