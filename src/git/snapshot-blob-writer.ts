// A commit's archive (snapshot-archive.ts) written into a temp file while
// hashing (the blob store needs the digest before write()), then stored as a
// blob from that file. One retry: a maintenance repack of the mirror can
// remove a pack under a running git. The caller owns the work directory and
// removes it, on success and failure.

import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, VerifyingStream } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { AnchorPacks } from './snapshot-anchor.ts';
import { snapshotArchive } from './snapshot-archive.ts';
import type { SnapshotLogger } from './snapshot-service-deps.ts';

export interface SnapshotBlobJob {
  key: string;
  /** The mirror's directory. */
  dir: string;
  commit: string;
  originUrl: string;
  /** An empty work directory of the caller's. */
  work: string;
  zstdLevel: number;
  anchors: AnchorPacks;
  blobs: BlobStore;
  log: SnapshotLogger;
}

/** Generates the archive of `job.commit` and stores it: its digest and size. */
export async function writeSnapshotBlob(job: SnapshotBlobJob): Promise<{ digest: Digest; size: number }> {
  const { key, commit, work } = job;
  const file = join(work, 'snapshot.tar.zst');
  let hashed: VerifyingStream;
  // One retry: a maintenance repack of the mirror can remove a pack under a running git.
  for (let attempt = 0; ; attempt++) {
    hashed = new VerifyingStream();
    try {
      const archive = await snapshotArchive({
        repoDir: job.dir,
        commit,
        originUrl: job.originUrl,
        tmpDir: work,
        zstdLevel: job.zstdLevel,
        anchors: { packs: job.anchors, key },
      });
      await pipeline(archive.stream, hashed, createWriteStream(file));
    } catch (err) {
      if (attempt >= 1 || !isHoardError(err, 'HOARD_EGIT') || /not found/.test(err.message)) throw err;
      job.log.warn({ repo: key, commit, err: err.message }, 'git: snapshot generation failed; retrying');
      continue;
    }
    break;
  }
  const digest = hashed.result as Digest;
  const size = hashed.hasher.size;
  if ((await stat(file)).size !== size)
    throw new HoardError('HOARD_EINTERNAL', 'snapshot temp file size changed');
  await job.blobs.write(digest, createReadStream(file, { highWaterMark: DEFAULTS.streamChunkBytes }), {
    size,
  });
  return { digest, size };
}
