// Signed URLs: what the cache service hands a runner to upload an archive to
// (v2's `signed_upload_url`) and to download one from (v2's
// `signed_download_url`, v1's `archiveLocation`). They play the part of
// Azure's SAS URLs: the URL itself is the capability (the Azure SDK sends no
// Authorization header), so it names one upload or one content blob, expires
// (`se`, wall-clock seconds: the same URL is checked by every server sharing
// the secret), and carries an HMAC-SHA256 (`sig`) over what it grants. A
// forged, altered or expired URL is a 403; comparison is constant-time.
//
// Query parameters of their own (`comp`, `blockid` of Put Block) are added by
// the SDK after ours, so the signature covers only `kind`, `id` and `se`.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HoardError } from '../../core/errors.ts';

export type Grant = 'upload' | 'download';

export interface SignedUrlOptions {
  /** The HMAC key; undefined: a random one for this process. */
  secret?: string;
  ttlMs: number;
  /** Wall-clock milliseconds (tests pass their own). */
  now?: () => number;
}

/** At least this long when given (a short secret is guessable offline from one URL). */
const MIN_SECRET = 32;

export class UrlSigner {
  readonly #key: Buffer;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(opts: SignedUrlOptions) {
    if (opts.secret !== undefined && opts.secret.length < MIN_SECRET)
      throw new HoardError(
        'HOARD_ECONFIG',
        `the actions-cache secret must be at least ${MIN_SECRET} characters`,
      );
    this.#key = opts.secret === undefined ? randomBytes(32) : Buffer.from(opts.secret, 'utf8');
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now ?? Date.now;
  }

  /** The query string (no `?`) granting `grant` on `id` until now + ttl. */
  sign(grant: Grant, id: string, expiresAtMs = this.#now() + this.#ttlMs): string {
    const se = String(Math.floor(expiresAtMs / 1000));
    return `se=${se}&sig=${this.#mac(grant, id, se)}`;
  }

  /** Throws 403 unless `query` grants `grant` on `id` now. */
  verify(grant: Grant, id: string, query: { se?: unknown; sig?: unknown }): void {
    const { se, sig } = query;
    if (typeof se !== 'string' || !/^\d{1,12}$/.test(se) || typeof sig !== 'string')
      throw denied('the URL is not a signed hoard URL (se and sig are required)');
    const want = Buffer.from(this.#mac(grant, id, se), 'utf8');
    const got = Buffer.from(sig, 'utf8');
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw denied('the URL signature does not match');
    if (Number(se) * 1000 <= this.#now()) throw denied('the signed URL has expired');
  }

  #mac(grant: Grant, id: string, se: string): string {
    return createHmac('sha256', this.#key).update(`${grant}\n${id}\n${se}`).digest('base64url');
  }
}

function denied(message: string): HoardError {
  return new HoardError('HOARD_EFORBIDDEN', message, {
    hint: 'ask the cache service for a fresh URL (CreateCacheEntry, GetCacheEntryDownloadURL, GET cache)',
  });
}
