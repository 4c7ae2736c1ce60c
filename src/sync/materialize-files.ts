// The files of a materialize, grouped by digest so each blob is fetched
// once. Small blobs with no local copy travel in batches (BlobStore.readMany:
// a few hundred per request from a hoard server) and are written with
// synchronous calls as they arrive (small-file-writer.ts; a big restore's
// in a worker thread: threaded-writer.ts): for a folder of many small files
// the per-file costs (a request, thread-pool hand-offs for open/write/
// close/rename) are the time. Every other blob goes by the usual path
// (blob-group-writer.ts). Both paths run at once; the first failure stops
// the other, and this returns only once nothing is in flight. Blobs the
// remote does not have: every other file is still written, then one error
// names them all with the paths that need them.

import { dirname, join } from 'node:path';
import type { BlobWant } from '../core/blob-batch-frame.ts';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { forEachLimit } from '../core/pool.ts';
import { SingleFlight } from '../core/single-flight.ts';
import type { FileEntry, TreeEntry } from '../core/tree.ts';
import { comparePathBytes } from '../core/tree-path.ts';
import type { Remote } from '../remote/remote.ts';
import { readMany } from '../store/read-many.ts';
import { BlobGroupWriter, type DownloadCounts } from './blob-group-writer.ts';
import { type MissingBlob, missingBlobsError } from './common.ts';
import type { FolderGuard } from './local-folders.ts';
import { batchDownloadError, localDiskFull } from './materialize-errors.ts';
import { SmallFileWriter } from './small-file-writer.ts';
import { ThreadedFileWriter } from './threaded-writer.ts';
import type { ProgressSink } from './transfer.ts';
import type { WrittenLog } from './written-log.ts';

/** Below this many batched blobs, a worker thread's start-up costs more than it saves. */
export const WRITER_THREAD_MIN_BLOBS = 1000;

export interface FileWritesInput {
  root: string;
  remote: Remote;
  /** The ref being pulled, for error messages. */
  ref: string;
  localByDigest: ReadonlyMap<Digest, string>;
  progress: ProgressSink;
  concurrency: number | undefined;
  fsync: boolean;
  writerThread: boolean | undefined;
  /** The plan's writes: their files are written here. */
  writes: readonly TreeEntry[];
  /** Paths removed already: not a local copy any more. */
  deleted: ReadonlySet<string>;
  folders: FolderGuard;
  touchedDirs: Set<string>;
  written: WrittenLog;
}

