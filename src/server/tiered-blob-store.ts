// The server's blob store: memory (LRU) → disk (FsBlobStore) → optional
// shared remote, which is authoritative when present.
//
// Reads: the first tier holding the blob serves it. A disk hit of a small blob
// fills memory. A miss of both upper tiers starts (or joins) the one Fill of
// that blob (fill.ts): a single upstream read teed into the disk tier's temp
// file, which every waiting client follows as it grows — 100 concurrent GETs
// of a cold blob are one read of the shared tier, and each client gets bytes
// as they arrive. A failed fill reaches every reader and is forgotten, so the
// next request starts a fresh one.
//
// Ranged cold reads: a range is passed down to the shared tier (a ranged
// read, streamed straight through) unless a fill of the blob is already in
// progress and has reached, or will soon reach, the range's start
// (fillFollowWindowBytes), in which case the range follows the fill. A
// ranged cold read also starts a background fill (fillOnRangeRead), so the
// next reader is warm; parallel range downloads of a big snapshot therefore
// cost the shared tier at most one whole read plus the ranges that ran ahead
// of it, and never make a small range wait for the whole blob.
//
// Writes: verified into the disk tier first (a temp file, hashed while it
// streams), then copied to the shared tier before the write returns, so a
// PUT is acknowledged only once the authoritative tier has the blob.

import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, VerifyingStream } from '../core/digest.ts';
import { BlobNotFoundError, HoardError } from '../core/errors.ts';
import { SingleFlight } from '../core/single-flight.ts';
import { drain } from '../core/streams.ts';
import {
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type ByteSource,
  resolveRange,
  type WriteOptions,
  type WriteResult,
} from '../store/blob-store.ts';
import { isErrno } from '../store/fs-atomic.ts';
import type { FsBlobStore } from '../store/fs-blob-store.ts';
import type { MemoryBlobStore } from '../store/memory-blob-store.ts';
import { Fill } from './fill.ts';

export type TierName = 'memory' | 'disk' | 'shared';

/** Disk blobs up to this size are read in one call and sent as a buffer, not streamed. */
const SMALL_READ_BYTES = 64 * 1024;

/** Observers for metrics and the disk index (all optional). */
export interface TierHooks {
  hit?(tier: TierName): void;
  miss?(tier: TierName): void;
  /** A reader joined a fill already in flight. */
  coalesced?(): void;
  fillDone?(seconds: number, ok: boolean): void;
  /** A blob of the disk tier was used (read) or added. */
  diskTouched?(digest: Digest, size: number): void;
  /** A blob was served from memory (keeps its disk copy warm in the disk LRU). */
  memoryHit?(digest: Digest): void;
  /** Called before `bytes` are written to the disk tier; may evict, or throw 507. */
  reserve?(bytes: number): Promise<void>;
  /** Ends a reservation made by `reserve` (after the write succeeded or failed). */
  unreserve?(bytes: number): void;
  diskAdded?(digest: Digest, size: number): void;
  diskRemoved?(digest: Digest): void;
}

/** An opened blob: its size and a way to stream any range of it. */
export interface BlobHandle {
  readonly size: number;
  readonly tier: TierName;
  stream(start: number, end: number): Readable;
  /** For blobs held in memory: the bytes themselves (cheaper to send than a stream). */
  bytes?(start: number, end: number): Buffer;
  /** Releases resources when no stream was taken (HEAD, 304, 416). */
  close(): void;
}

export interface TieredOptions {
  memory: MemoryBlobStore;
  disk: FsBlobStore;
  shared?: BlobStore;
  hooks?: TierHooks;
  fillOnRangeRead?: boolean;
  fillFollowWindowBytes?: number;
}

export class TieredBlobStore implements BlobStore {
  readonly description: string;
  readonly memory: MemoryBlobStore;
  readonly disk: FsBlobStore;
  readonly shared: BlobStore | undefined;
  readonly hooks: TierHooks;
  #fills = new Map<Digest, Fill>();
  #stats = new SingleFlight<Digest, BlobInfo | undefined>();
  #fillOnRange: boolean;
  #followWindow: number;
  /** Fills started (one upstream read each), for tests and metrics. */
  fillsStarted = 0;

  constructor(opts: TieredOptions) {
    this.memory = opts.memory;
    this.disk = opts.disk;
    this.shared = opts.shared;
    this.hooks = opts.hooks ?? {};
    this.#fillOnRange = opts.fillOnRangeRead ?? DEFAULTS.fillOnRangeRead;
    this.#followWindow = opts.fillFollowWindowBytes ?? DEFAULTS.fillFollowWindowBytes;
    this.description = `tiers(memory, ${this.disk.description}${this.shared ? `, ${this.shared.description}` : ''})`;
  }

