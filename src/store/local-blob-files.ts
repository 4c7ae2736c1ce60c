// The capability a filesystem-backed store offers a server beyond the
// BlobStore interface: its blobs are local files, so the tier above can read
// them with positional reads on one descriptor (and check the file's
// identity, disk-verify.ts), quarantine a copy that no longer hashes to its
// name, and fill a blob through a positional writer that publishes with the
// store's own create-if-absent step. FsBlobStore implements it.

import type { Digest } from '../core/digest.ts';

/**
 * A blob being written at increasing offsets: hashed as it is written,
 * readable (positional reads of what is written so far) while it grows, and
 * visible in the store only once commit() verified size and digest.
 */
export interface BlobFileWriter {
  readonly digest: Digest;
  /** The size the blob must have. */
  readonly size: number;
  readonly bytesWritten: number;
  /** Appends a chunk at `bytesWritten`; more bytes than `size` throw and write nothing. */
  write(chunk: Uint8Array): Promise<void>;
  /** Reads up to `length` bytes at `position` of what is written so far into `buf`. */
  readAt(buf: Buffer, length: number, position: number): Promise<number>;
  /**
   * Verifies size and digest, makes the bytes durable and publishes them.
   * `created` is false when the store already had the blob (its copy stays).
   */
  commit(): Promise<{ created: boolean }>;
  /** Drops the unpublished bytes (after a failure). */
  abort(): Promise<void>;
  /** Releases the descriptor; readAt fails after it. Idempotent. */
  close(): Promise<void>;
}

export interface LocalBlobFiles {
  /** Where the blob's file is (whether or not it exists). For reading only: writes go through the store. */
  fileOf(digest: Digest): string;
  /**
   * Moves the blob's file to quarantine (never deletes it); with `ifIno`,
   * only if it is still that inode. Where it went, or undefined when there
   * was nothing (or no longer that file) to move.
   */
  quarantine(digest: Digest, opts?: { ifIno?: number }): Promise<string | undefined>;
  /**
   * The tier above used the blob without read() (it read the file itself, or
   * served its copy from memory): a store that orders blobs by use (the
   * bounded disk) keeps it warm.
   */
  used?(digest: Digest): void;
  /** Keeps the blob from eviction until the returned function is called (a bounded store). */
  pin?(digest: Digest): () => void;
  /** A positional writer for a blob of known size (fills). */
  createWriter(digest: Digest, size: number): Promise<BlobFileWriter>;
}
