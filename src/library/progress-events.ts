// Progress of push and pull as typed events for library callers: `start`
// and `end` around each transfer round, `bytes` as data flows, and exactly
// one `blob` event per blob moved (the sync layer reports each digest once,
// however many files share it and however many rounds a push takes). The
// sync layer talks to a ProgressSink; this adapts one to a listener.

import type { Digest } from '../core/digest.ts';
import { noProgress, type ProgressSink } from '../sync/transfer.ts';

/** Which phase a round belongs to: hashing the folder's changed files (push and pull), or the transfer. */
export type ProgressOperation = 'hash' | 'push' | 'pull';

export type ProgressEvent =
  /** A transfer round begins: `blobs` distinct blobs of `bytes` bytes to move. */
  | { type: 'start'; operation: ProgressOperation; blobs: number; bytes: number }
  /** `bytes` more bytes moved; `bytesDone` so far in this round. */
  | { type: 'bytes'; operation: ProgressOperation; bytes: number; bytesDone: number }
  /**
   * One blob moved (push: uploaded; pull: written, downloaded or copied from
   * a local file with the same bytes). `path` is one file holding it.
   */
  | {
      type: 'blob';
      operation: ProgressOperation;
      digest: Digest;
      size: number;
      path: string;
      blobsDone: number;
      blobs: number;
    }
  /** The round ended (also when it failed). */
  | { type: 'end'; operation: ProgressOperation; blobsDone: number; bytesDone: number };

export type ProgressListener = (event: ProgressEvent) => void;

/**
 * A ProgressSink calling `listener`. A listener that throws must not break
 * a transfer half way (it runs inside stream callbacks): its first error
 * becomes a process warning instead.
 */
export function progressSink(listener: ProgressListener | undefined): ProgressSink {
  if (!listener) return noProgress;
  let operation: ProgressOperation = 'push';
  let blobs = 0;
  let blobsDone = 0;
  let bytesDone = 0;
  let warned = false;
  const emit = (e: ProgressEvent) => {
    try {
      listener(e);
    } catch (err) {
      if (warned) return; // once per operation: a broken listener usually throws on every event
      warned = true;
      process.emitWarning(
        `a hoard progress listener threw (the transfer goes on): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        'HoardProgressListenerError',
      );
    }
  };
  return {
    start(label, n, bytes) {
      operation = label === 'pull' || label === 'hash' ? label : 'push';
      blobs = n;
      blobsDone = 0;
      bytesDone = 0;
      emit({ type: 'start', operation, blobs: n, bytes });
    },
    bytes(n) {
      bytesDone += n;
      emit({ type: 'bytes', operation, bytes: n, bytesDone });
    },
    blobDone(blob) {
      blobsDone++;
      if (blob) emit({ type: 'blob', operation, ...blob, blobsDone, blobs });
    },
    stop() {
      emit({ type: 'end', operation, blobsDone, bytesDone });
    },
  };
}
