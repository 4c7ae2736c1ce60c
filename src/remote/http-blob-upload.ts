// The client half of POST /v1/blobs/batch-upload (docs/api.md): small blobs
// a push or cache save knows the server lacks, gathered from memory into
// requests of at most DEFAULTS.blobBatchDigests blobs and
// DEFAULTS.blobBatchBytes bytes, a few requests in flight at once. Each
// request body is one bounded buffer (framed by src/core/blob-batch-frame.ts),
// so a transient failure resends it whole; the server answers only once every
// blob of it is durable (and in its shared tier), so flush() resolving means
// every added blob is stored. A server without the endpoint (404: older than
// it) gets the same blobs as single PUTs, and is not asked again.

import { Readable } from 'node:stream';
import { UPLOAD_CONTENT_TYPE, uploadFrames } from '../core/blob-batch-frame.ts';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import type { BlobBatch } from '../store/blob-batch.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { BatchLimits } from './http-blob-batch.ts';
import { discard, type HoardHttpClient, readJson } from './http-client.ts';

interface Pending {
  digest: Digest;
  bytes: Buffer;
}

/** Shared by every upload batch of one store: whether the server has the endpoint. */
export interface UploadSupport {
  unsupported: boolean;
}

export class HttpBlobUploadBatch implements BlobBatch {
  readonly #http: HoardHttpClient;
  readonly #single: Pick<BlobStore, 'write'>;
  readonly #limits: BatchLimits;
  readonly #support: UploadSupport;
  readonly #signal: AbortSignal | undefined;
  readonly #added = new Set<Digest>();
  #group: Pending[] = [];
  #groupBytes = 0;
  /** Requests in flight; they never reject (failures go to #error). */
  readonly #inFlight = new Set<Promise<void>>();
  readonly #slotWaiters: (() => void)[] = [];
  #error: unknown;

  constructor(
    http: HoardHttpClient,
    single: Pick<BlobStore, 'write'>,
    support: UploadSupport,
    limits: BatchLimits,
    signal?: AbortSignal,
  ) {
    this.#http = http;
    this.#single = single;
    this.#support = support;
    this.#limits = limits;
    this.#signal = signal;
  }

  /**
   * Takes a copy of `bytes` (the caller may reuse its buffer). `created` is
   * true when this batch took the blob; the caller asked the server which
   * blobs it lacks, so taken ones are uploads.
   */
  async add(digest: Digest, bytes: Uint8Array): Promise<{ created: boolean }> {
    this.#throwIfFailed();
    if (this.#added.has(digest)) return { created: false };
    this.#added.add(digest);
    const copy = Buffer.from(bytes);
    if (copy.byteLength > Math.min(this.#limits.bytes, DEFAULTS.blobUploadRecordMaxBytes)) {
      await this.#dispatch([{ digest, bytes: copy }]);
      return { created: true };
    }
    if (this.#group.length >= this.#limits.digests || this.#groupBytes + copy.byteLength > this.#limits.bytes)
      await this.#dispatch(this.#take());
    this.#group.push({ digest, bytes: copy });
    this.#groupBytes += copy.byteLength;
    return { created: true };
  }

  async flush(): Promise<void> {
    if (this.#group.length > 0) await this.#dispatch(this.#take());
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    this.#throwIfFailed();
  }

  async abort(): Promise<void> {
    this.#group = [];
    this.#groupBytes = 0;
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  #take(): Pending[] {
    const g = this.#group;
    this.#group = [];
    this.#groupBytes = 0;
    return g;
  }

  /** Starts one request once a slot is free. */
  async #dispatch(group: Pending[]): Promise<void> {
    while (this.#inFlight.size >= Math.max(1, this.#limits.concurrency))
      await new Promise<void>((r) => this.#slotWaiters.push(r));
    this.#throwIfFailed();
    const p: Promise<void> = this.#send(group)
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => {
        this.#inFlight.delete(p);
        this.#slotWaiters.shift()?.();
      });
    this.#inFlight.add(p);
  }

  async #send(group: Pending[]): Promise<void> {
    if (this.#support.unsupported || group.length === 1) return this.#putEach(group);
    const res = await this.#http.request('POST', 'v1/blobs/batch-upload', {
      headers: { 'content-type': UPLOAD_CONTENT_TYPE },
      body: Buffer.concat(uploadFrames(group)),
      signal: this.#signal,
      accept: [404, 405],
    });
    if (res.status === 404 || res.status === 405) {
      discard(res);
      this.#support.unsupported = true;
      return this.#putEach(group);
    }
    // The answer is input: it must account for every blob sent, in order.
    const value = (await readJson(res)) as { blobs?: unknown } | undefined;
    const list = value?.blobs;
    if (
      !Array.isArray(list) ||
      list.length !== group.length ||
      list.some((b, i) => (b as { digest?: unknown } | null)?.digest !== group[i].digest)
    )
      throw new HoardError(
        'HOARD_EREMOTE',
        `batched blob upload: the server's answer does not list the ${group.length} blobs sent`,
      );
  }

  async #putEach(group: Pending[]): Promise<void> {
    await forEachLimit(group, DEFAULTS.transferConcurrency, async (b) => {
      await this.#single.write(b.digest, Readable.from([b.bytes]), {
        size: b.bytes.byteLength,
        signal: this.#signal,
      });
    });
  }

  #throwIfFailed(): void {
    if (this.#error !== undefined) throw this.#error;
  }
}
