// The bytes of small disk-tier blobs this process has just read and hashed,
// kept so that the next read of the same blob costs one stat(2) instead of
// open, fstat, read and close. Measured on a 4 KiB GET (docs/benchmarks.md,
// Server, 2026-12-07 h-get): those four file calls were a fifth of a read
// worker's and of the primary's CPU per request; a stat of the same path
// costs about a third of them.
//
// It is not a tier: it never answers for a file that is not there. Every
// read stats the blob's path and hands the bytes out only while the file
// there has the identity (device, inode, size, mtime, ctime: disk-verify.ts)
// it had when its bytes were read and hashed; a file evicted, quarantined,
// replaced or touched is a miss, the entry is dropped, and the caller reads
// (and if need be hashes) the file again. So a hit is answered exactly when
// a read of the file would be, and with the very bytes that hashed to the
// blob's name (stronger than re-reading a trusted file: those bytes cannot
// have rotted since). The primary uses it only for what its memory tier does
// not hold (that tier is off with --max-memory 0, or full); read workers
// have no memory tier and always use it.
//
// Bounded by bytes (DEFAULTS.hotBlobBytes per process), least recently used
// forgotten first; only blobs up to maxBlobBytes enter.

import { type Stats, statSync } from 'node:fs';
import type { Digest } from '../core/digest.ts';

/** What an entry costs beyond its bytes (map slot, entry object, buffer header), counted against maxBytes. */
const ENTRY_OVERHEAD = 256;

interface Entry {
  bytes: Buffer;
  dev: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

export class HotBlobs {
  readonly maxBytes: number;
  readonly maxBlobBytes: number;
  #bytes = 0;
  readonly #map = new Map<Digest, Entry>();
  /** Lookups answered, and lookups of a known blob whose file had changed or gone. */
  hits = 0;
  stale = 0;

  constructor(opts: { maxBytes: number; maxBlobBytes: number }) {
    this.maxBytes = opts.maxBytes;
    this.maxBlobBytes = opts.maxBlobBytes;
  }

  /**
   * The bytes of `digest` when its file at `path` is still the one they were
   * read from; undefined otherwise (no entry, or the file is gone or changed:
   * the entry is dropped). One stat(2) when there is an entry, none otherwise.
   */
  get(digest: Digest, path: string): Buffer | undefined {
    const e = this.#map.get(digest);
    if (e === undefined) return undefined;
    let st: Stats | undefined;
    try {
      st = statSync(path, { throwIfNoEntry: false });
    } catch {
      st = undefined; // ENOTDIR, EACCES…: not servable from here; the caller's read says why
    }
    if (
      st === undefined ||
      st.ino !== e.ino ||
      st.dev !== e.dev ||
      st.size !== e.bytes.byteLength ||
      st.mtimeMs !== e.mtimeMs ||
      st.ctimeMs !== e.ctimeMs
    ) {
      this.#drop(digest, e);
      this.stale++;
      return undefined;
    }
    // Refresh: the map forgets the least recently used first.
    this.#map.delete(digest);
    this.#map.set(digest, e);
    this.hits++;
    return e.bytes;
  }

  /**
   * Keeps `bytes`, which the caller read from a file with stats `st` and found
   * to hash to `digest` (or found trusted by that same identity). The caller
   * must not change them: they are handed out to every later read.
   */
  add(digest: Digest, bytes: Buffer, st: Stats): void {
    if (bytes.byteLength > this.maxBlobBytes || bytes.byteLength + ENTRY_OVERHEAD > this.maxBytes) return;
    if (bytes.byteLength !== st.size) return;
    const old = this.#map.get(digest);
    if (old) this.#drop(digest, old);
    // A view into a larger buffer (Node's pool slab for small reads) would pin all of it: keep a
    // copy of exactly these bytes.
    let own = bytes;
    if (bytes.byteOffset !== 0 || bytes.buffer.byteLength !== bytes.byteLength) {
      own = Buffer.allocUnsafeSlow(bytes.byteLength);
      bytes.copy(own);
    }
    this.#map.set(digest, { bytes: own, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
    this.#bytes += own.byteLength + ENTRY_OVERHEAD;
    for (const [d, e] of this.#map) {
      if (this.#bytes <= this.maxBytes) break;
      this.#drop(d, e);
    }
  }

  /** Forgets a blob (its file failed a check, or was quarantined). */
  forget(digest: Digest): void {
    const e = this.#map.get(digest);
    if (e) this.#drop(digest, e);
  }

  /** Bytes held now (with each entry's overhead). */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#map.size;
  }

  #drop(digest: Digest, e: Entry): void {
    this.#map.delete(digest);
    this.#bytes -= e.bytes.byteLength + ENTRY_OVERHEAD;
  }
}
