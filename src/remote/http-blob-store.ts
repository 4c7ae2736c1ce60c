// BlobStore over a hoard server's HTTP API v1 (docs/api.md). Whole-blob
// reads are verified against the digest while they stream (a corrupted or
// cut-short response fails at its end); uploads stream with Content-Length
// when the size is known; "which are missing" is one POST per batch; many
// small blobs come in framed batches (readMany, src/remote/http-blob-batch.ts)
// and go in framed batches (uploadBatch, src/remote/http-blob-upload.ts).

import { Readable } from 'node:stream';
import type { BlobWant } from '../core/blob-batch-frame.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, hexOf, sha256, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError, DigestMismatchError, HoardError, isHoardError } from '../core/errors.ts';
import { readAllBounded } from '../core/streams.ts';
import type { UploadBatchingBlobStore } from '../store/blob-batch.ts';
import type {
  BlobInfo,
  BlobStore,
  ByteRange,
  ByteSource,
  ListOptions,
  ReadManyOptions,
  ReadManyRecord,
  WriteOptions,
  WriteResult,
} from '../store/blob-store.ts';
import { resolveRange } from '../store/blob-store.ts';
import { HttpBlobBatchReader } from './http-blob-batch.ts';
import { HttpBlobUploadBatch, type UploadSupport } from './http-blob-upload.ts';
import { discard, type HoardHttpClient, type HttpResponse, header, readJson } from './http-client.ts';

/**
 * Uploads of at most this many bytes (declared size) are read into memory
 * first so that a transient failure can resend them; larger ones stream and
 * are retried only if they fail before their first byte is taken.
 */
const RETRY_BUFFER_BYTES = 1024 * 1024;

export class HttpBlobStore implements BlobStore, UploadBatchingBlobStore {
  readonly description: string;
  readonly #http: HoardHttpClient;
  readonly #batches: HttpBlobBatchReader;
  /** Whether the server lacks POST /v1/blobs/batch-upload (learnt from its 404). */
  readonly #uploads: UploadSupport = { unsupported: false };

  constructor(http: HoardHttpClient) {
    this.#http = http;
    this.#batches = new HttpBlobBatchReader(http, this);
    this.description = http.base.origin + http.base.pathname.replace(/\/$/, '');
  }

