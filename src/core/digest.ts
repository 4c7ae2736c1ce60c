// SHA-256 digests in hoard's text form `sha256:<64 lowercase hex>`, and the
// streaming pieces that compute and verify them while bytes flow, so no body
// is ever buffered just to be hashed.

import { createHash, type Hash, hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, HoardError } from './errors.ts';

export type Digest = `sha256:${string}`;

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX_RE = /^[0-9a-f]{64}$/;

export function isDigest(text: unknown): text is Digest {
  return typeof text === 'string' && DIGEST_RE.test(text);
}

/** Validates untrusted text as a digest; the error says exactly what is wrong. */
export function parseDigest(text: unknown): Digest {
  if (isDigest(text)) return text;
  const shown = typeof text === 'string' ? JSON.stringify(text.slice(0, 80)) : typeof text;
  throw new HoardError('HOARD_EDIGEST_INVALID', `invalid digest ${shown}`, {
    hint: 'a digest is "sha256:" followed by 64 lowercase hex characters',
  });
}

/** Builds a digest from a bare hex string (as used in URLs and storage keys). */
export function digestFromHex(hex: string): Digest {
  if (!HEX_RE.test(hex)) return parseDigest(hex);
  return `sha256:${hex}`;
}

export function hexOf(digest: Digest): string {
  return digest.slice(7);
}

export function sha256(data: Uint8Array | string): Digest {
  // One-shot crypto.hash: no Hash object per call (the scan hashes every small file with it).
  return `sha256:${hash('sha256', data, 'hex')}`;
}

/** Incremental hasher that also counts bytes. */
export class Hasher {
  #hash: Hash = createHash('sha256');
  size = 0;

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.size += chunk.byteLength;
  }

  digest(): Digest {
    return `sha256:${this.#hash.digest('hex')}`;
  }
}

/**
 * A pass-through stream that hashes what flows through it and, when an
 * expected digest is given, fails the stream at its end if the bytes do not
 * match, so a consumer that writes to a temp file never commits bad data.
 */
export class VerifyingStream extends Transform {
  readonly hasher = new Hasher();
  readonly expected: Digest | undefined;
  readonly expectedSize: number | undefined;
  result: Digest | undefined;

  constructor(expected?: Digest, expectedSize?: number) {
    super();
    this.expected = expected;
    this.expectedSize = expectedSize;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.result = this.hasher.digest();
    if (this.expectedSize !== undefined && this.hasher.size !== this.expectedSize) {
      cb(
        new HoardError(
          'HOARD_ETRUNCATED',
          `expected ${this.expectedSize} bytes, got ${this.hasher.size}${this.expected ? ` for ${this.expected}` : ''}`,
        ),
      );
      return;
    }
    if (this.expected && this.result !== this.expected) {
      cb(new DigestMismatchError(this.expected, this.result));
      return;
    }
    cb();
  }
}

/** Hashes a stream or async iterable of bytes to completion. */
export async function digestOf(source: AsyncIterable<Uint8Array>): Promise<{ digest: Digest; size: number }> {
  const h = new Hasher();
  for await (const chunk of source) h.update(chunk);
  return { digest: h.digest(), size: h.size };
}
