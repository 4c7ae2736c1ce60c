// Pieces shared by the GCS blob and ref stores: error classification (the
// client throws ApiError with a numeric `.code` for JSON calls, and a
// GaxiosError with `.status` — no `.code` — from resumable uploads) and the
// mapping to HoardErrors naming the bucket and key, never a credential.

import type { Bucket } from '@google-cloud/storage';
import { HoardError } from '../core/errors.ts';
import { isAbortError, statusOf } from '../core/retry.ts';

export interface GcsLocation {
  bucket: Bucket;
  name: string;
}

export function isGcsNotFound(err: unknown): boolean {
  return statusOf(err) === 404;
}

export function isGcsPreconditionFailed(err: unknown): boolean {
  return statusOf(err) === 412;
}

export function gcsError(err: unknown, op: string, bucket: string, key?: string): HoardError {
  if (err instanceof HoardError) return err;
  const where = key === undefined ? `gs://${bucket}` : `gs://${bucket}/${key}`;
  if (isAbortError(err))
    return new HoardError('HOARD_EABORTED', `GCS ${op} ${where} was cancelled`, { cause: err });
  const status = statusOf(err);
  const msg = err instanceof Error ? err.message : String(err);
  const text = `GCS ${op} ${where} failed${status ? `: ${status}` : ''}${msg ? ` (${msg.slice(0, 300)})` : ''}`;
  const details = { bucket, key, status };
  if (status === 401) return new HoardError('HOARD_EUNAUTHORIZED', text, { cause: err, details });
  if (status === 403)
    return new HoardError('HOARD_EFORBIDDEN', text, {
      cause: err,
      details,
      hint: 'check GOOGLE_APPLICATION_CREDENTIALS / gcloud auth and the bucket permissions',
    });
  if (status === undefined || status >= 500 || status === 429)
    return new HoardError('HOARD_EUNAVAILABLE', text, { cause: err, details });
  return new HoardError('HOARD_EREMOTE', text, { cause: err, details });
}

/** A GCS generation as a version token: a positive integer; generation 0 means "absent", never a version. */
export function parseGeneration(version: string): number | undefined {
  if (!/^[1-9][0-9]{0,18}$/.test(version)) return undefined;
  const n = Number(version);
  return Number.isSafeInteger(n) ? n : undefined;
}
