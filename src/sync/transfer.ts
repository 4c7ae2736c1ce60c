// Moving blobs between a directory and a remote: small verified reads (tree,
// snapshot record), the batched "which are missing" question and bounded
// parallel uploads for push, single-flight verified downloads for pull. Only
// the Remote interface is used, so every backend behaves the same.

import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher, sha256 } from '../core/digest.ts';
import { DigestMismatchError, HoardError, isHoardError, NoSpaceError, toHoardError } from '../core/errors.ts';
import { forEachLimit } from '../core/pool.ts';
import { decodeSnapshot, MAX_SNAPSHOT_BYTES, type SnapshotRecord } from '../core/snapshot-record.ts';
import { readAllBounded } from '../core/streams.ts';
import { type Tree, TreeDecoder } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import { isUploadBatching } from '../store/blob-batch.ts';
import { keptTreeWriter, loadLocalTree } from './sync-state.ts';

/** A blob a push uploaded or a pull wrote: `path` is one of the files holding these bytes. */
export interface TransferredBlob {
  digest: Digest;
  size: number;
  path: string;
}

/**
 * Where progress goes (the CLI draws it on a TTY; the library turns it into
 * events). `blobDone` is called once per blob an operation moves, however
 * many files share it and however many rounds a push takes.
 */
export interface ProgressSink {
  start(label: string, blobs: number, bytes: number): void;
  bytes(n: number): void;
  blobDone(blob?: TransferredBlob): void;
  stop(): void;
}

export const noProgress: ProgressSink = { start() {}, bytes() {}, blobDone() {}, stop() {} };

/** Counts bytes flowing through, reporting them to a progress sink. */
export class CountingStream extends Transform {
  readonly onBytes: (n: number) => void;
  count = 0;

  constructor(onBytes: (n: number) => void) {
    super();
    this.onBytes = onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.byteLength;
    this.onBytes(chunk.byteLength);
    cb(null, chunk);
  }
}

/** Stream buffer size for a file of `size` bytes: no bigger than the file, at most one chunk. */
export function chunkFor(size: number): number {
  return Math.max(16 * 1024, Math.min(size + 1, DEFAULTS.streamChunkBytes));
}

/** Reads a small blob (tree, snapshot record) fully and verifies it against its digest. */
export async function readSmallBlob(remote: Remote, digest: Digest, limit: number): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readAllBounded(await remote.blobs.read(digest), limit);
  } catch (err) {
    if (isHoardError(err)) throw err;
    throw toHoardError(err, 'HOARD_EREMOTE', `reading ${digest} from ${remote.url}`);
  }
  const actual = sha256(bytes);
  if (actual !== digest) throw new DigestMismatchError(digest, actual, { details: { remote: remote.url } });
  return bytes;
}

export async function fetchSnapshot(remote: Remote, digest: Digest): Promise<SnapshotRecord> {
  return decodeSnapshot(await readSmallBlob(remote, digest, MAX_SNAPSHOT_BYTES));
}

/**
 * A tree by digest: from the directory's kept trees when there, else from
 * the remote (then kept). The remote's bytes are decoded, hashed and written
 * to the kept copy while they stream in, never held whole (a tree may be up
 * to syncMaxTreeBytes); the result is used only once the digest verified.
 */
export async function fetchTree(remote: Remote, dir: string, digest: Digest): Promise<Tree> {
  const local = await loadLocalTree(dir, digest);
  if (local) return local;
  const decoder = new TreeDecoder();
  const hasher = new Hasher();
  const keep = await keptTreeWriter(dir, digest);
  try {
    // A line that does not decode stops decoding, not hashing: corrupt bytes
    // are reported as such (digest mismatch), a well-hashed bad tree as invalid.
    let decodeErr: unknown;
    try {
      const source = await remote.blobs.read(digest);
      try {
        for await (const chunk of source) {
          hasher.update(chunk);
          if (hasher.size > DEFAULTS.syncMaxTreeBytes)
            throw new HoardError(
              'HOARD_ETOO_LARGE',
              `tree ${digest} is larger than ${DEFAULTS.syncMaxTreeBytes} bytes`,
              { details: { limit: DEFAULTS.syncMaxTreeBytes } },
            );
          if (decodeErr !== undefined) continue;
          try {
            decoder.push(chunk);
          } catch (err) {
            decodeErr = err;
            continue;
          }
          await keep.write(chunk);
        }
      } finally {
        source.destroy();
      }
    } catch (err) {
      throw toHoardError(err, 'HOARD_EREMOTE', `reading ${digest} from ${remote.url}`);
    }
    const actual = hasher.digest();
    if (actual !== digest) throw new DigestMismatchError(digest, actual, { details: { remote: remote.url } });
    if (decodeErr !== undefined) throw decodeErr;
    const tree = decoder.end();
    await keep.commit();
    return tree;
  } finally {
    await keep.abort();
  }
}

export interface UploadItem {
  digest: Digest;
  size: number;
  /** Path relative to the root holding these bytes. */
  path: string;
}

/**
 * Uploads the blobs the remote lacks: one batched "missing" question per
 * `missingBatchSize` digests, then bounded parallel verified writes. Returns
 * what was uploaded.
 */