  /** The authoritative store: the shared tier when there is one, else the disk. */
  get authority(): BlobStore {
    return this.shared ?? this.disk;
  }

  get fillsInFlight(): number {
    return this.#fills.size;
  }

  // ---- reads ------------------------------------------------------------

  /**
   * Opens a blob for reading from the highest tier that has it, or undefined.
   * `ranged` tells a cold read that only part of the blob is wanted.
   */
  async open(digest: Digest, opts: { ranged?: boolean } = {}): Promise<BlobHandle | undefined> {
    const buf = await memoryBuffer(this.memory, digest);
    if (buf) {
      this.hooks.hit?.('memory');
      this.hooks.memoryHit?.(digest);
      return bufferHandle(buf, 'memory');
    }
    this.hooks.miss?.('memory');
    const disk = await this.#openDisk(digest);
    if (disk) {
      this.hooks.hit?.('disk');
      return disk;
    }
    this.hooks.miss?.('disk');
    if (!this.shared) return undefined;
    return this.#openShared(digest, this.shared, opts.ranged ?? false);
  }

  async #openDisk(digest: Digest): Promise<BlobHandle | undefined> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(this.disk.pathOf(digest), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    let size: number;
    try {
      size = (await fh.stat()).size;
    } catch (err) {
      await fh.close();
      throw err;
    }
    this.hooks.diskTouched?.(digest, size);
    const keep = size <= this.memory.maxBlobBytes;
    if (keep || size <= SMALL_READ_BYTES) {
      // Small: promote into memory and serve from there.
      try {
        const buf = Buffer.allocUnsafe(size);
        let off = 0;
        while (off < size) {
          const { bytesRead } = await fh.read(buf, off, size - off, off);
          if (bytesRead === 0) break;
          off += bytesRead;
        }
        if (off === size) {
          if (keep) this.memory.put(digest, buf);
          return bufferHandle(buf, 'disk');
        }
      } finally {
        await fh.close();
      }
      return this.#openDisk(digest);
    }
    let taken = false;
    return {
      size,
      tier: 'disk',
      stream(start, end) {
        taken = true;
        if (end <= start) {
          fh.close().catch(() => {});
          return Readable.from([]);
        }
        return fh.createReadStream({ start, end: end - 1, highWaterMark: DEFAULTS.streamChunkBytes });
      },
      close() {
        if (!taken) fh.close().catch(() => {});
      },
    };
  }

  async #openShared(digest: Digest, shared: BlobStore, ranged: boolean): Promise<BlobHandle | undefined> {
    let fill = this.#fills.get(digest);
    if (fill) this.hooks.coalesced?.();
    else if (!ranged) fill = this.#startFill(digest, shared);
    if (fill) {
      try {
        const size = await fill.ready;
        this.hooks.hit?.('shared');
        return this.#fillHandle(digest, shared, fill, size);
      } catch (err) {
        if (err instanceof BlobNotFoundError) {
          this.hooks.miss?.('shared');
          return undefined;
        }
        throw err;
      }
    }
    // Ranged and no fill in flight: learn the size (one stat per key at a time).
    const info = await this.#stats.do(digest, () => shared.stat(digest));
    if (!info) {
      this.hooks.miss?.('shared');
      return undefined;
    }
    this.hooks.hit?.('shared');
    return this.#fillHandle(digest, shared, undefined, info.size);
  }

  #startFill(digest: Digest, shared: BlobStore, knownSize?: number): Fill {
    const fill = new Fill(digest, shared, this.disk, knownSize, this.hooks.reserve);
    this.fillsStarted++;
    this.#fills.set(digest, fill);
    fill.settled.then(() => {
      // Forget the fill first, so a request after a failure starts afresh.
      if (this.#fills.get(digest) === fill) this.#fills.delete(digest);
      this.hooks.fillDone?.((performance.now() - fill.startedAt) / 1000, fill.state === 'done');
      if (fill.state === 'done') this.hooks.diskAdded?.(digest, fill.size);
      if (fill.reserved) this.hooks.unreserve?.(fill.reserved);
    });
    return fill;
  }

  #fillHandle(digest: Digest, shared: BlobStore, fill: Fill | undefined, size: number): BlobHandle {
    return {
      size,
      tier: 'shared',
      stream: (start, end) => {
        if (end <= start) return Readable.from([]);
        let f = fill ?? this.#fills.get(digest);
        if (f && f.state !== 'failed' && start <= f.written + this.#followWindow) return f.reader(start, end);
        // Pass the range down to the shared tier, and warm the disk tier in the background.
        if (!f && this.#fillOnRange) f = this.#startFill(digest, shared, size);
        return passDown(shared, digest, start, end);
      },
      close() {},
    };
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    const mem = await this.memory.stat(digest);
    if (mem) return mem;
    const disk = await this.disk.stat(digest);
    if (disk) return disk;
    const fill = this.#fills.get(digest);
    if (fill && fill.size >= 0) return { digest, size: fill.size };
    if (!this.shared) return undefined;
    const shared = this.shared;
    return this.#stats.do(digest, () => shared.stat(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  /** Whether the authoritative tier has the blob (what refs and PUT decide on). */
  async hasAuthoritative(digest: Digest): Promise<boolean> {
    if (!this.shared) return this.disk.has(digest);
    return this.shared.has(digest);
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    const h = await this.open(digest, { ranged: range !== undefined });
    if (!h) throw new BlobNotFoundError(digest);
    let start: number;
    let end: number;
    try {
      ({ start, end } = resolveRange(range, h.size));
    } catch (err) {
      h.close();
      throw err;
    }
    return h.stream(start, end);
  }

  // ---- writes -----------------------------------------------------------

  /**
   * Verified create-if-absent write through every tier: disk (verified temp
   * file), then the shared tier before returning. `created` reports whether
   * the authoritative tier did not have the blob.
   */
  async write(digest: Digest, source: ByteSource, opts: WriteOptions = {}): Promise<WriteResult> {
    const existing = await this.#authoritativeStat(digest);
    if (existing) {
      // Still verify what was sent, so a wrong body is refused even for a known digest.
      await verifyDrain(digest, source, opts.size ?? existing.size, opts.signal);
      return { created: false, size: existing.size };
    }
    let size: number;
    const cached = await this.disk.stat(digest);
    if (cached) {
      // Cached but not in the shared tier (a write-through that failed earlier): verify, then push up.
      size = cached.size;
      await verifyDrain(digest, source, opts.size ?? size, opts.signal);
    } else {
      const reserved = opts.size ?? 0;
      await this.hooks.reserve?.(reserved);
      try {
        const res = await this.disk.write(digest, source, opts);
        size = res.size;
        if (res.created) this.hooks.diskAdded?.(digest, size);
      } finally {
        this.hooks.unreserve?.(reserved);
      }
    }
    if (!this.shared) return { created: true, size };
    const up = await this.shared.write(digest, await this.disk.read(digest), { size, signal: opts.signal });
    return { created: up.created, size };
  }

  async #authoritativeStat(digest: Digest): Promise<BlobInfo | undefined> {
    return this.shared ? this.shared.stat(digest) : this.disk.stat(digest);
  }

  async delete(digest: Digest): Promise<boolean> {
    const m = await this.memory.delete(digest);
    const d = await this.disk.delete(digest);
    if (d) this.hooks.diskRemoved?.(digest);
    const s = this.shared ? await this.shared.delete(digest) : false;
    return this.shared ? s : m || d;
  }

  list(signal?: AbortSignal): AsyncIterable<BlobInfo> {
    return this.authority.list(signal);
  }

  missing(digests: readonly Digest[], signal?: AbortSignal): Promise<Digest[]> {
    return this.authority.missing(digests, signal);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#fills.values()].map((f) => f.settled));
  }
}

