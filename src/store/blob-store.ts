// The BlobStore interface: immutable, content-addressed bytes. Every backend
// (memory, filesystem, S3, GCS, a hoard server) implements it and passes the
// same conformance suite (test/store/blob-store-conformance.ts).
//
// Invariants every implementation keeps:
// - write() verifies the bytes against the digest while streaming; a mismatch
//   or a short body stores nothing and throws.
// - write() is create-if-absent: writing a blob that exists succeeds
//   (`created: false`) and never rewrites it.
// - a blob, once readable, never changes; a partially written one is never
//   readable.

import type { Readable } from 'node:stream';
import type { BatchRecord, BlobWant } from '../core/blob-batch-frame.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { mapLimit } from '../core/pool.ts';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** A byte range: `length` bytes from `offset` (to the end when omitted). */
export interface ByteRange {
  offset: number;
  length?: number;
}

export interface WriteOptions {
  /** Expected size, when known: lets backends pick multipart and fail short bodies early. */
  size?: number;
  signal?: AbortSignal;
}

export interface WriteResult {
  created: boolean;
  size: number;
}

/** Where a listing starts: blobs strictly after `after`, in digest order. */
export interface ListOptions {
  /** A cursor: only blobs whose digest sorts after this one (need not exist). */
  after?: Digest;
  signal?: AbortSignal;
}

export interface ReadManyOptions {
  signal?: AbortSignal;
}

/**
 * What a record handed over by `readMany` is: verified bytes, or `missing`.
 * (`not-sent` is the wire's business: readMany fetches those itself.)
 */
export type ReadManyRecord = Exclude<BatchRecord, { status: 'not-sent' }>;

export type ByteSource = Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface BlobStore {
  /** Short description for logs and errors (never contains credentials). */
  readonly description: string;
  stat(digest: Digest, signal?: AbortSignal): Promise<BlobInfo | undefined>;
  has(digest: Digest, signal?: AbortSignal): Promise<boolean>;
  /**
   * Streams a blob or a range of it. Throws BlobNotFoundError when absent and
   * HOARD_ERANGE_NOT_SATISFIABLE when the range starts past the end; a range
   * running past the end is clipped.
   */
  read(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  write(digest: Digest, source: ByteSource, opts?: WriteOptions): Promise<WriteResult>;
  /** Returns whether something was deleted. */
  delete(digest: Digest): Promise<boolean>;
  /**
   * Every blob in digest order (byte order of `sha256:<hex>`), starting
   * strictly after `opts.after`. Backends seek to the cursor (a shard, a
   * StartAfter key, a query parameter) rather than scanning from the start,
   * so paging through a large store costs one pass in total.
   */
  list(opts?: ListOptions): AsyncIterable<BlobInfo>;
  /** The subset of `digests` this store lacks, in input order, without duplicates. */
  missing(digests: readonly Digest[], signal?: AbortSignal): Promise<Digest[]>;
  /**
   * Optional capability: many small blobs in few requests (the hoard
   * server's POST /v1/blobs/batch). Calls `each` once per wanted digest, in
   * any order, with bytes already verified against the digest and the
   * wanted size (or `missing`); each call is awaited before more is read.
   * Throws on the first corrupt or malformed answer. Callers go through
   * `readMany()` (src/store/read-many.ts), which falls back to `read` for
   * stores without it. Wants are distinct digests of bounded size: the
   * bytes are held whole. `each` may use a record's bytes until its call settles
   * (a store may read the next blob into the same memory): keep a copy to
   * hold them longer.
   */
  readMany?(
    wants: readonly BlobWant[],
    each: (record: ReadManyRecord) => void | Promise<void>,
    opts?: ReadManyOptions,
  ): Promise<void>;
  close?(): Promise<void>;
}

/** Validates a range against a blob size; returns the clipped [start, end) pair. */
export function resolveRange(range: ByteRange | undefined, size: number): { start: number; end: number } {
  if (!range) return { start: 0, end: size };
  const { offset, length } = range;
  if (
    !Number.isSafeInteger(offset) ||
    offset < 0 ||
    (length !== undefined && (!Number.isSafeInteger(length) || length < 0))
  )
    throw new HoardError('HOARD_EBAD_REQUEST', `invalid range offset=${offset} length=${length}`);
  if (offset >= size && !(offset === 0 && size === 0))
    throw new HoardError(
      'HOARD_ERANGE_NOT_SATISFIABLE',
      `range starts at ${offset}, past the end of a ${size}-byte blob`,
      {
        details: { size },
      },
    );
  const end = length === undefined ? size : Math.min(size, offset + length);
  return { start: offset, end };
}

/** Generic `missing` for backends without a cheaper batch question: bounded parallel `has`. */
export async function missingByHas(
  store: Pick<BlobStore, 'has'>,
  digests: readonly Digest[],
  concurrency: number,
  signal?: AbortSignal,
): Promise<Digest[]> {
  const unique = [...new Set(digests)];
  const present = await mapLimit(unique, concurrency, (d) => store.has(d, signal));
  return unique.filter((_, i) => !present[i]);
}
