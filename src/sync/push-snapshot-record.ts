// A push's snapshot record: the tree, its parents, when, and who (host,
// tool, user, the message), written to the remote as a small blob before
// the ref is set to name it. Also how a push writes its other small blob,
// the tree.

import { hostname, userInfo } from 'node:os';
import { Readable } from 'node:stream';
import type { Digest } from '../core/digest.ts';
import { toHoardError } from '../core/errors.ts';
import { snapshotDigest } from '../core/snapshot-record.ts';
import type { Remote } from '../remote/remote.ts';

const TOOL = 'hoard/0.1.0';

export async function writeSmallBlob(remote: Remote, digest: Digest, bytes: Buffer): Promise<void> {
  try {
    await remote.blobs.write(digest, Readable.from([bytes]), { size: bytes.byteLength });
  } catch (err) {
    throw toHoardError(err, 'HOARD_EREMOTE', `writing ${digest} to ${remote.url}`);
  }
}

/** Who is pushing, for `hoard log` (HOARD_USER overrides the login name; none when unknown). */
function pusher(): string | undefined {
  if (process.env.HOARD_USER) return process.env.HOARD_USER;
  try {
    return userInfo().username;
  } catch {
    return undefined; // no passwd entry (containers): leave it out
  }
}

/** Writes the snapshot record of `tree` with `parents`; returns its digest. */
export async function writeSnapshotRecord(
  remote: Remote,
  tree: Digest,
  parents: Digest[],
  message: string | undefined,
): Promise<Digest> {
  const meta: Record<string, string> = { host: hostname(), tool: TOOL };
  const user = pusher();
  if (user) meta.user = user;
  if (message !== undefined) meta.message = message;
  const snap = snapshotDigest({ tree, parents, createdAt: new Date().toISOString(), meta });
  await writeSmallBlob(remote, snap.digest, snap.bytes);
  return snap.digest;
}
