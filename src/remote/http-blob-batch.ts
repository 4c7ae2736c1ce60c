// The client half of POST /v1/blobs/batch (docs/api.md): the wants are cut
// into requests of at most DEFAULTS.blobBatchDigests blobs and
// DEFAULTS.blobBatchBytes bytes, a few in flight at once; each response is
// read record by record (src/core/blob-batch-frame.ts checks order,
// lengths, digests and the end), and every record is handed over verified,
// the consumer awaited before the next is read. Blobs the server did not
// send (over its byte budget) and wants too big to batch are read alone. A
// server without the endpoint (404: older than it) is read blob by blob.

import { BATCH_CONTENT_TYPE, type BlobWant, readBatchFrames } from '../core/blob-batch-frame.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import type { BlobStore, ReadManyOptions, ReadManyRecord } from '../store/blob-store.ts';
import { readManyByRead } from '../store/read-many.ts';
import { discard, type HoardHttpClient, header } from './http-client.ts';

export interface BatchLimits {
  digests: number;
  bytes: number;
  concurrency: number;
}

export const defaultBatchLimits = (): BatchLimits => ({
  digests: DEFAULTS.blobBatchDigests,
  bytes: DEFAULTS.blobBatchBytes,
  concurrency: DEFAULTS.blobBatchConcurrency,
});

/** Wants cut into batches (in order) within the limits; the ones too big for any batch apart. */
export function planBatches(
  wants: readonly BlobWant[],
  limits: BatchLimits,
): { batches: BlobWant[][]; alone: BlobWant[] } {
  const batches: BlobWant[][] = [];
  const alone: BlobWant[] = [];
  let cur: BlobWant[] = [];
  let bytes = 0;
  for (const w of wants) {
    if (w.size > limits.bytes) {
      alone.push(w);
      continue;
    }
    if (cur.length === limits.digests || bytes + w.size > limits.bytes) {
      batches.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(w);
    bytes += w.size;
  }
  if (cur.length > 0) batches.push(cur);
  return { batches, alone };
}

export class HttpBlobBatchReader {
  readonly #http: HoardHttpClient;
  readonly #single: Pick<BlobStore, 'read'>;
  readonly #limits: () => BatchLimits;
  /** Set once the server answered 404: it predates the endpoint. */
  #unsupported = false;

  constructor(http: HoardHttpClient, single: Pick<BlobStore, 'read'>, limits = defaultBatchLimits) {
    this.#http = http;
    this.#single = single;
    this.#limits = limits;
  }

  async readMany(
    wants: readonly BlobWant[],
    each: (record: ReadManyRecord) => void | Promise<void>,
    opts: ReadManyOptions = {},
  ): Promise<void> {
    const limits = this.#limits();
    const { batches, alone } = planBatches(wants, limits);
    const later: BlobWant[] = [...alone];
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < batches.length) {
        const batch = batches[next++];
        try {
          if (this.#unsupported || !(await this.#batch(batch, each, later, opts.signal)))
            later.push(...batch);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    const n = Math.max(1, Math.min(limits.concurrency, batches.length));
    const results = await Promise.allSettled(Array.from({ length: n }, worker));
    const rejected = results.find((r) => r.status === 'rejected');
    if (rejected) throw (rejected as PromiseRejectedResult).reason;
    await readManyByRead(this.#single, later, each, {
      signal: opts.signal,
      concurrency: DEFAULTS.transferConcurrency,
    });
  }

  /** One request; false when the server has no batch endpoint (the caller reads these alone). */
  async #batch(
    batch: BlobWant[],
    each: (record: ReadManyRecord) => void | Promise<void>,
    later: BlobWant[],
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const res = await this.#http.request('POST', 'v1/blobs/batch', {
      headers: { 'content-type': 'application/json', accept: BATCH_CONTENT_TYPE },
      body: Buffer.from(JSON.stringify({ digests: batch.map((w) => w.digest) })),
      signal,
      accept: [404],
    });
    if (res.status === 404) {
      discard(res);
      this.#unsupported = true;
      return false;
    }
    const type = header(res, 'content-type');
    if (res.status !== 200 || type?.split(';')[0].trim() !== BATCH_CONTENT_TYPE) {
      discard(res);
      throw new HoardError(
        'HOARD_EREMOTE',
        `batched blob read: unexpected answer (HTTP ${res.status}, ${type ?? 'no content type'})`,
      );
    }
    /** What the consumer threw: its own failure, passed on as it is (not the socket's). */
    let consumerFailure: { err: unknown } | undefined;
    try {
      await readBatchFrames(res.body, batch, async (rec) => {
        if (rec.status === 'not-sent') {
          later.push(batch.find((w) => w.digest === rec.digest)!);
          return;
        }
        try {
          await each(rec);
        } catch (err) {
          consumerFailure = { err };
          throw err;
        }
      });
    } catch (err) {
      if (!res.body.destroyed) res.body.destroy();
      if (isHoardError(err) || (consumerFailure && consumerFailure.err === err)) throw err;
      // The socket failed mid-body: the records read so far were whole and verified.
      throw new HoardError('HOARD_ETRUNCATED', 'batched blob read: the response was cut short', {
        cause: err,
      });
    }
    return true;
  }
}