/** Writes the files among `writes`; throws after all of them when blobs were missing. */
export async function writeFiles(input: FileWritesInput): Promise<DownloadCounts> {
  const { root, remote, progress, fsync, folders, touchedDirs, written } = input;
  // A digest most often has one file: held as the entry itself, not an
  // array of one (at 50,000 files those arrays were ~4 MiB of a fresh
  // pull's heap, kept to its end); filesOf makes the list when it is used.
  const groups = new Map<Digest, FileEntry | FileEntry[]>();
  for (const e of input.writes) {
    if (e.kind !== 'file' && e.kind !== 'exec') continue;
    const g = groups.get(e.digest);
    if (g === undefined) groups.set(e.digest, e);
    else if (Array.isArray(g)) g.push(e);
    else groups.set(e.digest, [g, e]);
  }
  const counts: DownloadCounts = { files: 0, bytes: 0 };
  let totalBytes = 0;
  for (const g of groups.values()) totalBytes += filesOf(g)[0].size;
  const flight = new SingleFlight<Digest, void>();

  const missing: MissingBlob[] = [];
  const missingOf = (digest: Digest, entries: FileEntry[]) =>
    missing.push({ digest, paths: entries.map((e) => e.path).sort(comparePathBytes) });

  const groupWriter = new BlobGroupWriter({
    root,
    remote,
    localByDigest: input.localByDigest,
    deleted: input.deleted,
    progress,
    fsync,
    folders,
    touchedDirs,
    written,
    counts,
    missing: missingOf,
  });

  // Small blobs with no local copy to take them from travel in batches.
  // Each arrives whole and verified; its files are written right there
  // with synchronous calls (temp, write, close, rename); with fsync on,
  // the temps are made durable in groups (one syncfs per few thousand
  // files, small-file-writer.ts) and renamed only after that, so a crash
  // never publishes a torn file.
  const batched: BlobWant[] = [];
  const individual: [Digest, FileEntry[]][] = [];
  for (const [digest, g] of groups) {
    const entries = filesOf(g);
    const size = entries[0].size;
    const local = input.localByDigest.get(digest);
    if (size <= DEFAULTS.blobBatchFileBytes && local === undefined) batched.push({ digest, size });
    else individual.push([digest, entries]);
  }
  const writer = new SmallFileWriter({
    root,
    folders,
    fsync,
    inPlace: !fsync,
    written,
    diskFull: localDiskFull,
  });
  // A big restore without fsync hands its small files to a worker thread
  // (threaded-writer.ts): their system calls then overlap the downloads.
  // Not a pull: with its fsyncs batched (small-file-writer.ts) the main
  // thread alone was as fast at 50,000 files (7.2–9.1 s against 8.1 s),
  // with ~60 MiB less memory (the worker's isolate and heap) and less CPU.
  // (Started inside the try below, so it is always stopped.)
  let threaded: ThreadedFileWriter | undefined;
  const useThread = !fsync && (input.writerThread ?? batched.length >= WRITER_THREAD_MIN_BLOBS);
  const writeBatched = async (digest: Digest, bytes: Buffer): Promise<void> => {
    const entries = filesOf(groups.get(digest)!);
    await (threaded ?? writer).write(entries, bytes);
    if (fsync) for (const e of entries) touchedDirs.add(dirname(join(root, e.path)));
    progress.bytes(bytes.byteLength);
    progress.blobDone({ digest, size: bytes.byteLength, path: entries[0].path });
    counts.files++;
    counts.bytes += bytes.byteLength;
  };

  // Both paths run at once; the first failure stops the other (no new
  // blob starts), and this returns only once nothing is in flight.
  const stop = new AbortController();
  const stopOnFailure = (p: Promise<void>) =>
    p.catch((err) => {
      stop.abort(err);
      throw err;
    });
  progress.start('pull', groups.size, totalBytes);
  try {
    if (useThread) threaded = new ThreadedFileWriter({ root, written, diskFull: localDiskFull });
    const results = await Promise.allSettled([
      stopOnFailure(
        readMany(
          remote.blobs,
          batched,
          (rec) => {
            stop.signal.throwIfAborted();
            if (rec.status === 'missing') missingOf(rec.digest, filesOf(groups.get(rec.digest)!));
            else return writeBatched(rec.digest, rec.bytes);
          },
          { concurrency: input.concurrency ?? DEFAULTS.transferConcurrency, signal: stop.signal },
        ).then(
          () => threaded?.finish(),
          (err) => {
            throw batchDownloadError(remote.url, err);
          },
        ),
      ),
      stopOnFailure(
        forEachLimit(individual, input.concurrency ?? DEFAULTS.transferConcurrency, ([digest, entries]) => {
          stop.signal.throwIfAborted();
          return flight.do(digest, () => groupWriter.write(digest, entries));
        }),
      ),
    ]);
    const settled = await writer.settle();
    // The first failure is the abort's reason (the other path then failed by the abort).
    if (stop.signal.aborted) throw stop.signal.reason;
    const failure = [...results, ...settled].find((r) => r.status === 'rejected');
    if (failure) throw (failure as PromiseRejectedResult).reason;
  } finally {
    await threaded?.close();
    progress.stop();
  }
  if (missing.length > 0) throw missingBlobsError(input.ref, remote.url, missing, 'pull');
  return counts;
}

/** The files of one digest's group (see groups in writeFiles). */
function filesOf(g: FileEntry | FileEntry[]): FileEntry[] {
  return Array.isArray(g) ? g : [g];
}
