// Step 1 of a restore (restore.ts): HEAD of the stable snapshot URL
// (`…/snapshot.tar.zst[?ref=R]`) says which blob is current
// (Content-Location), its digest (ETag), size and commit, and the ref the
// server resolved (X-Hoard-Ref). A 404 is told apart: an unknown repository
// or ref, or a URL that is not a hoard git URL.

import { type Digest, digestFromHex } from '../core/digest.ts';
import { HoardError, isHoardError } from '../core/errors.ts';
import { discard, type HttpResponse, header, httpRequest } from '../http/http-client.ts';
import { isObjectId } from './object-id.ts';

export interface SnapshotHead {
  /** The stable URL asked. */
  stable: string;
  /** The immutable blob URL to download. */
  blobUrl: string;
  digest: Digest;
  etag: string;
  size: number;
  /** The commit the snapshot holds. */
  snapshotCommit: string;
  /** The full ref the server resolved, when it named one. */
  resolvedRef: string | undefined;
}

export function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * A failure to find the snapshot, as restore reports it: a 404 of the
 * snapshot route means the repository or ref is unknown (exit 2); a 404 of no
 * route at all means the URL is not a hoard git URL.
 */
function restoreError(err: unknown, url: string): unknown {
  if (!isHoardError(err) || err.details?.status !== 404) return err;
  const code = err.code === 'HOARD_EBAD_REQUEST' ? 'HOARD_EUSAGE' : 'HOARD_EREF_NOT_FOUND';
  return new HoardError(code, `${url}: ${err.message}`, { hint: err.hint, details: err.details });
}

/** Which blob is current for `ref` (default: the upstream's HEAD branch) of the git URL `base`. */
export async function snapshotHead(
  base: string,
  ref: string | undefined,
  headers: Record<string, string>,
): Promise<SnapshotHead> {
  const stable = `${base}/snapshot.tar.zst${ref ? `?ref=${encodeURIComponent(ref)}` : ''}`;
  const stableUrl = new URL(stable);
  let head: HttpResponse;
  try {
    head = await httpRequest('HEAD', stableUrl, { headers, accept: [404, 400] });
    if (head.status !== 200) {
      // HEAD has no body: ask again with GET for the error.
      discard(head);
      head = await httpRequest('GET', stableUrl, { headers });
      discard(head);
      throw new HoardError('HOARD_EREMOTE', `${stable} answered HTTP ${head.status} to HEAD only`);
    }
  } catch (err) {
    throw restoreError(err, stable);
  }
  discard(head);
  const etag = header(head, 'etag') ?? '';
  const location = header(head, 'content-location');
  const snapshotCommit = header(head, 'x-hoard-commit') ?? '';
  const size = Number(header(head, 'content-length'));
  const m = /^"([0-9a-f]{64})"$/.exec(etag);
  if (!m || !location || !isObjectId(snapshotCommit) || !Number.isSafeInteger(size))
    throw new HoardError('HOARD_EREMOTE', `${stable} did not answer like a hoard snapshot URL`, {
      details: { etag, location, commit: snapshotCommit },
    });
  return {
    stable,
    blobUrl: new URL(location, stable).href,
    digest: digestFromHex(m[1]),
    etag,
    size,
    snapshotCommit,
    resolvedRef: header(head, 'x-hoard-ref'),
  };
}
