// A push's uploads: the blobs of the merged tree the remote's tree does not
// reference. Those the scan already stored (a batching store, file://: the
// bytes went in while the scan held them) are reported as uploads in a
// round of their own; the rest are asked about once and uploaded from this
// folder (uploadMissing). A skipped file's last-synced version needs no
// upload: the remote got it at that sync.

import type { Digest } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import type { TreeEntry } from '../core/tree.ts';
import type { Remote } from '../remote/remote.ts';
import type { ScanResult } from './scan-result.ts';
import { type ProgressSink, uploadMissing } from './transfer.ts';

export interface PushUploadsInput {
  remote: Remote;
  root: string;
  /** The merged tree's entries. */
  entries: readonly TreeEntry[];
  /** Blob digests the remote's tree references. */
  known: ReadonlySet<Digest>;
  /** Digests the scan's batch took, and whether it created them (false: the store had them). */
  staged: ReadonlyMap<Digest, boolean>;
  /** Digests uploaded by this push so far (earlier attempts, verification): added to. */
  uploaded: Set<Digest>;
  /** Files left out of this push (--skip-changing). */
  skipped: ReadonlySet<string>;
  /** Its localByDigest is read only when a blob is to be uploaded (made lazily). */
  scan: ScanResult;
  progress: ProgressSink;
  concurrency: number | undefined;
}

/** Uploads what only this folder has; returns the files and bytes reported as uploaded. */
export async function uploadMerged(input: PushUploadsInput): Promise<{ files: number; bytes: number }> {
  const { entries, known, staged, uploaded, skipped, scan, progress } = input;
  let files = 0;
  let bytes = 0;
  const items = [];
  /** Blobs the scan stored (the batch in push.ts) that this push created: reported as uploaded. */
  /** Their indices in entries: not an object per blob held until they are reported (50,000 at a first push). */
  const storedByScan: number[] = [];
  let storedBytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if ((e.kind !== 'file' && e.kind !== 'exec') || known.has(e.digest)) continue;
    const created = staged.get(e.digest);
    if (created !== undefined) {
      // Stored by the scan already; counted once.
      if (created && !uploaded.has(e.digest)) {
        files++;
        bytes += e.size;
        storedByScan.push(i);
        storedBytes += e.size;
      }
      uploaded.add(e.digest);
      continue;
    }
    const path = scan.localByDigest.get(e.digest);
    // A skipped file's last-synced version: the remote got it at that sync.
    if (path === undefined && skipped.has(e.path)) continue;
    if (path === undefined)
      throw new HoardError('HOARD_EINTERNAL', `no local copy of ${e.digest} for ${e.path}`);
    items.push({ digest: e.digest, size: e.size, path });
  }
  if (storedByScan.length > 0) {
    // Their bytes went to the store during the scan: a round of its own, so progress
    // (and the library's events: one per blob) shows them as the uploads they are.
    progress.start('push', storedByScan.length, storedBytes);
    for (const i of storedByScan) {
      const e = entries[i] as { digest: Digest; size: number; path: string };
      progress.bytes(e.size);
      progress.blobDone({ digest: e.digest, size: e.size, path: e.path });
    }
    progress.stop();
  }
  const up = await uploadMissing(input.remote, input.root, items, progress, uploaded, input.concurrency);
  for (const d of up.uploaded) uploaded.add(d);
  return { files: files + up.blobs, bytes: bytes + up.bytes };
}