/** The bytes of a memory-tier blob without copying (its read() yields the stored Buffer). */
async function memoryBuffer(memory: MemoryBlobStore, digest: Digest): Promise<Buffer | undefined> {
  if (!(await memory.has(digest))) return undefined;
  let stream: Readable;
  try {
    stream = await memory.read(digest);
  } catch (err) {
    if (err instanceof BlobNotFoundError) return undefined;
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

function bufferHandle(buf: Buffer, tier: TierName): BlobHandle {
  return {
    size: buf.byteLength,
    tier,
    stream: (start, end) => Readable.from(end > start ? [buf.subarray(start, end)] : []),
    bytes: (start, end) => buf.subarray(start, end),
    close() {},
  };
}

function passDown(shared: BlobStore, digest: Digest, start: number, end: number): Readable {
  // A lazily opened upstream ranged read, exposed as a plain Readable.
  return Readable.from(
    (async function* () {
      const src = await shared.read(digest, { offset: start, length: end - start });
      let got = 0;
      for await (const chunk of src as AsyncIterable<Buffer>) {
        got += chunk.byteLength;
        yield chunk;
      }
      if (got !== end - start)
        throw new HoardError(
          'HOARD_EREMOTE',
          `shared tier sent ${got} of ${end - start} bytes of a range of ${digest}`,
        );
    })(),
  );
}

async function verifyDrain(
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
