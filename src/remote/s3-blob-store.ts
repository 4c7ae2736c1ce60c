// S3 (and S3-compatible) BlobStore: `<prefix>blobs/sha256/<2 hex>/<64 hex>`.
//
// Verified writes, and why this design (it works on AWS S3 and on Ceph RGW):
// the digest is computed while streaming, so a mismatch is known only at the
// end of the body, and an S3 object becomes visible the moment its PUT (or
// CompleteMultipartUpload) completes. `x-amz-checksum-sha256` would let S3
// check the expected SHA-256 atomically, but RGW 16 silently ignores it (a
// wrong checksum is stored; measured), and a temp key + server-side copy
// doubles the bytes written and RGW does not honour If-None-Match on copies.
// Instead the upload is cut where the commit happens:
// - bodies below multipartThresholdBytes are read into memory while hashing
//   (the same memory a multipart upload keeps in flight), verified, and only
//   then sent in one PutObject with `If-None-Match: *` and Content-MD5 (RGW
//   and S3 both verify that in transit);
// - larger bodies go up as multipart parts (each with Content-MD5) while
//   hashing; CompleteMultipartUpload — the only step that makes the object
//   visible — is sent only after the digest and size check out, otherwise
//   the upload is aborted and nothing ever appears at the key.
// "Already exists" (412, or 409 ConditionalRequestConflict on AWS) is success
// with `created: false`. A HEAD first avoids sending bytes that exist, except
// for bodies declared smaller than bucketHeadBeforeWriteBytes, where the
// conditional PUT alone is as cheap as the HEAD it would save.
// RGW ignores If-None-Match on CompleteMultipartUpload, so two racing
// multipart writers of one blob may both complete: harmless, the bytes are
// identical and verified (a HEAD just before Complete makes it rare).
//
// Reads: a full read is piped through a VerifyingStream, so a corrupted or
// truncated body fails at its end with HOARD_EDIGEST_MISMATCH/ETRUNCATED
// instead of ending cleanly. Ranged reads cannot be verified here (the
// consumer verifies the assembled whole, as `hoard git restore` does).

import { createHash } from 'node:crypto';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError, HoardError } from '../core/errors.ts';
import { gcNudge } from '../core/gc-nudge.ts';
import { Semaphore } from '../core/pool.ts';
import { statusOf, withRetry } from '../core/retry.ts';
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
  PartPool,
  partsOf,
  verifyHash,
} from './bucket-layout.ts';
import { errName, isNotFound, isPreconditionFailed, type S3Location, s3Error } from './s3-common.ts';

export interface S3BlobStoreOptions extends BucketStoreOptions {
  multipartPartBytes?: number;
  multipartConcurrency?: number;
}

/** S3 allows at most this many parts per upload. */
const MAX_PARTS = 10_000;

export class S3BlobStore implements BlobStore {
  readonly description: string;
  readonly loc: S3Location;
  readonly layout: BucketLayout;
  readonly opts: Required<S3BlobStoreOptions>;

  constructor(loc: S3Location, layout: BucketLayout, opts: S3BlobStoreOptions = {}) {
    this.loc = loc;
    this.layout = layout;
    this.description = `s3://${loc.bucket}/${layout.prefix}`;
    this.opts = {
      ...bucketStoreDefaults(opts),
      multipartPartBytes: opts.multipartPartBytes ?? DEFAULTS.multipartPartBytes,
      multipartConcurrency: opts.multipartConcurrency ?? DEFAULTS.multipartConcurrency,
    };
  }

