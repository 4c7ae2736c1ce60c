// What the S3 and GCS remotes share: the bucket layout, the ref object
// format, the "which blobs are missing" strategy, and the streaming pieces
// that make a blob upload verify its digest before the object can appear.
//
// Layout under `<prefix>/` (docs/remotes.md):
//   blobs/sha256/<2 hex>/<64 hex>   blob bytes, immutable
//   refs/<name>                     {"target":"sha256:…","nonce":"…"}
// Nothing else is needed to read a bucket back.

import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, digestFromHex, Hasher, hexOf } from '../core/digest.ts';
import { DigestMismatchError, HoardError } from '../core/errors.ts';
import { forEachLimit, mapLimit, Semaphore } from '../core/pool.ts';
import { validateRefName } from '../core/ref-name.ts';
import type { BlobInfo } from '../store/blob-store.ts';
import { decodeRefObject, type RefListing } from '../store/ref-store.ts';

/** Normalises the path part of `s3://bucket/prefix` to `prefix/` (or `` for the bucket root). */
export function normalizePrefix(raw: string, url: string): string {
  const trimmed = raw.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  for (const seg of trimmed.split('/')) {
    if (seg === '' || seg === '.' || seg === '..')
      throw new HoardError('HOARD_EREMOTE_URL', `invalid prefix in remote URL ${url}: bad segment "${seg}"`);
  }
  return `${trimmed}/`;
}

export class BucketLayout {
  readonly prefix: string;
  readonly blobsPrefix: string;
  readonly refsPrefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
    this.blobsPrefix = `${prefix}blobs/sha256/`;
    this.refsPrefix = `${prefix}refs/`;
  }

  blobKey(digest: Digest): string {
    const hex = hexOf(digest);
    return `${this.blobsPrefix}${hex.slice(0, 2)}/${hex}`;
  }

  shardPrefix(digest: Digest): string {
    return `${this.blobsPrefix}${hexOf(digest).slice(0, 2)}/`;
  }

  /** The digest a key names, or undefined for anything that is not a blob key. */
  digestOfKey(key: string): Digest | undefined {
    if (!key.startsWith(this.blobsPrefix)) return undefined;
    const m = /^([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key.slice(this.blobsPrefix.length));
    if (!m?.[2].startsWith(m[1])) return undefined;
    return digestFromHex(m[2]);
  }

  refKey(name: string): string {
    return `${this.refsPrefix}${name}`;
  }

  /** The valid ref names among listed keys (anything else under refs/ is skipped). */
  refNamesOfKeys(keys: readonly string[]): string[] {
    return keys
      .map((k) => k.slice(this.refsPrefix.length))
      .filter((n) => {
        try {
          validateRefName(n);
          return true;
        } catch {
          return false;
        }
      });
  }

  /**
   * The blobs in pages of a listing of blobsPrefix (keys that are not blob
   * keys are skipped), strictly after `after` when given.
   */
  async *blobsOfPages(
    pages: AsyncIterable<{ key: string; size: number }[]>,
    after?: Digest,
  ): AsyncIterable<BlobInfo> {
    for await (const page of pages) {
      for (const o of page) {
        const digest = this.digestOfKey(o.key);
        if (digest && (after === undefined || digest > after)) yield { digest, size: o.size };
      }
    }
  }
}

// ---- store options ------------------------------------------------------------

/** The options the S3 and GCS blob stores share. */
export interface BucketStoreOptions {
  multipartThresholdBytes?: number;
  headConcurrency?: number;
  listThreshold?: number;
  listCostInHeads?: number;
  headBeforeWriteBytes?: number;
  retries?: number;
}

