// Memory BlobStore: the top tier of the server and a backend for tests. LRU
// bounded by bytes: a Map keeps insertion order, and a read re-inserts the
// entry, so the first key is always the least recently used.
//
// The bound covers bytes being gathered too: a server read that wants to
// keep a blob reserves its size first (reserve), reads into one buffer, and
// hands it over with put(…, { reserved: true }). Resident + reserved bytes
// never exceed maxBytes, so N concurrent readers of N distinct blobs cost the
// tier at most maxBytes, however large N is; a read that gets no reservation
// streams without keeping a copy.

import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError } from '../core/errors.ts';
import { drain } from '../core/streams.ts';
import type { ReservingBlobCache } from './blob-cache.ts';
import type { BlobInfo, BlobStore, ByteRange, ByteSource, WriteOptions, WriteResult } from './blob-store.ts';
import { resolveRange } from './blob-store.ts';
import { largestOf, type TierUsage, type UsageReporting } from './tier-usage.ts';

export interface MemoryBlobStoreOptions {
  maxBytes?: number;
  /** Larger blobs are verified but not kept (would evict the whole tier). */
  maxBlobBytes?: number;
}

export class MemoryBlobStore implements BlobStore, ReservingBlobCache, UsageReporting {
  readonly description = 'memory';
  readonly maxBytes: number;
  readonly maxBlobBytes: number;
  #blobs = new Map<Digest, Buffer>();
  #bytes = 0;
  #reserved = 0;
  evictions = 0;

  constructor(opts: MemoryBlobStoreOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULTS.memoryTierBytes;
    this.maxBlobBytes = Math.min(opts.maxBlobBytes ?? this.maxBytes, this.maxBytes);
  }

  /** Bytes of resident blobs. */
  get bytes(): number {
    return this.#bytes;
  }

  usage(): TierUsage {
    return {
      bytes: this.#bytes,
      blobs: this.#blobs.size,
      maxBytes: this.maxBytes,
      evictions: this.evictions,
    };
  }

  largest(n: number): { digest: Digest; size: number }[] {
    const blobs = this.#blobs;
    return largestOf(
      (function* () {
        for (const [digest, buf] of blobs) yield { digest, size: buf.byteLength };
      })(),
      n,
    );
  }

  /** Bytes reserved by reads that are gathering a blob to keep. */
  get reservedBytes(): number {
    return this.#reserved;
  }

  /**
   * Reserves room for a blob of `size` bytes about to be gathered, evicting
   * least recently used blobs as needed. False when it cannot fit beside the
   * other reservations (the caller then streams without keeping a copy).
   */
  reserve(size: number): boolean {
    if (size > this.maxBlobBytes || this.#reserved + size > this.maxBytes) return false;
    this.#reserved += size;
    this.#evict();
    return true;
  }

  /** Ends a reservation that will not be put (the read failed or was cut short). */
  unreserve(size: number): void {
    this.#reserved = Math.max(0, this.#reserved - size);
  }

  #evict(): void {
    for (const [key, old] of this.#blobs) {
      if (this.#bytes + this.#reserved <= this.maxBytes) break;
      this.#blobs.delete(key);
      this.#bytes -= old.byteLength;
      this.evictions++;
    }
  }

  #touch(digest: Digest): Buffer | undefined {
    const buf = this.#blobs.get(digest);
    if (buf) {
      this.#blobs.delete(digest);
      this.#blobs.set(digest, buf);
    }
    return buf;
  }

  bytesOf(digest: Digest): Buffer | undefined {
    return this.#touch(digest);
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    const buf = this.#blobs.get(digest);
    return buf ? { digest, size: buf.byteLength } : undefined;
  }

  async has(digest: Digest): Promise<boolean> {
    return this.#blobs.has(digest);
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    const buf = this.#touch(digest);
    if (!buf) throw new BlobNotFoundError(digest);
    const { start, end } = resolveRange(range, buf.byteLength);
    return Readable.from(end > start ? [buf.subarray(start, end)] : []);
  }

  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const existing = this.#blobs.get(digest);
    if (existing) {
      await drain(source);
      return { created: false, size: existing.byteLength };
    }
    const verify = new VerifyingStream(digest, opts.size);
    const chunks: Buffer[] = [];
    let size = 0;
    let keep = true;
    await pipeline(source, verify, async (verified: AsyncIterable<Buffer>) => {
      for await (const chunk of verified) {
        size += chunk.byteLength;
        if (size > this.maxBlobBytes) {
          keep = false;
          chunks.length = 0;
        }
        if (keep) chunks.push(chunk);
      }
    });
    if (keep) this.put(digest, Buffer.concat(chunks, size));
    return { created: keep, size };
  }

  /**
   * Inserts verified bytes (only ever bytes already hashed against `digest`).
   * With `reserved`, the reservation of the same size made by reserve() ends
   * here, whether or not the blob is kept.
   */
  put(digest: Digest, buf: Buffer, opts: { reserved?: boolean } = {}): void {
    if (opts.reserved) this.unreserve(buf.byteLength);
    if (buf.byteLength > this.maxBlobBytes || this.#blobs.has(digest)) return;
    this.#blobs.set(digest, buf);
    this.#bytes += buf.byteLength;
    this.#evict();
  }

  async delete(digest: Digest): Promise<boolean> {
    const buf = this.#blobs.get(digest);
    if (!buf) return false;
    this.#blobs.delete(digest);
    this.#bytes -= buf.byteLength;
    return true;
  }

  async *list(opts: { after?: Digest } = {}): AsyncIterable<BlobInfo> {
    // The tier is bounded (maxBytes), so sorting its keys per listing is cheap; a Map keeps LRU order, not digest order.
    const { after } = opts;
    const keys = [...this.#blobs.keys()].filter((d) => after === undefined || d > after).sort();
    for (const digest of keys) {
      const buf = this.#blobs.get(digest);
      if (buf) yield { digest, size: buf.byteLength };
    }
  }

  async missing(digests: readonly Digest[]): Promise<Digest[]> {
    return [...new Set(digests)].filter((d) => !this.#blobs.has(d));
  }
}