  #retry<T>(op: string, key: string | undefined, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(`S3 ${op}`, fn, { signal, retries: this.opts.retries }).catch((err) => {
      throw s3Error(err, op, this.loc.bucket, key);
    });
  }

  async stat(digest: Digest, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    const key = this.layout.blobKey(digest);
    try {
      const res = await withRetry(
        'S3 HeadObject',
        () =>
          this.loc.client.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: key }), {
            abortSignal: signal,
          }),
        { signal, retries: this.opts.retries },
      );
      return { digest, size: res.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error(err, 'HeadObject', this.loc.bucket, key);
    }
  }

  async has(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(digest, signal)) !== undefined;
  }

  async read(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const key = this.layout.blobKey(digest);
    if (range) {
      resolveRange(range, Number.MAX_SAFE_INTEGER); // validates the numbers
      if (range.length === 0) return this.#emptyRange(digest, range, signal);
    }
    const rangeHeader = range
      ? `bytes=${range.offset}-${range.length === undefined ? '' : range.offset + range.length - 1}`
      : undefined;
    let res: GetObjectCommandOutput;
    try {
      res = await withRetry(
        'S3 GetObject',
        () =>
          this.loc.client.send(
            new GetObjectCommand({ Bucket: this.loc.bucket, Key: key, Range: rangeHeader }),
            {
              abortSignal: signal,
            },
          ),
        { signal, retries: this.opts.retries },
      );
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(digest, { details: { bucket: this.loc.bucket, key } });
      if (range && (errName(err) === 'InvalidRange' || statusOf(err) === 416))
        return this.#emptyRange(digest, range, signal);
      throw s3Error(err, 'GetObject', this.loc.bucket, key);
    }
    const body = res.Body as Readable | undefined;
    if (!body) return Readable.from([]);
    const out = range ? new NudgingStream() : new NudgingVerifier(digest, res.ContentLength);
    pipeline(body, out, () => {});
    return out;
  }

  /** Ranges S3 answers with 416 (past the end, or any range of an empty object). */
  async #emptyRange(digest: Digest, range: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const info = await this.stat(digest, signal);
    if (!info) throw new BlobNotFoundError(digest);
    const { start, end } = resolveRange(range, info.size); // throws when past the end
    if (end > start) return this.read(digest, range, signal);
    return Readable.from([]);
  }

  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const { signal, size } = opts;
    const key = this.layout.blobKey(digest);
    // A HEAD first avoids sending bytes that exist; for a small declared body
    // it would cost as much as the conditional PUT it saves, so it is skipped.
    if (size === undefined || size >= this.opts.headBeforeWriteBytes) {
      const existing = await this.stat(digest, signal);
      if (existing) {
        await drain(source);
        return { created: false, size: existing.size };
      }
    }
    let partBytes = this.opts.multipartPartBytes;
    if (size !== undefined) partBytes = Math.max(partBytes, Math.ceil(size / MAX_PARTS));
    const threshold = Math.max(this.opts.multipartThresholdBytes, 1);
    const hasher = new Hasher();
    const pool = new PartPool(Math.min(partBytes, threshold));
    const parts = partsOf(source as AsyncIterable<Uint8Array>, pool, hasher, digest, size)[
      Symbol.asyncIterator
    ]();
    try {
      // Read up to the threshold: a body that ends before it goes up in one PUT.
      const head: Buffer[] = [];
      let headBytes = 0;
      let ended = false;
      // A body declared at or above the threshold goes straight to multipart.
      const headLimit = size !== undefined && size >= threshold ? 0 : threshold;
      while (headBytes < headLimit) {
        const next = await parts.next();
        if (next.done) {
          ended = true;
          break;
        }
        head.push(next.value);
        headBytes += next.value.byteLength;
      }
      if (ended) {
        const bad = verifyHash(hasher, digest, size);
        if (bad) throw bad;
        const res = await this.#putSingle(key, head, headBytes, signal);
        for (const b of head) pool.release(b);
        pool.dispose();
        return res;
      }
      const res = await this.#putMultipart(digest, key, head, parts, pool, hasher, size, signal);
      pool.dispose();
      return res;
    } catch (err) {
      await parts.return?.(undefined);
      if (source instanceof Readable) source.destroy();
      throw err;
    }
  }

  async #putSingle(key: string, parts: Buffer[], size: number, signal?: AbortSignal): Promise<WriteResult> {
    const hash = createHash('md5');
    for (const p of parts) hash.update(p);
    const md5 = hash.digest('base64');
    // Several parts go up as one stream with a known length (no copy); a
    // stream is consumed by an attempt, so each attempt gets a new one.
    const body = () => (parts.length === 1 ? parts[0] : Readable.from(parts, { objectMode: false }));
    try {
      await withRetry(
        'S3 PutObject',
        () =>
          this.loc.client.send(
            new PutObjectCommand({
              Bucket: this.loc.bucket,
              Key: key,
              Body: body(),
              ContentLength: size,
              ContentMD5: md5,
              ContentType: 'application/octet-stream',
              IfNoneMatch: '*',
            }),
            { abortSignal: signal },
          ),
        { signal, retries: this.opts.retries },
      );
      return { created: true, size };
    } catch (err) {
      // Exists already (a racing writer, or our own earlier attempt whose answer was lost).
      if (isPreconditionFailed(err)) return { created: false, size };
      throw s3Error(err, 'PutObject', this.loc.bucket, key);
    }
  }

  async #putMultipart(
    digest: Digest,
    key: string,
    head: Buffer[],
    rest: AsyncIterator<Buffer>,
    pool: PartPool,
    hasher: Hasher,
    size: number | undefined,
    signal?: AbortSignal,
  ): Promise<WriteResult> {
    const { bucket, client } = this.loc;
    const created = await this.#retry(
      'CreateMultipartUpload',
      key,
      () =>
        client.send(
          new CreateMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            ContentType: 'application/octet-stream',
          }),
          { abortSignal: signal },
        ),
      signal,
    );
    const uploadId = created.UploadId;
    if (!uploadId)
      throw new HoardError(
        'HOARD_EREMOTE',
        `S3 CreateMultipartUpload s3://${bucket}/${key} returned no upload id`,
      );
    const abort = () =>
      client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
        .catch(() => {});
    const done: { PartNumber: number; ETag: string }[] = [];
    const inFlight = new Set<Promise<void>>();
    const sem = new Semaphore(this.opts.multipartConcurrency);
    let failure: unknown;
    let partNumber = 0;
    const uploadPart = (body: Buffer) => {
      const n = ++partNumber;
      gcNudge(body.byteLength); // the source chunks copied into this part are garbage now
      if (n > MAX_PARTS)
        throw new HoardError('HOARD_ETOO_LARGE', `blob ${digest} needs more than ${MAX_PARTS} parts`);
      const md5 = createHash('md5').update(body).digest('base64');
      const p = sem
        .run(() =>
          this.#retry(
            'UploadPart',
            key,
            () =>
              client.send(
                new UploadPartCommand({
                  Bucket: bucket,
                  Key: key,
                  UploadId: uploadId,
                  PartNumber: n,
                  Body: body,
                  ContentLength: body.byteLength,
                  ContentMD5: md5,
                }),
                { abortSignal: signal },
              ),
            signal,
          ),
        )
        .then((r) => {
          done.push({ PartNumber: n, ETag: r.ETag ?? '' });
        })
        .catch((err) => {
          failure ??= err;
        })
        .finally(() => {
          inFlight.delete(p);
          pool.release(body);
        });
      inFlight.add(p);
    };
    try {
      for (const b of head) uploadPart(b);
      head.length = 0;
      for (;;) {
        // Backpressure: never more than multipartConcurrency parts in memory plus the one being filled.
        while (inFlight.size >= this.opts.multipartConcurrency) await Promise.race(inFlight);
        if (failure) throw failure;
        const next = await rest.next();
        if (next.done) break;
        uploadPart(next.value);
      }
      await Promise.all(inFlight);
      if (failure) throw failure;
      // The commit point: only a verified body is ever completed.
      const bad = verifyHash(hasher, digest, size);
      if (bad) throw bad;
      if (await this.has(digest, signal)) {
        await abort();
        return { created: false, size: hasher.size };
      }
      done.sort((a, b) => a.PartNumber - b.PartNumber);
      try {
        await this.#retry(
          'CompleteMultipartUpload',
          key,
          () =>
            client.send(
              new CompleteMultipartUploadCommand({
                Bucket: bucket,
                Key: key,
                UploadId: uploadId,
                MultipartUpload: { Parts: done },
                IfNoneMatch: '*',
              }),
              { abortSignal: signal },
            ),
          signal,
        );
      } catch (err) {
        const cause = err instanceof HoardError ? err.cause : err;
        if (isPreconditionFailed(cause)) {
          await abort();
          return { created: false, size: hasher.size };
        }
        // A retried Complete whose first answer was lost finds no upload: check the object.
        if (errName(cause) === 'NoSuchUpload' && (await this.has(digest, signal)))
          return { created: true, size: hasher.size };
        throw err;
      }
      return { created: true, size: hasher.size };
    } catch (err) {
      await Promise.allSettled(inFlight);
      await abort();
      throw err;
    }
  }

  async delete(digest: Digest): Promise<boolean> {
    const key = this.layout.blobKey(digest);
    if (!(await this.has(digest))) return false;
    await this.#retry('DeleteObject', key, () =>
      this.loc.client.send(new DeleteObjectCommand({ Bucket: this.loc.bucket, Key: key })),
    );
    return true;
  }

  async *listKeys(prefix: string, startAfter?: string, signal?: AbortSignal): AsyncIterable<string[]> {
    for await (const page of this.#listPages(prefix, startAfter, signal)) yield page.map((o) => o.key);
  }

  async *#listPages(
    prefix: string,
    startAfter: string | undefined,
    signal?: AbortSignal,
  ): AsyncIterable<{ key: string; size: number }[]> {
    let token: string | undefined;
    for (;;) {
      const res = await this.#retry(
        'ListObjectsV2',
        prefix,
        () =>
          this.loc.client.send(
            new ListObjectsV2Command({
              Bucket: this.loc.bucket,
              Prefix: prefix,
              ContinuationToken: token,
              StartAfter: token ? undefined : startAfter,
            }),
            { abortSignal: signal },
          ),
        signal,
      );
      yield (res.Contents ?? []).flatMap((o) => (o.Key ? [{ key: o.Key, size: o.Size ?? 0 }] : []));
      if (!res.IsTruncated || !res.NextContinuationToken) return;
      token = res.NextContinuationToken;
    }
  }

  list(opts: ListOptions = {}): AsyncIterable<BlobInfo> {
    // StartAfter is exclusive: the listing starts right after the cursor's key.
    const start = opts.after === undefined ? undefined : this.layout.blobKey(opts.after);
    return this.layout.blobsOfPages(this.#listPages(this.layout.blobsPrefix, start, opts.signal), opts.after);
  }

  missing(digests: readonly Digest[], signal?: AbortSignal): Promise<Digest[]> {
    return bucketMissing(
      { has: (d, s) => this.has(d, s), listKeys: (p, a, s) => this.listKeys(p, a, s) },
      this.layout,
      digests,
      this.opts,
      signal,
    );
  }
}

/** A full read's verifier that also nudges the GC (see gcNudge). */
class NudgingVerifier extends VerifyingStream {
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    gcNudge(chunk.byteLength);
    super._transform(chunk, enc, cb);
  }
}

/** A ranged read's pass-through that nudges the GC (see gcNudge). */
class NudgingStream extends Transform {
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    gcNudge(chunk.byteLength);
    cb(null, chunk);
  }
}
