// A Fill copies one blob from the shared tier into the disk tier while any
// number of clients read it as it arrives. There is exactly one upstream read
// per fill: its bytes go to a temp file in the disk tier's tmp/ directory and
// every reader follows that growing file at its own pace with positional
// reads (pread on one shared descriptor), so a slow client never slows the
// fill and nothing is buffered per client beyond one chunk in flight.
// (Consequence: the fill runs at the shared tier's and the disk's speed; a
// slow client reads from the page cache / disk behind it.)
//
// The bytes go through the disk tier's positional writer
// (LocalBlobFiles.createWriter): it hashes as it writes and, when the
// upstream ends, checks size and digest, fsyncs and publishes with the
// store's own create-if-absent step; followers read what it wrote so far. A reader whose range ends at the
// end of the blob gets its last byte only after that verification, so a
// response that reaches its Content-Length always carries verified bytes; if the fill fails (upstream error,
// short body, digest mismatch) every reader is destroyed with the error, which
// aborts its HTTP response mid-stream: a client sees a truncated response,
// never wrong bytes presented as complete.

import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { BlobNotFoundError, HoardError, toHoardError } from '../core/errors.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { BlobFileWriter, LocalBlobFiles } from '../store/local-blob-files.ts';

export type FillState = 'starting' | 'running' | 'done' | 'failed';

export class Fill extends EventEmitter {
  readonly digest: Digest;
  state: FillState = 'starting';
  size = -1;
  /** Bytes written to the temp file so far (readable by followers). */
  written = 0;
  error: Error | undefined;
  /** The verified temp file became the disk tier's copy (false when a copy was already there: not ours, not verified by us). */
  published = false;
  readonly startedAt = performance.now();
  /** Resolves with the size once known; rejects if the blob is absent or the stat fails. */
  readonly ready: Promise<number>;
  /** Settles when the fill is published (or failed). Never rejects: check `state`. */
  readonly settled: Promise<void>;
  #writer: BlobFileWriter | undefined;
  #refs = 1; // the fill itself holds a reference until it settles
  #resolveReady!: (n: number) => void;
  #rejectReady!: (e: Error) => void;

  /**
   * `shared` is any source of the blob's bytes and `disk` any positional
   * writer (the npm feature fills from an upstream registry into a writer
   * that verifies the package's integrity): only these methods are used.
   */
  constructor(
    digest: Digest,
    shared: Pick<BlobStore, 'stat' | 'read'>,
    disk: Pick<LocalBlobFiles, 'createWriter'>,
    knownSize?: number,
  ) {
    super();
    this.setMaxListeners(0);
    this.digest = digest;
    this.ready = new Promise<number>((res, rej) => {
      this.#resolveReady = res;
      this.#rejectReady = rej;
    });
    this.ready.catch(() => {});
    this.settled = this.#run(shared, disk, knownSize).then(
      () => {
        this.state = 'done';
        this.#notify();
      },
      (err) => {
        this.error = toHoardError(err, 'HOARD_EREMOTE', `filling ${digest} from the shared tier`);
        this.state = 'failed';
        this.#rejectReady(this.error);
        this.#notify();
      },
    );
    this.settled.finally(() => this.release());
  }

  async #run(
    shared: Pick<BlobStore, 'stat' | 'read'>,
    disk: Pick<LocalBlobFiles, 'createWriter'>,
    knownSize: number | undefined,
  ): Promise<void> {
    let size = knownSize;
    if (size === undefined) {
      const info = await shared.stat(this.digest);
      if (!info) throw new BlobNotFoundError(this.digest);
      size = info.size;
    }
    this.size = size;
    // A bounded disk reserves room here (and may evict, or refuse with 507).
    const writer = await disk.createWriter(this.digest, size);
    this.#writer = writer;
    this.state = 'running';
    this.#resolveReady(size);
    try {
      const src = await shared.read(this.digest);
      try {
        for await (const chunk of src as AsyncIterable<Buffer>) {
          if (this.written + chunk.byteLength > size)
            throw new HoardError(
              'HOARD_EREMOTE',
              `shared tier sent more than the ${size} bytes of ${this.digest}`,
            );
          await writer.write(chunk);
          this.written = writer.bytesWritten;
          this.#notify();
        }
      } finally {
        if (!src.destroyed) src.destroy();
      }
      if (this.written !== size)
        throw new HoardError(
          'HOARD_ETRUNCATED',
          `shared tier sent ${this.written} of ${size} bytes of ${this.digest}`,
        );
      // Verifies the digest, fsyncs and links: false when a copy was already there.
      this.published = (await writer.commit()).created;
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  #notify(): void {
    this.emit('progress');
  }

  /** Waits until more bytes are written or the fill settles. */
  waitProgress(): Promise<void> {
    if (this.state === 'done' || this.state === 'failed') return Promise.resolve();
    return new Promise((res) => this.once('progress', res));
  }

  retain(): void {
    this.#refs++;
  }

  release(): void {
    if (--this.#refs === 0) {
      const writer = this.#writer;
      this.#writer = undefined;
      writer?.close().catch(() => {});
    }
  }

  /** Reads up to `length` bytes at `position` of what is already written. */
  async readAt(buf: Buffer, length: number, position: number): Promise<number> {
    if (!this.#writer) throw new HoardError('HOARD_EINTERNAL', 'fill file is closed');
    return this.#writer.readAt(buf, length, position);
  }

  /**
   * A stream of bytes [start, end) that follows the fill as it progresses.
   * It ends only once its bytes are written, and, if it runs to the end of
   * the blob, only once the whole blob is verified.
   */
  reader(start: number, end: number): Readable {
    return new FillReader(this, start, end);
  }
}

class FillReader extends Readable {
  #fill: Fill;
  #pos: number;
  #end: number;
  #busy = false;
  #released = false;

  constructor(fill: Fill, start: number, end: number) {
    super({ highWaterMark: DEFAULTS.streamChunkBytes });
    this.#fill = fill;
    this.#pos = start;
    this.#end = end;
    fill.retain();
  }

  override _read(): void {
    if (this.#busy) return;
    this.#busy = true;
    this.#pump().then(
      () => {
        this.#busy = false;
      },
      (err) => {
        this.#busy = false;
        this.destroy(err);
      },
    );
  }

  async #pump(): Promise<void> {
    const fill = this.#fill;
    for (;;) {
      if (this.destroyed) return;
      if (fill.state === 'failed') throw fill.error;
      if (this.#pos >= this.#end) {
        // A reader reaching the end of the blob waits for verification.
        if (this.#end < fill.size || fill.state === 'done') {
          this.#releaseOnce();
          this.push(null);
          return;
        }
        await fill.waitProgress();
        continue;
      }
      // The last byte of the blob is held back until the fill is verified, so
      // a client never receives a complete-looking response with wrong bytes.
      const limit = this.#end === fill.size && fill.state !== 'done' ? this.#end - 1 : this.#end;
      const avail = Math.min(fill.written, limit) - this.#pos;
      if (avail <= 0) {
        await fill.waitProgress();
        continue;
      }
      const n = Math.min(avail, DEFAULTS.streamChunkBytes);
      const buf = Buffer.allocUnsafe(n);
      const got = await fill.readAt(buf, n, this.#pos);
      if (got <= 0) throw new HoardError('HOARD_EINTERNAL', 'fill file shorter than written');
      this.#pos += got;
      if (!this.push(got === n ? buf : buf.subarray(0, got))) return;
    }
  }

  #releaseOnce(): void {
    if (!this.#released) {
      this.#released = true;
      this.#fill.release();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#releaseOnce();
    cb(err);
  }
}
