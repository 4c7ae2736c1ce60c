// `s3://bucket/prefix` remotes: the official AWS SDK v3, configured the
// standard way. Endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (the SDK
// would also read them; we read them too to know whether the endpoint is
// custom), region from AWS_REGION / AWS_DEFAULT_REGION / the shared config,
// credentials from the SDK's default chain (env, profile, SSO, IMDS…).
// Path-style addressing is on by default with a custom endpoint (what MinIO,
// RGW and friends want) and off for AWS; HOARD_S3_PATH_STYLE=0|1 overrides.
// The bucket must exist: open() sends HeadBucket and names the bucket in the
// error.

import { HeadBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import { withRetry } from '../core/retry.ts';
import { BucketLayout, normalizePrefix } from './bucket-layout.ts';
import type { Remote } from './remote-types.ts';
import { S3BlobStore, type S3BlobStoreOptions } from './s3-blob-store.ts';
import { isNotFound, s3Error } from './s3-common.ts';
import { S3RefStore } from './s3-ref-store.ts';

export interface S3RemoteOptions extends S3BlobStoreOptions {
  /** Overrides the environment (tests). */
  env?: NodeJS.ProcessEnv;
  /** Extra client configuration (tests: endpoint of a fault-injecting proxy). */
  clientConfig?: Partial<S3ClientConfig>;
}

export interface ParsedS3Url {
  bucket: string;
  prefix: string;
}

// DNS-compatible bucket names, plus the dotted and underscore forms that
// S3-compatible servers accept with path-style addressing.
const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/i;

export function parseS3Url(url: URL): ParsedS3Url {
  const shown = `s3://${url.host}${url.pathname}`;
  if (url.username || url.password)
    throw new HoardError('HOARD_EREMOTE_URL', `credentials do not belong in an s3:// URL (${shown})`, {
      hint: 'use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile',
    });
  const bucket = decodeURIComponent(url.hostname);
  if (!BUCKET_RE.test(bucket))
    throw new HoardError('HOARD_EREMOTE_URL', `invalid bucket name "${bucket}" in ${shown}`, {
      hint: 'use s3://bucket/optional/prefix',
    });
  if (url.port)
    throw new HoardError('HOARD_EREMOTE_URL', `an s3:// URL names a bucket, not a host:port (${shown})`, {
      hint: 'set the endpoint with AWS_ENDPOINT_URL_S3',
    });
  if (url.search || url.hash)
    throw new HoardError('HOARD_EREMOTE_URL', `unexpected query or fragment in ${shown}`);
  return { bucket, prefix: normalizePrefix(decodeURIComponent(url.pathname), shown) };
}

/** The S3 client hoard uses, from the standard AWS environment. */
export function makeS3Client(
  env: NodeJS.ProcessEnv = process.env,
  extra: Partial<S3ClientConfig> = {},
): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const pathStyleEnv = env.HOARD_S3_PATH_STYLE;
  if (pathStyleEnv !== undefined && pathStyleEnv !== '' && pathStyleEnv !== '0' && pathStyleEnv !== '1')
    throw new HoardError('HOARD_ECONFIG', `HOARD_S3_PATH_STYLE must be 0 or 1, got "${pathStyleEnv}"`);
  const forcePathStyle = pathStyleEnv ? pathStyleEnv === '1' : endpoint !== undefined;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint ? 'us-east-1' : undefined);
  // Static keys from the environment come first in the SDK's default chain as
  // well; reading them from `env` lets callers (tests, the CLI) pass an env.
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  return new S3Client({
    ...(endpoint ? { endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    ...(region ? { region } : {}),
    forcePathStyle,
    // Our retry loop (retry.ts) is the only one; see there for why.
    maxAttempts: 1,
    // Streaming aws-chunked bodies with trailing checksums are not understood
    // by many S3-compatible servers (RGW 16: 411 MissingContentLength). hoard
    // sends Buffers with Content-MD5 and verifies SHA-256 itself.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: Math.min(DEFAULTS.remoteRequestTimeoutMs, 10_000),
      // Headers must arrive within remoteRequestTimeoutMs (without the flag
      // the SDK only logs a warning and waits forever); a socket idle that
      // long (a stalled body) fails too.
      requestTimeout: DEFAULTS.remoteRequestTimeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: DEFAULTS.remoteRequestTimeoutMs,
      httpAgent: { keepAlive: true, maxSockets: 64 },
      httpsAgent: { keepAlive: true, maxSockets: 64 },
    },
    ...extra,
  });
}

/** Checks that the bucket exists and is reachable; the error names it. */
export async function checkS3Bucket(client: S3Client, bucket: string, endpointText: string): Promise<void> {
  try {
    await withRetry('S3 HeadBucket', () => client.send(new HeadBucketCommand({ Bucket: bucket })));
  } catch (err) {
    if (isNotFound(err))
      throw new HoardError('HOARD_EREMOTE', `S3 bucket "${bucket}" does not exist (${endpointText})`, {
        hint: `create the bucket "${bucket}" first, or check the remote URL and AWS_ENDPOINT_URL_S3 / AWS_REGION`,
        details: { bucket },
        cause: err,
      });
    const e = s3Error(err, 'HeadBucket', bucket);
    e.message = `${e.message} (${endpointText})`;
    throw e;
  }
}

export async function openS3Remote(url: URL, opts: S3RemoteOptions = {}): Promise<Remote> {
  const { bucket, prefix } = parseS3Url(url);
  const env = opts.env ?? process.env;
  const client = makeS3Client(env, opts.clientConfig);
  const endpointText = `endpoint ${opts.clientConfig?.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL ?? 'AWS'}`;
  try {
    await checkS3Bucket(client, bucket, endpointText);
  } catch (err) {
    client.destroy();
    throw err;
  }
  const layout = new BucketLayout(prefix);
  const loc = { client, bucket };
  return {
    url: `s3://${bucket}/${prefix}`,
    blobs: new S3BlobStore(loc, layout, opts),
    refs: new S3RefStore(loc, layout, { retries: opts.retries }),
    close: async () => client.destroy(),
  };
}
