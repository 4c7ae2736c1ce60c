// A pack on its way from the upstream, spooled to disk so that any number of
// clients can read it while it arrives, each at its own pace: a client slower
// than the upstream reads from the file, never from memory (nothing holds more
// than one read buffer per reader), and a client faster than the upstream
// waits for the next append. The writer (one cold fill, mirror-cold-fill.ts)
// appends, then finishes or fails; readers see the failure as a stream error.
//
// Lifetime: readers open their own descriptor, so the writer removes the file
// as soon as it is done (published or failed) and readers that already
// opened it keep reading; a reader asked for after removal gets null (the
// mirror exists by then, or the fill failed and the request retries).

import { closeSync, openSync, read } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';

const READ_CHUNK = 256 * 1024;

export class PackSpool {
  readonly path: string;
  readonly #fh: FileHandle;
  #size = 0;
  #done = false;
  #error: Error | null = null;
  #removed = false;
  readonly #wake = new Set<() => void>();

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  static async create(path: string): Promise<PackSpool> {
    return new PackSpool(path, await open(path, 'wx', 0o600));
  }

  get size(): number {
    return this.#size;
  }

  async append(data: Buffer): Promise<void> {
    if (this.#done || this.#error) throw new Error('pack spool is closed');
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.#fh.write(data, off, data.length - off, this.#size);
      off += bytesWritten;
      this.#size += bytesWritten;
    }
    this.#notify();
  }

  /** The pack is complete: readers end once they have read `size` bytes. */
  finish(): void {
    this.#done = true;
    this.#notify();
  }

  /** The pack will not complete: readers fail with `err` (after what was written). */
  fail(err: Error): void {
    if (this.#done) return;
    this.#error = err;
    this.#notify();
  }

  /** Closes and removes the file; readers that opened it keep their descriptors. */
  async remove(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    if (!this.#done && !this.#error) this.fail(new Error('pack spool removed'));
    await this.#fh.close().catch(() => {});
    await rm(this.path, { force: true });
  }

  /** A reader from the start of the pack, or null when the spool is gone or failed. */
  reader(): Readable | null {
    if (this.#removed || this.#error) return null;
    const fd = openSync(this.path, 'r');
    let offset = 0;
    let closed = false;
    const spool = this;
    const close = () => {
      if (!closed) {
        closed = true;
        closeSync(fd);
      }
    };
    return new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        const step = () => {
          if (closed) return;
          if (offset < spool.#size) {
            const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, spool.#size - offset));
            read(fd, buf, 0, buf.length, offset, (err, n) => {
              if (closed) return;
              if (err) return this.destroy(err);
              if (n === 0) return this.destroy(new Error('pack spool shrank'));
              offset += n;
              this.push(n === buf.length ? buf : buf.subarray(0, n));
            });
          } else if (spool.#error) this.destroy(spool.#error);
          else if (spool.#done) this.push(null);
          else spool.#wake.add(step);
        };
        step();
      },
      destroy(err, cb) {
        close();
        cb(err);
      },
    }).on('end', close);
  }

  #notify(): void {
    const waiting = [...this.#wake];
    this.#wake.clear();
    for (const w of waiting) w();
  }
}
