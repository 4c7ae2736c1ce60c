// Google Cloud Storage BlobStore: `<prefix>blobs/sha256/<2 hex>/<64 hex>`.
//
// Writes are create-if-absent with `ifGenerationMatch=0` ("already exists",
// 412, is success with `created: false`), after a metadata GET that avoids
// sending bytes that exist (skipped for bodies declared below
// bucketHeadBeforeWriteBytes). The digest is verified before the object can
// appear:
// - bodies below multipartThresholdBytes are read into memory while
//   hashing, verified, then sent in one multipart (simple) upload;
// - larger bodies stream into one resumable upload through a
//   HoldBackVerifier, which keeps the last chunk until the SHA-256 and size
//   check out. GCS finalises an object only when the upload's last byte
//   arrives, so a body that does not match never becomes an object (the
//   session is abandoned and expires).
// The client also checks crc32c/MD5 of what it sent against what GCS stored.
//
// A transient failure in the middle of a resumable upload fails that write
// (the source stream is consumed, so it cannot be replayed); the caller's
// next push skips every blob already stored.
//
// Reads: the metadata is read first (existence, size for the range), then
// the media; a full read is verified against the digest at its end.

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, Hasher, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError } from '../core/errors.ts';
import { withRetry } from '../core/retry.ts';
import { drain } from '../core/streams.ts';
import {
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type ByteSource,
  type ListOptions,
  resolveRange,
  type WriteOptions,
  type WriteResult,
} from '../store/blob-store.ts';
import {
  type BucketLayout,
  type BucketStoreOptions,
  bucketMissing,
  bucketStoreDefaults,
  HoldBackVerifier,
  tooLong,
  verifyHash,
} from './bucket-layout.ts';
import { type GcsLocation, gcsError, isGcsNotFound, isGcsPreconditionFailed } from './gcs-common.ts';

export type GcsBlobStoreOptions = BucketStoreOptions;

export class GcsBlobStore implements BlobStore {
  readonly description: string;
  readonly loc: GcsLocation;
  readonly layout: BucketLayout;
  readonly opts: Required<GcsBlobStoreOptions>;

  constructor(loc: GcsLocation, layout: BucketLayout, opts: GcsBlobStoreOptions = {}) {
    this.loc = loc;
    this.layout = layout;
    this.description = `gs://${loc.name}/${layout.prefix}`;
    this.opts = bucketStoreDefaults(opts);
  }

