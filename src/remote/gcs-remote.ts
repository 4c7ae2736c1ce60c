// `gs://bucket/prefix` remotes: the official @google-cloud/storage client.
// Credentials come from Application Default Credentials as usual
// (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata server).
// STORAGE_EMULATOR_HOST (or HOARD_GCS_ENDPOINT) points the client at another
// endpoint — an emulator — and is passed as `apiEndpoint`, which also turns
// authentication off (the client never authenticates a custom endpoint).
// The client's own retries are off; retry.ts retries (see there for why).
// The bucket must exist: open() reads its metadata and names it in the error.

import { Storage, type StorageOptions } from '@google-cloud/storage';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import { withRetry } from '../core/retry.ts';
import { BucketLayout, normalizePrefix } from './bucket-layout.ts';
import { GcsBlobStore, type GcsBlobStoreOptions } from './gcs-blob-store.ts';
import { gcsError, isGcsNotFound } from './gcs-common.ts';
import { GcsRefStore } from './gcs-ref-store.ts';
import type { Remote } from './remote-types.ts';

export interface GcsRemoteOptions extends GcsBlobStoreOptions {
  env?: NodeJS.ProcessEnv;
  /** Overrides the endpoint (tests). */
  apiEndpoint?: string;
}

const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export function parseGcsUrl(url: URL): { bucket: string; prefix: string } {
  const shown = `gs://${url.host}${url.pathname}`;
  if (url.username || url.password)
    throw new HoardError('HOARD_EREMOTE_URL', `credentials do not belong in a gs:// URL (${shown})`, {
      hint: 'use GOOGLE_APPLICATION_CREDENTIALS or gcloud auth',
    });
  const bucket = decodeURIComponent(url.hostname);
  if (!BUCKET_RE.test(bucket) || url.port)
    throw new HoardError('HOARD_EREMOTE_URL', `invalid bucket name "${bucket}" in ${shown}`, {
      hint: 'use gs://bucket/optional/prefix',
    });
  if (url.search || url.hash)
    throw new HoardError('HOARD_EREMOTE_URL', `unexpected query or fragment in ${shown}`);
  return { bucket, prefix: normalizePrefix(decodeURIComponent(url.pathname), shown) };
}

function withScheme(host: string): string {
  return /^https?:\/\//.test(host) ? host.replace(/\/+$/, '') : `http://${host.replace(/\/+$/, '')}`;
}

export function makeStorage(env: NodeJS.ProcessEnv = process.env, apiEndpoint?: string): Storage {
  const endpoint = apiEndpoint ?? (env.HOARD_GCS_ENDPOINT || env.STORAGE_EMULATOR_HOST || undefined);
  const opts: StorageOptions = {
    retryOptions: { autoRetry: false, maxRetries: 0 },
    timeout: DEFAULTS.remoteRequestTimeoutMs,
  };
  if (endpoint) {
    opts.apiEndpoint = withScheme(endpoint);
    opts.projectId = env.GOOGLE_CLOUD_PROJECT || 'hoard';
  } else if (env.GOOGLE_CLOUD_PROJECT) opts.projectId = env.GOOGLE_CLOUD_PROJECT;
  return new Storage(opts);
}

export async function openGcsRemote(url: URL, opts: GcsRemoteOptions = {}): Promise<Remote> {
  const { bucket, prefix } = parseGcsUrl(url);
  const env = opts.env ?? process.env;
  const storage = makeStorage(env, opts.apiEndpoint);
  const b = storage.bucket(bucket);
  try {
    await withRetry('GCS bucket metadata', () => b.getMetadata(), { retries: opts.retries });
  } catch (err) {
    if (isGcsNotFound(err))
      throw new HoardError(
        'HOARD_EREMOTE',
        `GCS bucket "${bucket}" does not exist (${storage.apiEndpoint})`,
        {
          hint: `create the bucket "${bucket}" first, or check the remote URL`,
          details: { bucket },
          cause: err,
        },
      );
    throw gcsError(err, 'bucket metadata', bucket);
  }
  const layout = new BucketLayout(prefix);
  const loc = { bucket: b, name: bucket };
  return {
    url: `gs://${bucket}/${prefix}`,
    blobs: new GcsBlobStore(loc, layout, opts),
    refs: new GcsRefStore(loc, layout, { retries: opts.retries }),
    close: async () => {},
  };
}