/** `opts` with the shared options defaulted. */
export function bucketStoreDefaults(opts: BucketStoreOptions): Required<BucketStoreOptions> {
  return {
    multipartThresholdBytes: opts.multipartThresholdBytes ?? DEFAULTS.multipartThresholdBytes,
    headConcurrency: opts.headConcurrency ?? DEFAULTS.bucketHeadConcurrency,
    listThreshold: opts.listThreshold ?? DEFAULTS.bucketListThreshold,
    listCostInHeads: opts.listCostInHeads ?? DEFAULTS.bucketListCostInHeads,
    headBeforeWriteBytes: opts.headBeforeWriteBytes ?? DEFAULTS.bucketHeadBeforeWriteBytes,
    retries: opts.retries ?? DEFAULTS.remoteRetries,
  };
}

// ---- ref objects ------------------------------------------------------------

/**
 * The bytes of a ref object. The random nonce makes every write distinct:
 * an S3 ETag is the MD5 of the content, so without it writing the same target
 * twice would keep the version (and A→B→A would let a stale writer win), and
 * it lets a writer whose response was lost recognise its own write.
 */
export function encodeBucketRef(target: Digest): { body: Buffer; nonce: string } {
  const nonce = randomBytes(12).toString('hex');
  return { body: Buffer.from(`${JSON.stringify({ target, nonce })}\n`, 'utf8'), nonce };
}

/** A deletion marker (S3 only; see s3-ref-store.ts): the ref is absent. */
export function encodeTombstone(): { body: Buffer; nonce: string } {
  const nonce = randomBytes(12).toString('hex');
  return { body: Buffer.from(`${JSON.stringify({ deleted: true, nonce })}\n`, 'utf8'), nonce };
}

export type ParsedRef =
  | { kind: 'ref'; target: Digest; nonce?: string }
  | { kind: 'tombstone'; nonce?: string };

export function parseBucketRef(bytes: Uint8Array, name: string): ParsedRef {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    v = undefined;
  }
  const nonce = (v as { nonce?: unknown } | undefined)?.nonce;
  const n = typeof nonce === 'string' ? nonce : undefined;
  if (typeof v === 'object' && v !== null && (v as { deleted?: unknown }).deleted === true)
    return { kind: 'tombstone', nonce: n };
  const obj = decodeRefObject(bytes, name);
  return { kind: 'ref', target: obj.target, nonce: n };
}

/**
 * The refs among one listed page of names, in order: each ref object is read
 * (bounded parallel) and tombstones or refs gone meanwhile are skipped.
 */
export async function* refsOfPage<C extends ParsedRef>(
  names: readonly string[],
  read: (name: string) => Promise<C | undefined>,
  version: (cur: C) => string,
): AsyncIterable<RefListing> {
  const values = await mapLimit(names, DEFAULTS.bucketHeadConcurrency, read);
  for (let i = 0; i < names.length; i++) {
    const v = values[i];
    if (v?.kind === 'ref') yield { name: names[i], target: v.target, version: version(v) };
  }
}

/** Largest ref object read back (they are ~120 bytes). */
export const MAX_REF_OBJECT_BYTES = 64 * 1024;

// ---- "which blobs are missing" -------------------------------------------------

export interface MissingBackend {
  has(digest: Digest, signal?: AbortSignal): Promise<boolean>;
  /** Pages of keys under `prefix`, in lexicographic order, starting after `startAfter`. */
  listKeys(prefix: string, startAfter: string, signal?: AbortSignal): AsyncIterable<string[]>;
}

export interface MissingOptions {
  headConcurrency?: number;
  listThreshold?: number;
  listCostInHeads?: number;
}