export async function uploadMissing(
  remote: Remote,
  root: string,
  items: readonly UploadItem[],
  progress: ProgressSink,
  skip: ReadonlySet<Digest> = new Set(),
  concurrency: number = DEFAULTS.transferConcurrency,
): Promise<{ blobs: number; bytes: number; uploaded: Digest[] }> {
  const byDigest = new Map<Digest, UploadItem>();
  for (const it of items) if (!skip.has(it.digest) && !byDigest.has(it.digest)) byDigest.set(it.digest, it);
  const digests = [...byDigest.keys()];
  const missing: Digest[] = [];
  const seen = new Set<Digest>();
  for (let i = 0; i < digests.length; i += DEFAULTS.missingBatchSize) {
    const batch = digests.slice(i, i + DEFAULTS.missingBatchSize);
    let answer: readonly Digest[];
    try {
      answer = await remote.blobs.missing(batch);
    } catch (err) {
      throw toHoardError(err, 'HOARD_EREMOTE', `asking ${remote.url} which blobs are missing`);
    }
    // The remote's answer is input: keep only digests we seen about, once each.
    for (const d of answer)
      if (byDigest.has(d) && !seen.has(d)) {
        seen.add(d);
        missing.push(d);
      }
  }
  const total = missing.reduce((n, d) => n + byDigest.get(d)!.size, 0);
  progress.start('push', missing.length, total);
  let bytes = 0;
  // Small files to a store that takes them in batches (a hoard server): one
  // request per few hundred files, made durable together on the other side.
  const batching = isUploadBatching(remote.blobs) ? remote.blobs : undefined;
  const small = batching ? missing.filter((d) => byDigest.get(d)!.size <= DEFAULTS.blobBatchFileBytes) : [];
  const streamed =
    small.length > 0 ? missing.filter((d) => byDigest.get(d)!.size > DEFAULTS.blobBatchFileBytes) : missing;
  try {
    if (batching && small.length > 0) {
      const batch = batching.uploadBatch();
      try {
        // Reads overlap (thread pool); add() is safe to call concurrently.
        await forEachLimit(small, concurrency, async (digest) => {
          const it = byDigest.get(digest)!;
          const abs = join(root, it.path);
          // Read whole and hashed again: the bytes sent must be the ones the tree names.
          let data: Buffer | undefined;
          try {
            data = await readFile(abs);
          } catch {
            data = undefined;
          }
          if (!data || data.byteLength !== it.size || sha256(data) !== digest)
            throw new HoardError('HOARD_EFILE_CHANGING', `${it.path} changed while being pushed`, {
              hint: 'nothing was committed; stop whatever is writing to it and push again, or push with --skip-changing to leave it out',
              details: { path: it.path },
            });
          await batch.add(digest, data);
          bytes += it.size;
          progress.bytes(it.size);
          progress.blobDone({ digest, size: it.size, path: it.path });
        });
        await batch.flush();
      } catch (err) {
        await batch.abort();
        if (isHoardError(err, 'HOARD_ENO_SPACE'))
          throw new NoSpaceError(`uploading to ${remote.url}: ${err.message}`, {
            hint: err.hint,
            cause: err,
            details: err.details,
          });
        if (isHoardError(err)) throw err;
        throw toHoardError(err, 'HOARD_EREMOTE', `uploading to ${remote.url}`);
      }
    }
    await forEachLimit(streamed, concurrency, async (digest) => {
      const it = byDigest.get(digest)!;
      const counter = new CountingStream((n) => progress.bytes(n));
      const source = createReadStream(join(root, it.path), { highWaterMark: chunkFor(it.size) });
      try {
        await remote.blobs.write(digest, source.pipe(counter), { size: it.size });
      } catch (err) {
        source.destroy();
        // Checked first: the remote's disk is full, whatever else the failed upload looked like.
        if (isHoardError(err, 'HOARD_ENO_SPACE'))
          throw new NoSpaceError(`uploading ${it.path} to ${remote.url}: ${err.message}`, {
            hint: err.hint,
            cause: err,
            details: err.details,
          });
        // A file that changed since it was hashed: backends report it as a
        // digest mismatch or truncation, or (longer than declared) as a bad
        // request or a length error of their own, so its size is asked too.
        if (
          isHoardError(err, 'HOARD_EDIGEST_MISMATCH') ||
          isHoardError(err, 'HOARD_ETRUNCATED') ||
          (await sizeOf(join(root, it.path))) !== it.size
        )
          throw new HoardError('HOARD_EFILE_CHANGING', `${it.path} changed while being pushed`, {
            hint: 'nothing was committed; stop whatever is writing to it and push again, or push with --skip-changing to leave it out',
            cause: err,
            details: { path: it.path },
          });
        throw toHoardError(err, 'HOARD_EREMOTE', `uploading ${it.path} to ${remote.url}`);
      }
      bytes += it.size;
      progress.blobDone({ digest, size: it.size, path: it.path });
    });
  } finally {
    progress.stop();
  }
  return { blobs: missing.length, bytes, uploaded: missing };
}

/** A file's size now, or -1 when it is gone or unreadable. */
async function sizeOf(abs: string): Promise<number> {
  return (await stat(abs).catch(() => undefined))?.size ?? -1;
}

export const EMPTY_TREE: Tree = { entries: [] };

/** Reads a tree when it is known, or undefined (used for merge bases, which may be local-only). */
export async function fetchTreeOrUndefined(
  remote: Remote,
  dir: string,
  digest: Digest,
): Promise<Tree | undefined> {
  try {
    return await fetchTree(remote, dir, digest);
  } catch (err) {
    if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) return undefined;
    throw err;
  }
}
