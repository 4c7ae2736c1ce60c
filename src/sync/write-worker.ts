// The worker thread of ThreadedFileWriter (threaded-writer.ts): a
// SmallFileWriter of its own (its own FolderGuard: the same checks, made
// where the writes happen) writing the verified bytes it is sent, so the
// file-creation system calls of a big restore run beside the main thread's
// download, verification and planning instead of after them. It never
// decides anything about content: every byte it gets was verified by the
// main thread before it was sent.
//
// Messages in: { id, buffer: ArrayBuffer, items: [{ offset, length, entries }] }
// (the buffer transferred, never shared), then { close: true }. A shared
// stop flag (set when the restore failed elsewhere) ends the work between
// two files: never in the middle of one, so each file it created is whole
// or removed (SmallFileWriter's rule), as in a restore without a thread.
// Messages out: { id, written: [...], buffer } once a batch's files are
// landed (the buffer transferred back, for reuse), or
// { id, error } with the first failure (the main thread stops then).

import { parentPort, workerData } from 'node:worker_threads';
import { HoardError } from '../core/errors.ts';
import type { FileEntry } from '../core/tree.ts';
import { FolderGuard } from './local-folders.ts';
import { SmallFileWriter, type WrittenFile } from './small-file-writer.ts';

export interface WriteBatch {
  id: number;
  buffer: ArrayBuffer;
  items: { offset: number; length: number; entries: FileEntry[] }[];
}

/** An error as it crosses the thread boundary. */
export interface WireError {
  message: string;
  /** A HoardError's code. */
  hoardCode?: string;
  hint?: string;
  details?: Record<string, unknown>;
  /** An errno code (ENOSPC…), with the path it was about. */
  errno?: string;
  path?: string;
}

export type WriteReply =
  | { id: number; written: WrittenFile[]; buffer: ArrayBuffer }
  | { id: number; error: WireError };

interface DiskFull extends Error {
  path: string;
  errnoCode: string;
}

function toWire(err: unknown): WireError {
  if (err instanceof HoardError)
    return { message: err.message, hoardCode: err.code, hint: err.hint, details: err.details };
  const e = err as Partial<DiskFull & NodeJS.ErrnoException>;
  if (e?.errnoCode) return { message: String(e.message), errno: e.errnoCode, path: e.path };
  return { message: String(e?.message ?? err), errno: e?.code, path: e?.path };
}

if (parentPort) {
  const port = parentPort;
  const { root, stop } = workerData as { root: string; stop: SharedArrayBuffer };
  /** Set by the main thread when the restore failed elsewhere: finish the file at hand, start no other. */
  const stopped = new Int32Array(stop);
  const written: WrittenFile[] = [];
  const writer = new SmallFileWriter({
    root,
    folders: new FolderGuard(root),
    fsync: false,
    inPlace: true,
    written,
    diskFull: (path, cause) =>
      Object.assign(new Error(`no space left writing ${path}`), {
        path,
        errnoCode: (cause as NodeJS.ErrnoException).code ?? 'ENOSPC',
      }),
  });
  let failed = false;
  port.on('message', async (msg: WriteBatch | { close: true }) => {
    if ('close' in msg) {
      port.close();
      return;
    }
    if (failed) return;
    try {
      for (const item of msg.items) {
        if (Atomics.load(stopped, 0) !== 0) break;
        await writer.write(item.entries, Buffer.from(msg.buffer, item.offset, item.length));
      }
      // The buffer goes back for the next batch: reused, not left for a GC
      // this thread rarely runs (it allocates almost nothing of its own).
      port.postMessage({ id: msg.id, written: written.splice(0), buffer: msg.buffer } satisfies WriteReply, [
        msg.buffer,
      ]);
    } catch (err) {
      failed = true;
      port.postMessage({ id: msg.id, error: toWire(err) } satisfies WriteReply);
    }
  });
}
