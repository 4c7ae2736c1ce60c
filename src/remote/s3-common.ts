// Pieces shared by the S3 blob and ref stores: ETag normalisation, error
// classification and the mapping of SDK errors to HoardErrors that name the
// bucket and key (never a credential).

import type { S3Client } from '@aws-sdk/client-s3';
import { HoardError } from '../core/errors.ts';
import { isAbortError, statusOf } from '../core/retry.ts';

export interface S3Location {
  client: S3Client;
  bucket: string;
}

/**
 * An ETag as a version token: quotes and the weak prefix removed. Returns
 * undefined for a missing/empty ETag (RGW's CompleteMultipartUpload answers
 * with an empty one) and for a multipart ETag (`<hex>-<parts>`), which is not
 * a digest of the content and is never used as a ref version.
 */
export function normalizeEtag(etag: string | undefined | null): string | undefined {
  if (!etag) return undefined;
  let e = etag.trim();
  if (e.startsWith('W/')) e = e.slice(2);
  if (e.length >= 2 && e.startsWith('"') && e.endsWith('"')) e = e.slice(1, -1);
  if (e === '' || /-\d+$/.test(e)) return undefined;
  return e;
}

/** True for a multipart ETag (`"…-N"`). */
export function isMultipartEtag(etag: string | undefined | null): boolean {
  return !!etag && /-\d+"?$/.test(etag.trim());
}

export function errName(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const { name, Code } = err as { name?: unknown; Code?: unknown };
  return typeof Code === 'string' ? Code : typeof name === 'string' ? name : '';
}

export function isNotFound(err: unknown): boolean {
  const name = errName(err);
  return statusOf(err) === 404 || name === 'NotFound' || name === 'NoSuchKey';
}

/** Precondition failed: 412, or 409 ConditionalRequestConflict (AWS, racing conditional writes). */
export function isPreconditionFailed(err: unknown): boolean {
  const s = statusOf(err);
  const name = errName(err);
  return s === 412 || name === 'PreconditionFailed' || (s === 409 && name === 'ConditionalRequestConflict');
}

/** Wraps an SDK failure in a HoardError naming the operation, bucket and key. */
export function s3Error(err: unknown, op: string, bucket: string, key?: string): HoardError {
  if (err instanceof HoardError) return err;
  const where = key === undefined ? `s3://${bucket}` : `s3://${bucket}/${key}`;
  if (isAbortError(err))
    return new HoardError('HOARD_EABORTED', `S3 ${op} ${where} was cancelled`, { cause: err });
  const status = statusOf(err);
  const name = errName(err);
  const msg = err instanceof Error ? err.message : String(err);
  const text = `S3 ${op} ${where} failed: ${[status, name].filter(Boolean).join(' ')}${msg && msg !== name ? ` (${msg})` : ''}`;
  const details = { bucket, key, status };
  if (
    status === 403 ||
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch'
  )
    return new HoardError('HOARD_EFORBIDDEN', text, {
      cause: err,
      details,
      hint: 'check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket policy',
    });
  if (status === 401) return new HoardError('HOARD_EUNAUTHORIZED', text, { cause: err, details });
  if (status === undefined || status >= 500 || status === 429)
    return new HoardError('HOARD_EUNAVAILABLE', text, { cause: err, details });
  return new HoardError('HOARD_EREMOTE', text, { cause: err, details });
}