/**
 * The subset of `digests` absent from the bucket, in input order.
 *
 * Cost model (AWS S3 and GCS price lists agree): a LIST page (≤1000 keys) is a
 * class-A request at ~12× the price of a HEAD (`bucketListCostInHeads`), and
 * one round trip. Listing a key range pays off when it replaces more HEADs
 * than it costs, which depends on how many blobs the bucket holds — unknown
 * in advance. So listing is tried within a budget and abandoned when it stops
 * paying:
 * 1. a batch of at least bucketListCostInHeads digests first lists the whole
 *    blob range from just before its smallest key to past its largest, for
 *    at most batch/bucketListCostInHeads pages. A new or small remote (the
 *    first push of a directory) is answered by one or a few LISTs instead of
 *    one HEAD per file;
 * 2. if the budget runs out, a large remainder (> bucketListThreshold) is
 *    tried per shard prefix (`blobs/sha256/<2 hex>/`) the same way, with a
 *    budget per shard;
 * 3. whatever is still undecided gets bounded parallel HEADs.
 * The cost is therefore never much above twice the cheaper of "list" and
 * "HEAD each", whatever the bucket size. Listing can only err towards
 * "missing" (a blob deleted meanwhile is the same race as with HEAD), and a
 * blob uploaded twice is harmless (create-if-absent).
 */
