// How a materialize's download failures are said: corruption names the
// blob, a blob not found passes through (the caller lists those with their
// paths), the local disk being full is said as such (not the remote's
// failure, not corruption), anything else is the remote's failure.

import { dirname } from 'node:path';
import type { Digest } from '../core/digest.ts';
import { HoardError, isHoardError, NoSpaceError, toHoardError } from '../core/errors.ts';

export function corruptDownload(digest: Digest, url: string, cause: unknown): HoardError {
  return new HoardError('HOARD_EDIGEST_MISMATCH', `download of ${digest} from ${url} was corrupt`, {
    hint: 'the bytes were discarded; run `hoard fsck` on the remote and pull again',
    cause,
  });
}

/** A failed download of one blob said as what it is: not found passes through, corruption, the remote's failure. */
export function downloadError(digest: Digest, url: string, err: unknown): HoardError {
  if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH')) return corruptDownload(digest, url, err);
  if (isHoardError(err)) return err;
  return toHoardError(err, 'HOARD_EREMOTE', `downloading ${digest} from ${url}`);
}

/** A batch failing: corruption names the blob; anything not ours is the remote's failure. */
export function batchDownloadError(url: string, err: unknown): HoardError {
  if (isHoardError(err, 'HOARD_EDIGEST_MISMATCH'))
    return corruptDownload((err.details?.expected as Digest | undefined) ?? ('a blob' as Digest), url, err);
  if (isHoardError(err)) return err;
  return toHoardError(err, 'HOARD_EREMOTE', `downloading from ${url}`);
}

export function localDiskFull(tmp: string, cause: unknown): NoSpaceError {
  return new NoSpaceError(`no space left on the local disk writing ${dirname(tmp)}`, {
    hint: 'free space on that disk (or raise its quota) and pull again',
    cause,
  });
}
