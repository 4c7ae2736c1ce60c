// Serving a disk-tier blob from an open descriptor, chunk by chunk, with
// positional reads (backpressure: a slow client pins about two chunks, never
// the blob). When it must verify, it hashes while it streams and holds the
// last chunk back until the digest matches, so a client that receives the
// whole Content-Length received verified bytes; on a mismatch the stream is
// destroyed instead, which cuts the HTTP response off mid-body.
//
// Buffers: read as a plain Readable, every chunk is a fresh buffer (the
// consumer may keep it). But a fresh buffer per chunk is what made large
// disk reads slow: at hundreds of MiB/s the allocations are external memory
// that drives V8 into a full mark-compact every few dozen MiB (measured: ~30 %
// of a core in major GC while serving 8 MiB blobs). So when the stream is
// piped straight into an HTTP response (what the routes do: reply.send
// pipes it), it writes to the response itself with two reused buffers: a
// buffer is read into again only after the write callback of its previous
// chunk, which an http.ServerResponse calls once those bytes are in the
// kernel (the socket no longer points at them). Only an http.ServerResponse
// gets that: a Transform or PassThrough may call back while it still holds
// the chunk, and would then see it overwritten. Buffers of finished streams
// go back to a small shared free list, so a busy server allocates none.
// Chunks are read with synchronous calls while the guard allows (the
// server's local disk, sync-read-guard.ts), else through the thread pool.

