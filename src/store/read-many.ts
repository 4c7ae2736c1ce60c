// Many small blobs at once, whatever the store: through its own `readMany`
// capability when it has one (the hoard server's batched read), else by
// bounded parallel `read`s, each gathered whole (bounded by its wanted
// size) and verified. Either way the caller sees the same contract
// (BlobStore.readMany): one call per wanted digest, verified bytes or
// `missing`, the first corrupt answer thrown.

import type { BlobWant } from '../core/blob-batch-frame.ts';
import { type Digest, sha256 } from '../core/digest.ts';
import { DigestMismatchError, HoardError, isHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import type { BlobStore, ReadManyOptions, ReadManyRecord } from './blob-store.ts';

export interface ReadManyWithOptions extends ReadManyOptions {
  /** Parallel reads of the fallback (stores without `readMany`). */
  concurrency: number;
}

export async function readMany(
  store: BlobStore,
  wants: readonly BlobWant[],
  each: (record: ReadManyRecord) => void | Promise<void>,
  opts: ReadManyWithOptions,
): Promise<void> {
  const seen = new Set<Digest>();
  for (const w of wants) {
    if (seen.has(w.digest))
      throw new HoardError('HOARD_EBAD_REQUEST', `readMany: ${w.digest} is wanted twice`);
    if (!Number.isSafeInteger(w.size) || w.size < 0)
      throw new HoardError('HOARD_EBAD_REQUEST', `readMany: invalid size ${w.size} for ${w.digest}`);
    seen.add(w.digest);
  }
  if (wants.length === 0) return;
  if (store.readMany) return store.readMany(wants, each, { signal: opts.signal });
  return readManyByRead(store, wants, each, opts);
}

/** The fallback: bounded parallel whole reads, each verified. */
export async function readManyByRead(
  store: Pick<BlobStore, 'read'>,
  wants: readonly BlobWant[],
  each: (record: ReadManyRecord) => void | Promise<void>,
  opts: ReadManyWithOptions,
): Promise<void> {
  await forEachLimit(wants, opts.concurrency, async (w) => {
    opts.signal?.throwIfAborted();
    let bytes: Buffer;
    try {
      bytes = await readWholeVerified(store, w, opts.signal);
    } catch (err) {
      if (!isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) throw err;
      await each({ digest: w.digest, status: 'missing' });
      return;
    }
    await each({ digest: w.digest, status: 'present', bytes });
  });
}

/**
 * One blob read whole and verified: at most `size` + 1 bytes are taken (more
 * is corrupt, whatever the store sends). A store that read it whole
 * (FsBlobStore with syncReads) hands over one Buffer, taken without a copy.
 */
export async function readWholeVerified(
  store: Pick<BlobStore, 'read'>,
  want: BlobWant,
  signal?: AbortSignal,
): Promise<Buffer> {
  const source = await store.read(want.digest, undefined, signal);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    n += chunk.byteLength;
    if (n > want.size) {
      source.destroy();
      throw new DigestMismatchError(want.digest, `(more than the expected ${want.size} bytes)`);
    }
    chunks.push(chunk);
  }
  const bytes = chunks.length === 1 && Buffer.isBuffer(chunks[0]) ? chunks[0] : Buffer.concat(chunks, n);
  const actual = sha256(bytes);
  if (actual !== want.digest) throw new DigestMismatchError(want.digest, actual);
  return bytes;
}