  #path(digest: Digest): string {
    return `v1/blobs/sha256/${hexOf(digest)}`;
  }

  async stat(digest: Digest, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    const res = await this.#http.request('HEAD', this.#path(digest), { signal, accept: [404] });
    discard(res);
    if (res.status === 404) return undefined;
    return { digest, size: Number(header(res, 'content-length') ?? 0) };
  }

  async has(digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return (await this.stat(digest, signal)) !== undefined;
  }

  async read(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    if (range) {
      resolveRange(range, Number.MAX_SAFE_INTEGER); // validates the numbers
      if (range.length === 0) {
        const info = await this.stat(digest, signal);
        if (!info) throw new BlobNotFoundError(digest);
        resolveRange(range, info.size);
        return Readable.from([]);
      }
      const last = range.length === undefined ? '' : String(range.offset + range.length - 1);
      let res: HttpResponse;
      try {
        res = await this.#http.request('GET', this.#path(digest), {
          signal,
          headers: { range: `bytes=${range.offset}-${last}` },
        });
      } catch (err) {
        // An empty blob has no byte 0, but a read at offset 0 of it is valid.
        if (isHoardError(err, 'HOARD_ERANGE_NOT_SATISFIABLE') && range.offset === 0) {
          const info = await this.stat(digest, signal);
          if (info?.size === 0) return Readable.from([]);
        }
        throw err;
      }
      if (res.status === 206) return res.body;
      if (res.status === 200 && range.offset === 0 && range.length === undefined)
        return verified(res, digest);
      discard(res);
      throw new HoardError('HOARD_EREMOTE', `server ignored the range of ${digest} (HTTP ${res.status})`);
    }
    return verified(await this.#http.request('GET', this.#path(digest), { signal }), digest);
  }

  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (opts.size !== undefined && opts.size <= RETRY_BUFFER_BYTES) {
      // Small bodies are read first (bounded) and verified, so every attempt can resend them.
      let bytes: Buffer;
      try {
        bytes = await readAllBounded(source as AsyncIterable<Uint8Array>, opts.size);
      } catch (err) {
        if (isHoardError(err, 'HOARD_ETOO_LARGE'))
          throw new HoardError(
            'HOARD_EBAD_REQUEST',
            `body of ${digest} is longer than its declared ${opts.size} bytes`,
          );
        throw err;
      }
      const actual = sha256(bytes);
      if (bytes.length !== opts.size)
        throw new HoardError(
          'HOARD_ETRUNCATED',
          `expected ${opts.size} bytes, got ${bytes.length} for ${digest}`,
        );
      if (actual !== digest) throw new DigestMismatchError(digest, actual);
      const res = await this.#http.request('PUT', this.#path(digest), {
        headers,
        body: bytes,
        signal: opts.signal,
      });
      const value = (await readJson(res)) as { size?: number } | undefined;
      return { created: res.status === 201, size: value?.size ?? bytes.length };
    }
    if (opts.size !== undefined) headers['content-length'] = String(opts.size);
    const body = source instanceof Readable ? source : Readable.from(source);
    // Verify locally too: a mismatch is reported as such, not as a server 400.
    const verify = new VerifyingStream(digest, opts.size);
    const sent = body.pipe(verify);
    body.on('error', (err) => verify.destroy(err));
    let res: HttpResponse;
    try {
      res = await this.#http.request('PUT', this.#path(digest), { headers, body: sent, signal: opts.signal });
    } catch (err) {
      if (verify.errored) throw verify.errored;
      throw err;
    }
    const value = (await readJson(res)) as { size?: number; created?: boolean } | undefined;
    return { created: res.status === 201, size: value?.size ?? opts.size ?? verify.hasher.size };
  }

  /** Small blobs known to be missing, sent in framed batches (http-blob-upload.ts). */
  uploadBatch(opts: { signal?: AbortSignal } = {}): HttpBlobUploadBatch {
    const limits = {
      digests: DEFAULTS.blobUploadDigests,
      bytes: DEFAULTS.blobUploadBytes,
      concurrency: DEFAULTS.blobBatchConcurrency,
    };
    return new HttpBlobUploadBatch(this.#http, this, this.#uploads, limits, opts.signal);
  }

  async delete(digest: Digest): Promise<boolean> {
    const res = await this.#http.request('DELETE', this.#path(digest), { accept: [404] });
    discard(res);
    return res.status !== 404;
  }

  async *list(opts: ListOptions = {}): AsyncIterable<BlobInfo> {
    const { signal } = opts;
    // The server seeks to the cursor (GET /v1/blobs?after=): each page costs the server one page.
    let after: string = opts.after ?? '';
    for (;;) {
      const q = new URLSearchParams({ limit: '1000' });
      if (after) q.set('after', after);
      const res = await this.#http.request('GET', `v1/blobs?${q}`, { signal });
      const page = (await readJson(res)) as { blobs: BlobInfo[]; next: string | null };
      for (const b of page.blobs) yield b;
      if (!page.next) return;
      after = page.next;
    }
  }

  readMany(
    wants: readonly BlobWant[],
    each: (record: ReadManyRecord) => void | Promise<void>,
    opts?: ReadManyOptions,
  ): Promise<void> {
    return this.#batches.readMany(wants, each, opts);
  }

  async missing(digests: readonly Digest[], signal?: AbortSignal): Promise<Digest[]> {
    const unique = [...new Set(digests)];
    const out: Digest[] = [];
    const batch = Math.min(DEFAULTS.missingBatchSize, DEFAULTS.missingMaxBatch);
    for (let i = 0; i < unique.length; i += batch) {
      const { value } = await this.#http.json<{ missing: Digest[] }>(
        'POST',
        'v1/blobs/missing',
        { digests: unique.slice(i, i + batch) },
        { signal },
      );
      out.push(...value.missing);
    }
    return out;
  }
}

/**
 * A whole-blob response through digest verification: a body cut short (the
 * client sees a socket error) or of other bytes fails the stream before its
 * end; a consumer that stops early releases the connection.
 */
function verified(res: HttpResponse, digest: Digest): Readable {
  const len = header(res, 'content-length');
  const verify = new VerifyingStream(digest, len === undefined ? undefined : Number(len));
  res.body.on('error', (err) =>
    verify.destroy(
      new HoardError('HOARD_ETRUNCATED', `response for ${digest} was cut short`, { cause: err }),
    ),
  );
  verify.on('close', () => {
    if (!res.body.readableEnded) res.body.destroy();
  });
  return res.body.pipe(verify);
}