  #retry<T>(op: string, key: string | undefined, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(`GCS ${op}`, fn, { signal, retries: this.opts.retries }).catch((err) => {
      throw gcsError(err, op, this.loc.name, key);
    });
  }

  async stat(digest: Digest, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    const key = this.layout.blobKey(digest);
    try {
      const [meta] = await withRetry('GCS getMetadata', () => this.loc.bucket.file(key).getMetadata(), {
        signal,
        retries: this.opts.retries,
      });
      return { digest, size: Number(meta.size ?? 0) };
    } catch (err) {
      if (isGcsNotFound(err)) return undefined;
      throw gcsError(err, 'getMetadata', this.loc.name, key);
    }
  }

  async has(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(digest, signal)) !== undefined;
  }

  async read(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const info = await this.stat(digest, signal);
    if (!info) throw new BlobNotFoundError(digest, { details: { bucket: this.loc.name } });
    const { start, end } = resolveRange(range, info.size);
    if (end <= start) return Readable.from([]);
    const file = this.loc.bucket.file(this.layout.blobKey(digest));
    if (range) {
      const s = file.createReadStream({ start, end: end - 1, validation: false, decompress: false });
      signal?.addEventListener('abort', () => s.destroy(signal.reason), { once: true });
      return s;
    }
    const s = file.createReadStream({ decompress: false });
    const verify = new VerifyingStream(digest, info.size);
    signal?.addEventListener('abort', () => verify.destroy(signal.reason), { once: true });
    pipeline(s, verify).catch(() => {});
    return verify;
  }

  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const { signal, size } = opts;
    const key = this.layout.blobKey(digest);
    // As on S3: no metadata check before a small declared body (the
    // conditional upload alone costs what the check would save).
    if (size === undefined || size >= this.opts.headBeforeWriteBytes) {
      const existing = await this.stat(digest, signal);
      if (existing) {
        await drain(source);
        return { created: false, size: existing.size };
      }
    }
    const file = this.loc.bucket.file(key);
    const it = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headBytes = 0;
    let ended = false;
    try {
      while (headBytes < this.opts.multipartThresholdBytes) {
        const next = await it.next();
        if (next.done) {
          ended = true;
          break;
        }
        const chunk = Buffer.from(next.value);
        head.push(chunk);
        headBytes += chunk.byteLength;
        if (size !== undefined && headBytes > size) throw tooLong(digest, size);
      }
    } catch (err) {
      await it.return?.();
      throw err;
    }
    if (ended) {
      const hasher = new Hasher();
      for (const c of head) hasher.update(c);
      const bad = verifyHash(hasher, digest, size);
      if (bad) throw bad;
      const body = Buffer.concat(head, headBytes);
      try {
        await withRetry(
          'GCS upload',
          () =>
            file.save(body, {
              resumable: false,
              contentType: 'application/octet-stream',
              preconditionOpts: { ifGenerationMatch: 0 },
            }),
          { signal, retries: this.opts.retries },
        );
        return { created: true, size: headBytes };
      } catch (err) {
        if (isGcsPreconditionFailed(err)) return { created: false, size: headBytes };
        throw gcsError(err, 'upload', this.loc.name, key);
      }
    }
    async function* body() {
      yield* head.splice(0);
      for (;;) {
        const next = await it.next();
        if (next.done) return;
        yield next.value;
      }
    }
    const verify = new HoldBackVerifier(digest, size);
    try {
      await pipeline(
        Readable.from(body(), { objectMode: false }),
        verify,
        file.createWriteStream({
          resumable: true,
          contentType: 'application/octet-stream',
          preconditionOpts: { ifGenerationMatch: 0 },
        }),
        { signal },
      );
      return { created: true, size: verify.hasher.size };
    } catch (err) {
      if (isGcsPreconditionFailed(err)) return { created: false, size: verify.hasher.size };
      throw gcsError(err, 'resumable upload', this.loc.name, key);
    }
  }

  async delete(digest: Digest): Promise<boolean> {
    const key = this.layout.blobKey(digest);
    try {
      await withRetry('GCS delete', () => this.loc.bucket.file(key).delete(), { retries: this.opts.retries });
      return true;
    } catch (err) {
      if (isGcsNotFound(err)) return false;
      throw gcsError(err, 'delete', this.loc.name, key);
    }
  }

  async *listPages(
    prefix: string,
    startOffset: string | undefined,
    signal?: AbortSignal,
  ): AsyncIterable<{ key: string; size: number }[]> {
    let pageToken: string | undefined;
    for (;;) {
      const [files, next] = await this.#retry(
        'list',
        prefix,
        () =>
          this.loc.bucket.getFiles({
            prefix,
            autoPaginate: false,
            maxResults: 1000,
            ...(pageToken ? { pageToken } : {}),
            ...(startOffset ? { startOffset } : {}),
          }),
        signal,
      );
      yield files.map((f) => ({ key: f.name, size: Number(f.metadata.size ?? 0) }));
      pageToken = (next as { pageToken?: string } | null)?.pageToken;
      if (!pageToken) return;
    }
  }

  list(opts: ListOptions = {}): AsyncIterable<BlobInfo> {
    // startOffset is inclusive: the cursor's own key, if listed, is dropped by blobsOfPages.
    const start = opts.after === undefined ? undefined : this.layout.blobKey(opts.after);
    return this.layout.blobsOfPages(this.listPages(this.layout.blobsPrefix, start, opts.signal), opts.after);
  }

  missing(digests: readonly Digest[], signal?: AbortSignal): Promise<Digest[]> {
    const self = this;
    return bucketMissing(
      {
        has: (d, s) => this.has(d, s),
        async *listKeys(prefix, startAfter, s) {
          for await (const page of self.listPages(prefix, startAfter, s)) yield page.map((o) => o.key);
        },
      },
      this.layout,
      digests,
      this.opts,
      signal,
    );
  }
}
