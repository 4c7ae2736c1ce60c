// A Fill copies one blob from the shared tier into the disk tier while any
// number of clients read it as it arrives. There is exactly one upstream read
// per fill: its bytes go to a temp file in the disk tier's tmp/ directory and
// every reader follows that growing file at its own pace with positional
// reads (pread on one shared descriptor), so a slow client never slows the
// fill and nothing is buffered per client beyond one chunk in flight.
// (Consequence: the fill runs at the shared tier's and the disk's speed; a
// slow client reads from the page cache / disk behind it.)
//
// The fill hashes as it writes. When the upstream ends it checks size and
// digest, fsyncs and publishes the temp file into the disk tier with link(2)
// (create-if-absent, as FsBlobStore does). A reader whose range ends at the
// end of the blob gets its last byte only after that verification, so a
// response that reaches its Content-Length always carries verified bytes; if the fill fails (upstream error,
// short body, digest mismatch) every reader is destroyed with the error, which
// aborts its HTTP response mid-stream: a client sees a truncated response,
// never wrong bytes presented as complete.

import { EventEmitter } from 'node:events';
import { type FileHandle, link, mkdir, open, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher } from '../core/digest.ts';
import { BlobNotFoundError, DigestMismatchError, HoardError, toHoardError } from '../core/errors.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { fsyncDir, isErrno, tempName } from '../store/fs-atomic.ts';
import type { FsBlobStore } from '../store/fs-blob-store.ts';

export type FillState = 'starting' | 'running' | 'done' | 'failed';

export class Fill extends EventEmitter {
  readonly digest: Digest;
  state: FillState = 'starting';
  size = -1;
  /** Bytes written to the temp file so far (readable by followers). */
  written = 0;
  /** Bytes reserved in the disk bound for this fill (released by the owner when it settles). */
  reserved = 0;
  error: Error | undefined;
  /** The verified temp file became the disk tier's copy (false when a copy was already there: not ours, not verified by us). */
  published = false;
  readonly startedAt = performance.now();
  /** Resolves with the size once known; rejects if the blob is absent or the stat fails. */
  readonly ready: Promise<number>;
  /** Settles when the fill is published (or failed). Never rejects: check `state`. */
  readonly settled: Promise<void>;
  #fh: FileHandle | undefined;
  #refs = 1; // the fill itself holds a reference until it settles
  #resolveReady!: (n: number) => void;
  #rejectReady!: (e: Error) => void;

  constructor(
    digest: Digest,
    shared: BlobStore,
    disk: FsBlobStore,
    knownSize?: number,
    reserve?: (bytes: number) => Promise<void>,
  ) {
    super();
    this.setMaxListeners(0);
    this.digest = digest;
    this.ready = new Promise<number>((res, rej) => {
      this.#resolveReady = res;
      this.#rejectReady = rej;
    });
    this.ready.catch(() => {});
    this.settled = this.#run(shared, disk, knownSize, reserve).then(
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
    shared: BlobStore,
    disk: FsBlobStore,
    knownSize: number | undefined,
    reserve: ((bytes: number) => Promise<void>) | undefined,
  ): Promise<void> {
    let size = knownSize;
    if (size === undefined) {
      const info = await shared.stat(this.digest);
      if (!info) throw new BlobNotFoundError(this.digest);
      size = info.size;
    }
    this.size = size;
    if (reserve) {
      await reserve(size);
      this.reserved = size;
    }
    const tmp = join(disk.tmpDir, tempName());
    this.#fh = await open(tmp, 'wx+');
    this.state = 'running';
    this.#resolveReady(size);
    try {
      const src = await shared.read(this.digest);
      const hasher = new Hasher();
      try {
        for await (const chunk of src as AsyncIterable<Buffer>) {
          if (this.written + chunk.byteLength > size)
            throw new HoardError(
              'HOARD_EREMOTE',
              `shared tier sent more than the ${size} bytes of ${this.digest}`,
            );
          let off = 0;
          while (off < chunk.byteLength) {
            const { bytesWritten } = await this.#fh.write(
              chunk,
              off,
              chunk.byteLength - off,
              this.written + off,
            );
            off += bytesWritten;
          }
          hasher.update(chunk);
          this.written += chunk.byteLength;
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
      const actual = hasher.digest();
      if (actual !== this.digest) throw new DigestMismatchError(this.digest, actual);
      await this.#fh.sync();
      const final = disk.pathOf(this.digest);
      await mkdir(dirname(final), { recursive: true });
      try {
        await link(tmp, final);
        await fsyncDir(dirname(final));
        this.published = true;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
    } finally {
      await unlink(tmp).catch(() => {});
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
      const fh = this.#fh;
      this.#fh = undefined;
      fh?.close().catch(() => {});
    }
  }

  /** Reads up to `length` bytes at `position` of what is already written. */
  async readAt(buf: Buffer, length: number, position: number): Promise<number> {
    if (!this.#fh) throw new HoardError('HOARD_EINTERNAL', 'fill file is closed');
    const { bytesRead } = await this.#fh.read(buf, 0, length, position);
    return bytesRead;
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
