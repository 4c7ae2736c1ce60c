// The bytes of package documents as clients get them: the stored document
// with every `dist.tarball` pointing at this server, serialised once and
// kept, with a weak ETag and (for documents big enough to gain from it) a
// gzip copy made once in the thread pool. Without this every request for a
// document re-walked every version, copied it and re-serialised it: a cost
// proportional to the document (the big public ones are megabytes), paid on
// every hit of a warm install.
//
// Kept by (stored document digest, public base URL, form): a new upstream
// document is stored under a new digest, so its bytes are made afresh; a
// request that reached the server under another base (no --public-url set)
// gets its own links. Bounded by bytes, least recently used out first; a
// body too big for the bound is made for its request and not kept.

import { promisify } from 'node:util';
import { constants, gzip } from 'node:zlib';
import { type Digest, hexOf, sha256 } from '../../core/digest.ts';

const gzipAsync = promisify(gzip);

/** Bodies smaller than this are sent as they are: gzip's header and a round trip through zlib cost more than they save. */
export const GZIP_MIN_BYTES = 1024;

export interface DocumentBody {
  /** The serialised document, identity coding. */
  readonly bytes: Buffer;
  /** Weak (the gzip and identity forms share it): `W/"<hex>"`. */
  readonly etag: string;
  /** The gzip coding of `bytes` (made on first use), or undefined when the body is too small to gain. */
  gzip(): Promise<Buffer> | undefined;
}

interface Kept extends DocumentBody {
  /** Bytes this entry holds (both codings once made). */
  weight: number;
}

export class DocumentBodies {
  readonly #maxBytes: number;
  readonly #kept = new Map<string, Kept>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held now (for tests). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The body of the stored document `digest` served as `label` (its form and
   * package name) under `base`; `make` serialises it on a miss.
   */
  get(digest: Digest, label: string, base: string, make: () => string): DocumentBody {
    const key = `${label}\n${hexOf(digest)}\n${base}`;
    const hit = this.#kept.get(key);
    if (hit) {
      // Most recently used last: Map keeps insertion order.
      this.#kept.delete(key);
      this.#kept.set(key, hit);
      return hit;
    }
    const bytes = Buffer.from(make());
    let zipped: Promise<Buffer> | undefined;
    const body: Kept = {
      bytes,
      etag: `W/"${hexOf(sha256(bytes)).slice(0, 40)}"`,
      weight: bytes.byteLength,
      gzip: () => {
        if (bytes.byteLength < GZIP_MIN_BYTES) return undefined;
        if (!zipped) {
          zipped = gzipAsync(bytes, { level: constants.Z_DEFAULT_COMPRESSION });
          // Counted once made; a failure (out of memory) is not kept: the next request tries again.
          zipped.then(
            (z) => {
              if (this.#kept.get(key) !== body) return;
              body.weight += z.byteLength;
              this.#bytes += z.byteLength;
              this.#trim();
            },
            () => {
              zipped = undefined;
            },
          );
        }
        return zipped;
      },
    };
    if (bytes.byteLength <= this.#maxBytes / 8) {
      this.#kept.set(key, body);
      this.#bytes += body.weight;
      this.#trim();
    }
    return body;
  }

  #trim(): void {
    for (const [key, kept] of this.#kept) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#kept.delete(key);
      this.#bytes -= kept.weight;
    }
  }
}
