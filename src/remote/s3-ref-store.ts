// S3 RefStore: `<prefix>refs/<name>` holds `{"target":"sha256:…","nonce":"…"}`;
// the version is the object's ETag, normalised (no quotes, no `W/`). The
// nonce makes every write's ETag new (an ETag is the MD5 of the content), so
// a version is never reused and A→B→A cannot fool a stale writer.
//
// Compare-and-set is one conditional PutObject: `If-None-Match: *` for "must
// not exist", `If-Match: <etag>` otherwise, sent UNQUOTED: RGW 16 matches
// If-Match on PUT only against an unquoted ETag (a quoted one always gives
// 412). A multipart ETag (`…-N`) is never accepted as a version.
//
// Delete: RGW ignores If-Match on DeleteObject (it deletes unconditionally;
// measured), so a conditional delete cannot be a DeleteObject there. Instead
// delete is a conditional overwrite (If-Match: <expected>) with a tombstone
// `{"deleted":true,"nonce":"…"}`, which get()/list() treat as absent. A create
// over a tombstone is `If-Match: <tombstone etag>`, so every transition stays
// one compare-and-set and no unconditional request ever touches a ref.
// Tombstones are a few dozen bytes and are left in place: removing them
// safely would itself need a conditional delete.
//
// Lost answers: when an attempt failed transiently (timeout, reset, 5xx — RGW
// now and then answers 500 to the losers of a conditional-PUT race) and the
// retry then gets 412, the write may in fact have landed. The store reads the
// ref back and recognises its own write by the nonce. (If another writer has
// already replaced it by then, the caller sees a conflict for a write that
// landed: safe, it re-reads and finds its work included.)

import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, RefConflictError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import { withRetry } from '../core/retry.ts';
import { readAllBounded } from '../core/streams.ts';
import type { RefListing, RefStore, RefValue } from '../store/ref-store.ts';
import {
  type BucketLayout,
  encodeBucketRef,
  encodeTombstone,
  MAX_REF_OBJECT_BYTES,
  type ParsedRef,
  parseBucketRef,
  refsOfPage,
} from './bucket-layout.ts';
import {
  isMultipartEtag,
  isNotFound,
  isPreconditionFailed,
  normalizeEtag,
  type S3Location,
  s3Error,
} from './s3-common.ts';

type Current = (ParsedRef & { etag: string }) | undefined;

/** A version token this store hands out: a normalised single-part ETag. */
const VERSION_RE = /^[A-Za-z0-9+/=_.:-]{1,200}$/;

/** Attempts of a create that keeps meeting freshly written tombstones. */
const CREATE_ATTEMPTS = 8;

export class S3RefStore implements RefStore {
  readonly description: string;
  readonly loc: S3Location;
  readonly layout: BucketLayout;
  readonly retries: number;

  constructor(loc: S3Location, layout: BucketLayout, opts: { retries?: number } = {}) {
    this.loc = loc;
    this.layout = layout;
    this.description = `s3://${loc.bucket}/${layout.prefix}`;
    this.retries = opts.retries ?? DEFAULTS.remoteRetries;
  }

  /** The raw state of a ref object, tombstones included. */
  async #current(name: string, signal?: AbortSignal): Promise<Current> {
    const key = this.layout.refKey(name);
    try {
      return await withRetry(
        'S3 GetObject',
        async () => {
          const res = await this.loc.client.send(
            new GetObjectCommand({ Bucket: this.loc.bucket, Key: key }),
            {
              abortSignal: signal,
            },
          );
          const bytes = await readAllBounded(res.Body as AsyncIterable<Uint8Array>, MAX_REF_OBJECT_BYTES);
          if (isMultipartEtag(res.ETag))
            throw new HoardError(
              'HOARD_EREMOTE',
              `ref object s3://${this.loc.bucket}/${key} was uploaded in parts; its ETag cannot serve as a ref version`,
              { hint: 'refs are written by hoard with single PUTs; rewrite it with hoard' },
            );
          const etag = normalizeEtag(res.ETag);
          if (!etag)
            throw new HoardError('HOARD_EREMOTE', `ref object s3://${this.loc.bucket}/${key} has no ETag`);
          return { ...parseBucketRef(bytes, name), etag };
        },
        { signal, retries: this.retries },
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error(err, 'GetObject', this.loc.bucket, key);
    }
  }

  async get(name: string, signal?: AbortSignal): Promise<RefValue | undefined> {
    validateRefName(name);
    const cur = await this.#current(name, signal);
    return cur?.kind === 'ref' ? { target: cur.target, version: cur.etag } : undefined;
  }