export async function bucketMissing(
  backend: MissingBackend,
  layout: BucketLayout,
  digests: readonly Digest[],
  opts: MissingOptions = {},
  signal?: AbortSignal,
): Promise<Digest[]> {
  const unique = [...new Set(digests)];
  const headConcurrency = opts.headConcurrency ?? DEFAULTS.bucketHeadConcurrency;
  const listThreshold = opts.listThreshold ?? DEFAULTS.bucketListThreshold;
  const costInHeads = Math.max(1, opts.listCostInHeads ?? DEFAULTS.bucketListCostInHeads);
  const present = new Set<Digest>();
  const sem = new Semaphore(headConcurrency);
  type Keyed = { d: Digest; key: string };
  /**
   * Lists `prefix` over the range of the (sorted) wanted keys while the pages
   * spent stay within the HEADs they replace; returns the undecided rest.
   */
  const listRange = async (prefix: string, keyed: Keyed[]): Promise<Keyed[]> => {
    let i = 0; // keyed[0..i) are decided
    let budget = Math.floor(keyed.length / costInHeads);
    if (budget < 1) return keyed;
    // Start just before the first wanted key: a strict prefix of it sorts first.
    const pages = backend.listKeys(prefix, keyed[0].key.slice(0, -1), signal)[Symbol.asyncIterator]();
    try {
      while (budget-- > 0) {
        const page = await sem.run(() => pages.next());
        if (page.done) return []; // listed to the end: everything not seen is missing
        const keys = page.value;
        if (keys.length === 0) continue;
        const seen = new Set(keys);
        const last = keys[keys.length - 1];
        while (i < keyed.length && cmp(keyed[i].key, last) <= 0) {
          if (seen.has(keyed[i].key)) present.add(keyed[i].d);
          i++;
        }
        if (i >= keyed.length) return [];
        budget = Math.min(budget, Math.floor((keyed.length - i) / costInHeads));
      }
    } finally {
      await pages.return?.();
    }
    return keyed.slice(i);
  };

  const keyed = unique.map((d) => ({ d, key: layout.blobKey(d) })).sort((a, b) => cmp(a.key, b.key));
  let rest = await listRange(layout.blobsPrefix, keyed);
  if (rest.length > listThreshold) {
    const shards = new Map<string, Keyed[]>();
    for (const k of rest) {
      const p = layout.shardPrefix(k.d);
      const list = shards.get(p);
      if (list) list.push(k);
      else shards.set(p, [k]);
    }
    const undecided = await Promise.all([...shards].map(([p, ks]) => listRange(p, ks)));
    rest = undecided.flat();
  }
  await forEachLimit(rest, headConcurrency, async ({ d }) => {
    if (await backend.has(d, signal)) present.add(d);
  });
  return unique.filter((d) => !present.has(d));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- streaming uploads ---------------------------------------------------------

/**
 * Hashes what flows through and holds back the most recent chunk until the
 * end: only when the digest (and size, if known) check out is the last chunk
 * released and the stream ended. An uploader downstream therefore never
 * receives the whole body of a blob that does not match its name, so it can
 * never finalise it — whatever its protocol (a resumable upload with a known
 * length finalises on the last byte).
 */
export class HoldBackVerifier extends Transform {
  readonly hasher = new Hasher();
  readonly expected: Digest;
  readonly expectedSize: number | undefined;
  #held: Buffer | undefined;

  constructor(expected: Digest, expectedSize?: number) {
    super();
    this.expected = expected;
    this.expectedSize = expectedSize;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    if (this.expectedSize !== undefined && this.hasher.size > this.expectedSize) {
      cb(tooLong(this.expected, this.expectedSize));
      return;
    }
    const prev = this.#held;
    this.#held = chunk;
    cb(null, prev);
  }

  override _flush(cb: TransformCallback): void {
    const err = verifyHash(this.hasher, this.expected, this.expectedSize);
    if (err) {
      cb(err);
      return;
    }
    if (this.#held) this.push(this.#held);
    cb();
  }
}

export function tooLong(expected: Digest, size: number): HoardError {
  return new HoardError('HOARD_ETRUNCATED', `body of ${expected} is longer than the declared ${size} bytes`);
}

/** The error for a finished hash that does not match, or undefined. */
export function verifyHash(hasher: Hasher, expected: Digest, expectedSize?: number): HoardError | undefined {
  if (expectedSize !== undefined && hasher.size !== expectedSize)
    return new HoardError(
      'HOARD_ETRUNCATED',
      `expected ${expectedSize} bytes, got ${hasher.size} for ${expected}`,
    );
  const actual = hasher.digest();
  if (actual !== expected) return new DigestMismatchError(expected, actual);
  return undefined;
}

/**
 * Reusable part buffers of one upload. Every part of a multipart upload is
 * copied into a buffer taken from here and given back once its request has
 * settled, so a 1 GiB upload cycles through (concurrency + 1) buffers instead
 * of allocating 64 new 16 MiB ones: garbage that V8 frees only at its next
 * GC would otherwise dominate the process's peak RSS. Buffers are allocated
 * lazily; a small blob only touches (makes resident) the pages it fills.
 */
export class PartPool {
  readonly partBytes: number;
  #free: Buffer[] = [];

  constructor(partBytes: number) {
    this.partBytes = partBytes;
  }

  acquire(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.partBytes);
  }

  /**
   * Frees every pooled buffer now instead of at some later major GC (the
   * buffers are long-lived, so they sit in V8's old space). Only call once
   * every request that used them has completed successfully: a request that
   * failed midway may still have a socket write referencing the memory.
   */
  dispose(): void {
    for (const b of this.#free.splice(0)) (b.buffer as ArrayBuffer).transfer(0);
  }

  /** Gives back a buffer from acquire() (or a view of one). */
  release(buf: Buffer): void {
    if (buf.buffer.byteLength === this.partBytes && this.#free.length < 64)
      this.#free.push(Buffer.from(buf.buffer, 0, this.partBytes));
  }
}

/**
 * Cuts a byte source into parts of exactly `pool.partBytes` (the last may be
 * shorter), hashing as it goes; each part is a pool buffer (or a view of
 * one) that the consumer gives back with pool.release().
 */
export async function* partsOf(
  source: AsyncIterable<Uint8Array>,
  pool: PartPool,
  hasher: Hasher,
  expected: Digest,
  expectedSize?: number,
): AsyncGenerator<Buffer> {
  const partBytes = pool.partBytes;
  let part: Buffer | undefined;
  let fill = 0;
  for await (const raw of source) {
    const chunk =
      typeof raw === 'string' ? Buffer.from(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    hasher.update(chunk);
    if (expectedSize !== undefined && hasher.size > expectedSize) throw tooLong(expected, expectedSize);
    let off = 0;
    while (off < chunk.byteLength) {
      part ??= pool.acquire();
      const n = Math.min(partBytes - fill, chunk.byteLength - off);
      chunk.copy(part, fill, off, off + n);
      fill += n;
      off += n;
      if (fill === partBytes) {
        yield part;
        part = undefined;
        fill = 0;
      }
    }
  }
  if (part && fill > 0) yield part.subarray(0, fill);
}
