// push --verify: make the remote hold every blob a tree needs, not only the
// ones this push changed. A blob can vanish from a remote after it was
// pushed (deleted by hand, quarantined by fsck, lost with a disk), and the
// ordinary push never notices because it only asks about blobs the remote
// snapshot does not already name. Here every distinct blob of the tree (and
// the tree itself) is asked about in batches; what is missing is uploaded
// from this folder when it holds the bytes, and reported with the paths
// that need it when it does not.

import { Readable } from 'node:stream';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { toHoardError } from '../core/errors.ts';
import type { Tree } from '../core/tree.ts';
import { comparePathBytes } from '../core/tree-path.ts';
import type { Remote } from '../remote/remote.ts';
import type { MissingBlob } from './common.ts';
import { type ProgressSink, type UploadItem, uploadMissing } from './transfer.ts';

export interface VerifyResult {
  /** Distinct blobs the tree needs, the tree itself included. */
  blobsChecked: number;
  /** Of those, missing on the remote and uploaded from this folder. */
  blobsReuploaded: number;
  /** Missing on the remote and not in this folder either. */
  stillMissing: MissingBlob[];
}

/** Which of `digests` the remote lacks, asked in batches of missingBatchSize. */
async function askMissing(remote: Remote, digests: readonly Digest[]): Promise<Set<Digest>> {
  const want = new Set(digests);
  const out = new Set<Digest>();
  for (let i = 0; i < digests.length; i += DEFAULTS.missingBatchSize) {
    let answer: readonly Digest[];
    try {
      answer = await remote.blobs.missing(digests.slice(i, i + DEFAULTS.missingBatchSize));
    } catch (err) {
      throw toHoardError(err, 'HOARD_EREMOTE', `asking ${remote.url} which blobs are missing`);
    }
    // The answer is input: keep only digests we asked about.
    for (const d of answer) if (want.has(d)) out.add(d);
  }
  return out;
}

export async function verifyTree(
  remote: Remote,
  root: string,
  tree: Tree,
  treeD: Digest,
  treeBytes: Uint8Array,
  localByDigest: ReadonlyMap<Digest, string>,
  progress: ProgressSink,
  /** Blobs this push already uploaded: present, not asked again. */
  present: ReadonlySet<Digest>,
  /** Parallel uploads (push --concurrency). */
  concurrency?: number,
): Promise<{ result: VerifyResult; uploaded: Digest[]; files: number; bytes: number }> {
  const paths = new Map<Digest, string[]>();
  const local: UploadItem[] = [];
  const foreign: Digest[] = [];
  for (const e of tree.entries) {
    if (e.kind !== 'file' && e.kind !== 'exec') continue;
    const ps = paths.get(e.digest);
    if (ps) {
      ps.push(e.path);
      continue;
    }
    paths.set(e.digest, [e.path]);
    if (present.has(e.digest)) continue;
    const path = localByDigest.get(e.digest);
    if (path !== undefined) local.push({ digest: e.digest, size: e.size, path });
    else foreign.push(e.digest);
  }

  // The tree blob first: without it the ref names nothing.
  let treeUploaded = false;
  if (!present.has(treeD) && (await askMissing(remote, [treeD])).has(treeD)) {
    try {
      await remote.blobs.write(treeD, Readable.from([treeBytes]), { size: treeBytes.byteLength });
    } catch (err) {
      throw toHoardError(err, 'HOARD_EREMOTE', `writing ${treeD} to ${remote.url}`);
    }
    treeUploaded = true;
  }
  const up = await uploadMissing(remote, root, local, progress, undefined, concurrency);
  const lost = await askMissing(remote, foreign);
  const stillMissing = [...lost].map((digest) => ({
    digest,
    paths: paths.get(digest)!.sort(comparePathBytes),
  }));
  return {
    result: {
      blobsChecked: paths.size + 1,
      blobsReuploaded: up.blobs + (treeUploaded ? 1 : 0),
      stillMissing,
    },
    uploaded: treeUploaded ? [treeD, ...up.uploaded] : up.uploaded,
    files: up.blobs,
    bytes: up.bytes,
  };
}
