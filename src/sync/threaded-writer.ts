// Small files written by a worker thread (write-worker.ts), for big
// restores without fsync (a cache restore into an empty folder: tens of
// thousands of files). On the main thread alone, a cold restore was
// download + verify + plan *then* open/write/fstat/close/mkdir for each
// file, one after the other: the file-creation system calls were a third
// of its time. Handing the verified bytes to a worker lets those calls run
// on the machine's other core while the main thread reads and verifies the
// next batch.
//
// What crosses: verified bytes only, copied into one buffer per batch and
// transferred (never shared, so nothing the worker writes can change after
// it was verified); the worker answers with the files it landed and their
// stat, or with its first failure, which fails the restore (the worker then
// writes nothing more). Its checks are SmallFileWriter's and FolderGuard's,
// unchanged: they run where the files are written. At most
// BATCHES_IN_FLIGHT batches wait for the worker, so memory stays bounded
// when the disk is slower than the network.

import { Worker } from 'node:worker_threads';
import { HoardError } from '../core/errors.ts';
import type { FileEntry } from '../core/tree.ts';
import type { WrittenFile } from './small-file-writer.ts';
import type { WireError, WriteBatch, WriteReply } from './write-worker.ts';

/** A batch is sent once it holds this many bytes or files. */
const BATCH_BYTES = 1024 * 1024;
const BATCH_FILES = 256;
const BATCHES_IN_FLIGHT = 4;

export interface ThreadedWriterOptions {
  root: string;
  /** Every file landed is pushed here (as the worker reports it). */
  written: { push(w: WrittenFile): void };
  /** The error for a full local disk while writing `path`. */
  diskFull: (path: string, cause: unknown) => Error;
  /** Batch size and batches in flight (tests make them small). */
  limits?: { bytes: number; files: number; inFlight: number };
}

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './write-worker.ts' : './write-worker.js',
  import.meta.url,
);

export class ThreadedFileWriter {
  readonly #o: ThreadedWriterOptions;
  readonly #worker: Worker;
  /** The batch being filled: verified bytes copied in as they come (the caller may reuse its buffer). */
  #buf: Uint8Array | undefined;
  #used = 0;
  /** Batch buffers the worker gave back, for reuse. */
  readonly #free: ArrayBuffer[] = [];
  #items: WriteBatch['items'] = [];
  #files = 0;
  #nextId = 0;
  readonly #inFlight = new Set<number>();
  #failure: Error | undefined;
  /** Waiting for a batch to come back (room for another); all woken on each answer, each re-checks. */
  #waiting: (() => void)[] = [];
  readonly #exited: Promise<void>;
  /** Shared with the worker: 1 = drop what is queued (see close). */
  readonly #stop = new Int32Array(new SharedArrayBuffer(4));
  readonly #limits: { bytes: number; files: number; inFlight: number };

  constructor(opts: ThreadedWriterOptions) {
    this.#o = opts;
    this.#limits = opts.limits ?? { bytes: BATCH_BYTES, files: BATCH_FILES, inFlight: BATCHES_IN_FLIGHT };
    this.#worker = new Worker(WORKER_URL, { workerData: { root: opts.root, stop: this.#stop.buffer } });
    this.#exited = new Promise((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.on('message', (reply: WriteReply) => this.#answer(reply));
    this.#worker.on('error', (err) => this.#fail(err));
    this.#worker.once('exit', (code) => {
      if (this.#inFlight.size > 0)
        this.#fail(new Error(`the file writer thread exited (code ${code}) with files still to write`));
    });
  }

  /** Queues verified `bytes` for every entry; resolves once there is room for more. */
  async write(entries: readonly FileEntry[], bytes: Buffer): Promise<void> {
    if (this.#failure) throw this.#failure;
    // Several downloads write at once: while this one waited to send, another
    // may have started (and filled) a new batch, so the room is checked again.
    while (this.#buf && this.#used + bytes.byteLength > this.#buf.byteLength) await this.#send();
    if (this.#failure) throw this.#failure;
    this.#buf ??=
      bytes.byteLength <= this.#limits.bytes
        ? new Uint8Array(this.#free.pop() ?? new ArrayBuffer(this.#limits.bytes))
        : new Uint8Array(bytes.byteLength);
    this.#buf.set(bytes, this.#used);
    this.#items.push({ offset: this.#used, length: bytes.byteLength, entries: [...entries] });
    this.#used += bytes.byteLength;
    this.#files += entries.length;
    if (this.#used >= this.#limits.bytes || this.#files >= this.#limits.files) await this.#send();
  }

  /** Sends what is queued and waits until the worker has landed everything; throws its first failure. */
  async finish(): Promise<void> {
    await this.#send();
    while (!this.#failure && this.#inFlight.size > 0) await this.#waitRoom();
    if (this.#failure) throw this.#failure;
  }

  /**
   * Stops the worker: after finish(), or on the way out of a failed restore
   * (then the batches still queued are dropped between two files — never by
   * terminating the thread, which could stop it between a file's create and
   * its write, leaving a short file nobody removes).
   */
  async close(): Promise<void> {
    if (this.#inFlight.size > 0) Atomics.store(this.#stop, 0, 1);
    this.#worker.postMessage({ close: true });
    await this.#exited;
  }

  /** Sends the batch being filled (taken at once; posted when fewer than BATCHES_IN_FLIGHT are out). */
  async #send(): Promise<void> {
    const buf = this.#buf;
    const items = this.#items;
    this.#buf = undefined;
    this.#items = [];
    this.#used = 0;
    this.#files = 0;
    while (!this.#failure && this.#inFlight.size >= this.#limits.inFlight) await this.#waitRoom();
    if (this.#failure) throw this.#failure;
    if (!buf || items.length === 0) return;
    // Transferred, never shared: the worker owns these bytes from here.
    const buffer = buf.buffer as ArrayBuffer; // the unused tail travels too: no copy to trim it
    const id = this.#nextId++;
    this.#inFlight.add(id);
    this.#worker.postMessage({ id, buffer, items } satisfies WriteBatch, [buffer as ArrayBuffer]);
  }

  #waitRoom(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #answer(reply: WriteReply): void {
    this.#inFlight.delete(reply.id);
    if ('error' in reply) this.#fail(this.#fromWire(reply.error));
    else {
      for (const w of reply.written) this.#o.written.push(w);
      if (reply.buffer.byteLength === this.#limits.bytes) this.#free.push(reply.buffer);
    }
    this.#wake();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#wake();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w();
  }

  #fromWire(e: WireError): Error {
    if (e.hoardCode)
      return new HoardError(e.hoardCode as HoardError['code'], e.message, {
        hint: e.hint,
        details: e.details,
      });
    if ((e.errno === 'ENOSPC' || e.errno === 'EDQUOT') && e.path)
      return this.#o.diskFull(e.path, Object.assign(new Error(e.message), { code: e.errno }));
    return Object.assign(new Error(e.message), { code: e.errno, path: e.path });
  }
}
