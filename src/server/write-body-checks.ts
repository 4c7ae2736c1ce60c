// An uploaded body checked against its digest by the tier stack's writes
// (tiered-blob-store.ts) when nothing of it is to be stored from the stream
// itself: a small body gathered whole for a group commit, or the body of a
// blob already stored, drained so a wrong body is refused even then.

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, sha256, VerifyingStream } from '../core/digest.ts';
import { DigestMismatchError, HoardError } from '../core/errors.ts';
import { drain } from '../core/streams.ts';
import type { ByteSource } from '../store/blob-store.ts';

/**
 * A small body read whole (at most `size` bytes held) and checked: exactly
 * `size` bytes (else HOARD_ETRUNCATED, as VerifyingStream says it) hashing
 * to `digest` (else a digest mismatch). Nothing is stored before this passed.
 */
export async function gatherExactly(
  digest: Digest,
  source: ByteSource,
  size: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  for await (const c of source as AsyncIterable<Uint8Array>) {
    signal?.throwIfAborted();
    if (got + c.byteLength > size) {
      if (source instanceof Readable) source.destroy();
      throw new HoardError('HOARD_ETRUNCATED', `expected ${size} bytes, got more for ${digest}`);
    }
    buf.set(c, got);
    got += c.byteLength;
  }
  if (got !== size)
    throw new HoardError('HOARD_ETRUNCATED', `expected ${size} bytes, got ${got} for ${digest}`);
  const actual = sha256(buf);
  if (actual !== digest) throw new DigestMismatchError(digest, actual);
  return buf;
}

/** A body read to its end and verified (`size` bytes, when given, hashing to `digest`), its bytes dropped. */
export async function verifyDrain(
  digest: Digest,
  source: ByteSource,
  size: number | undefined,
  signal?: AbortSignal,
): Promise<void> {
  await pipeline(
    source,
    new VerifyingStream(digest, size),
    async (src: AsyncIterable<unknown>) => {
      await drain(src as AsyncIterable<Uint8Array>);
    },
    { signal },
  );
}