  /**
   * One conditional PUT. Returns the new ETag, or 'precondition' when the
   * condition failed and the object does not carry our nonce.
   */
  async #put(
    name: string,
    body: Buffer,
    nonce: string,
    cond: { IfMatch?: string; IfNoneMatch?: string },
    signal?: AbortSignal,
  ): Promise<string | 'precondition'> {
    const key = this.layout.refKey(name);
    let retried = false;
    let res: PutObjectCommandOutput;
    try {
      res = await withRetry(
        'S3 PutObject',
        () =>
          this.loc.client.send(
            new PutObjectCommand({
              Bucket: this.loc.bucket,
              Key: key,
              Body: body,
              ContentLength: body.byteLength,
              ContentType: 'application/json',
              ...cond,
            }),
            { abortSignal: signal },
          ),
        {
          signal,
          retries: this.retries,
          onRetry: () => {
            retried = true;
          },
        },
      );
    } catch (err) {
      // AWS answers 404 to If-Match on an absent key; RGW answers 412.
      if (isPreconditionFailed(err) || (cond.IfMatch !== undefined && isNotFound(err))) {
        if (retried) {
          const cur = await this.#current(name, signal);
          if (cur && cur.nonce === nonce) return cur.etag;
        }
        return 'precondition';
      }
      throw s3Error(err, 'PutObject', this.loc.bucket, key);
    }
    const etag = normalizeEtag(res.ETag);
    if (etag) return etag;
    // No usable ETag in the answer: read it back (ours only if the nonce matches).
    const cur = await this.#current(name, signal);
    if (cur && cur.nonce === nonce) return cur.etag;
    return 'precondition';
  }

  async set(name: string, target: Digest, expected: string | null, signal?: AbortSignal): Promise<RefValue> {
    validateRefName(name);
    const { body, nonce } = encodeBucketRef(target);
    if (expected !== null) {
      if (!VERSION_RE.test(expected) || isMultipartEtag(expected)) throw new RefConflictError(name, expected);
      const r = await this.#put(name, body, nonce, { IfMatch: expected }, signal);
      if (r === 'precondition') throw new RefConflictError(name, expected);
      return { target, version: r };
    }
    // "Must not exist": absent, or a tombstone (deleted).
    let cond: { IfMatch?: string; IfNoneMatch?: string } = { IfNoneMatch: '*' };
    for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
      const r = await this.#put(name, body, nonce, cond, signal);
      if (r !== 'precondition') return { target, version: r };
      const cur = await this.#current(name, signal);
      if (cur?.kind === 'ref') throw new RefConflictError(name, null);
      cond = cur ? { IfMatch: cur.etag } : { IfNoneMatch: '*' };
    }
    throw new RefConflictError(name, null);
  }

  async delete(name: string, expected: string, signal?: AbortSignal): Promise<void> {
    validateRefName(name);
    const { body, nonce } = encodeTombstone();
    const valid = VERSION_RE.test(expected) && !isMultipartEtag(expected);
    const r = valid ? await this.#put(name, body, nonce, { IfMatch: expected }, signal) : 'precondition';
    if (r !== 'precondition') return;
    const cur = await this.#current(name, signal);
    if (cur?.kind !== 'ref') throw new RefNotFoundError(name);
    throw new RefConflictError(name, expected);
  }

  async *list(prefix = '', signal?: AbortSignal): AsyncIterable<RefListing> {
    validateRefPrefix(prefix);
    const keyPrefix = this.layout.refKey(prefix);
    let token: string | undefined;
    for (;;) {
      const res = await withRetry(
        'S3 ListObjectsV2',
        () =>
          this.loc.client.send(
            new ListObjectsV2Command({
              Bucket: this.loc.bucket,
              Prefix: keyPrefix,
              ContinuationToken: token,
            }),
            { abortSignal: signal },
          ),
        { signal, retries: this.retries },
      ).catch((err) => {
        throw s3Error(err, 'ListObjectsV2', this.loc.bucket, keyPrefix);
      });
      const names = this.layout.refNamesOfKeys((res.Contents ?? []).map((o) => o.Key ?? ''));
      // Keys come in UTF-8 byte order, which for the ref-name alphabet is name order.
      yield* refsOfPage(
        names,
        (n) => this.#current(n, signal),
        (c) => c.etag,
      );
      if (!res.IsTruncated || !res.NextContinuationToken) return;
      token = res.NextContinuationToken;
    }
  }
}