import type { FileHandle } from 'node:fs/promises';
import { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { type Digest, Hasher } from '../core/digest.ts';
import { DigestMismatchError, HoardError } from '../core/errors.ts';
import { readFully, readFullySync } from './disk-verify.ts';
import type { SyncReadGuard } from './sync-read-guard.ts';

export interface DiskStreamOptions {
  fh: FileHandle;
  start: number;
  end: number;
  chunkBytes: number;
  /**
   * Hash while streaming (requires start 0 and end = size) and check the
   * digest before the last chunk goes out. `mismatch` runs (quarantine,
   * metrics) before the stream fails; `verified` runs before the last chunk.
   */
  verify?: {
    digest: Digest;
    verified(): void;
    mismatch(actual: Digest): Promise<void>;
  };
  /** Read into this buffer (a memory-tier copy being gathered; its subarrays are what is sent). */
  into?: Buffer;
  /** Read chunks with synchronous calls while this guard allows (a local, page-cached disk). */
  sync?: SyncReadGuard;
  /** Runs once when the stream is done: `complete` tells whether every byte was read (and verified). */
  done(complete: boolean): void;
}

export function diskStream(o: DiskStreamOptions): Readable {
  return new DiskStream(o);
}

/** Free chunk buffers of finished piped streams, by size; at most FREE_BUFFERS_MAX bytes kept. */
const freeBuffers = new Map<number, Buffer[]>();
let freeBytes = 0;
const FREE_BUFFERS_MAX = 4 * 1024 * 1024;
/** A pump gives the event loop to other work at least every this many chunks. */
const YIELD_EVERY_CHUNKS = 8;

function takeBuffer(size: number): Buffer {
  const buf = freeBuffers.get(size)?.pop();
  if (buf) {
    freeBytes -= size;
    return buf;
  }
  return Buffer.allocUnsafe(size);
}

function giveBuffer(buf: Buffer): void {
  if (freeBytes + buf.byteLength > FREE_BUFFERS_MAX) return;
  let list = freeBuffers.get(buf.byteLength);
  if (!list) freeBuffers.set(buf.byteLength, (list = []));
  list.push(buf);
  freeBytes += buf.byteLength;
}

/** Buffers held by the free list (tests). */
export function freeServeBuffers(): number {
  return freeBytes;
}

class DiskStream extends Readable {
  readonly #o: DiskStreamOptions;
  readonly #hasher: Hasher | undefined;
  #pos: number;
  #complete = false;
  /** Pumping into a response itself (pipe), not through push. */
  #pumping = false;

  constructor(o: DiskStreamOptions) {
    super({ highWaterMark: o.chunkBytes });
    this.#o = o;
    this.#pos = o.start;
    this.#hasher = o.verify ? new Hasher() : undefined;
    // On 'close', not after the last read: a stream destroyed before its
    // first read must still release its descriptor and memory reservation.
    // (FileHandle.close waits for a read still in flight.)
    this.once('close', () => o.done(this.#complete));
  }

  /**
   * Reads the next chunk into `buf` (a reused buffer) or a fresh one, hashes
   * it and, for the last chunk, checks the digest; null past the end.
   */
  async #next(buf?: Buffer): Promise<Buffer | null> {
    const o = this.#o;
    const pos = this.#pos;
    if (pos >= o.end) {
      this.#complete = true;
      return null;
    }
    const n = Math.min(o.chunkBytes, o.end - pos);
    const chunk = o.into ? o.into.subarray(pos, pos + n) : buf ? buf.subarray(0, n) : Buffer.allocUnsafe(n);
    // The descriptor is closed only after 'close' (done): a stream not destroyed still owns it.
    if (this.destroyed) throw new HoardError('HOARD_EINTERNAL', 'read from a destroyed disk stream');
    const sync = o.sync;
    const got =
      sync && !sync.paused
        ? sync.run(() => readFullySync(o.fh.fd, chunk, n, pos))
        : await readFully(o.fh, chunk, n, pos);
    if (got < n)
      throw new HoardError(
        'HOARD_ETRUNCATED',
        `disk file of ${o.verify?.digest ?? 'a blob'} ended at ${pos + got} of ${o.end} bytes`,
      );
    this.#pos = pos + n;
    if (this.#hasher && o.verify) {
      this.#hasher.update(chunk);
      if (this.#pos === o.end) {
        // The last chunk: it goes out only if the whole blob verifies.
        const actual = this.#hasher.digest();
        if (actual !== o.verify.digest) {
          await o.verify.mismatch(actual);
          throw new DigestMismatchError(o.verify.digest, actual, {
            hint: 'the server found its disk copy corrupt and quarantined it; retry the read',
          });
        }
        o.verify.verified();
      }
    }
    if (this.#pos === o.end) this.#complete = true;
    return chunk;
  }

  override _read(): void {
    this.#next().then(
      (chunk) => this.push(chunk),
      (err: Error) => this.destroy(err),
    );
  }

  override pipe<T extends NodeJS.WritableStream>(dest: T, opts?: { end?: boolean }): T {
    // Only a response that nothing has read from yet: anything else gets the plain Readable.
    if (!(dest instanceof ServerResponse) || this.#pumping || this.readableFlowing !== null || this.destroyed)
      return super.pipe(dest, opts);
    this.#pumping = true;
    dest.emit('pipe', this);
    this.#pump(dest, opts?.end !== false).catch((err: Error) => this.destroy(err));
    return dest;
  }

  /** Two buffers in turn: one being read into while the other's chunk is being written. */
  async #pump(res: ServerResponse, end: boolean): Promise<void> {
    let gone = false;
    const stop = () => {
      gone = true;
      wake?.();
    };
    let wake: (() => void) | undefined;
    res.once('close', stop);
    res.once('error', stop);
    this.once('close', stop);
    // A buffer goes back to the free list once no write points at it: at the
    // end, or from its write's callback when that comes after the end.
    let finished = false;
    const slots: { buf: Buffer | undefined; writing: Promise<void> | undefined; busy: boolean }[] = [
      { buf: undefined, writing: undefined, busy: false },
      { buf: undefined, writing: undefined, busy: false },
    ];
    const release = (slot: (typeof slots)[number]) => {
      if (slot.buf && !slot.busy) giveBuffer(slot.buf);
      slot.buf = undefined;
    };
    try {
      for (let i = 0; ; i++) {
        // Synchronous reads into writes the socket takes at once never wait on I/O:
        // let the other connections have the loop every few chunks.
        if (i % YIELD_EVERY_CHUNKS === YIELD_EVERY_CHUNKS - 1) await new Promise((r) => setImmediate(r));
        const slot = slots[i & 1];
        if (slot.writing) {
          // Wait until the socket is done with this buffer (or the response is gone).
          await Promise.race([slot.writing, new Promise<void>((r) => (wake = r))]);
          wake = undefined;
        }
        // Gone, or a write failed (the response is broken; that buffer may still be referenced).
        if (gone || this.destroyed || slot.busy) return;
        if (!this.#o.into && !slot.buf) slot.buf = takeBuffer(this.#o.chunkBytes);
        const chunk = await this.#next(slot.buf);
        if (gone || this.destroyed) return;
        if (chunk === null) break;
        slot.busy = true;
        slot.writing = new Promise<void>((resolve) => {
          res.write(chunk, (err) => {
            // A failed write may have left the bytes anywhere: that buffer is not shared again.
            if (!err) slot.busy = false;
            if (finished && !err) release(slot);
            resolve();
          });
        });
      }
      if (end) res.end();
      // Ends the Readable side too, so whoever watches it (fastify, pipeline) sees a clean end.
      this.push(null);
      this.resume();
    } finally {
      finished = true;
      // The response went away mid-body: the rest can never be sent, so this stream is over too.
      if (gone && !this.destroyed) this.destroy();
      res.off('close', stop);
      res.off('error', stop);
      this.off('close', stop);
      for (const s of slots) if (!s.busy) release(s);
    }
  }
}
