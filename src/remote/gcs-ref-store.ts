// GCS RefStore: `<prefix>refs/<name>` holds `{"target":"sha256:…","nonce":"…"}`;
// the version is the object's generation (a positive integer that changes on
// every write; generation 0 means "does not exist" and is never a version).
// Compare-and-set is one upload with `ifGenerationMatch=<expected>` (0 for
// "must not exist"), delete is `ifGenerationMatch=<expected>` on DELETE —
// GCS honours both natively, so no tombstones are needed here.
//
// get() reads the metadata, then the media of exactly that generation, so the
// target and the version returned always belong together (if the ref moves
// in between, the pinned read 404s and the read starts again).
//
// Lost answers: as in s3-ref-store.ts, a retried write that ends in 412 reads
// the ref back and recognises its own write by the nonce.

import { DEFAULTS } from '../core/defaults.ts';
import type { Digest } from '../core/digest.ts';
import { HoardError, RefConflictError, RefNotFoundError } from '../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../core/ref-name.ts';
import { withRetry } from '../core/retry.ts';
import type { RefListing, RefStore, RefValue } from '../store/ref-store.ts';
import {
  type BucketLayout,
  encodeBucketRef,
  MAX_REF_OBJECT_BYTES,
  type ParsedRef,
  parseBucketRef,
  refsOfPage,
} from './bucket-layout.ts';
import {
  type GcsLocation,
  gcsError,
  isGcsNotFound,
  isGcsPreconditionFailed,
  parseGeneration,
} from './gcs-common.ts';

type Current = (ParsedRef & { generation: string }) | undefined;

/** Re-reads of a ref that keeps moving between its metadata and its media. */
const READ_ATTEMPTS = 8;

export class GcsRefStore implements RefStore {
  readonly description: string;
  readonly loc: GcsLocation;
  readonly layout: BucketLayout;
  readonly retries: number;

  constructor(loc: GcsLocation, layout: BucketLayout, opts: { retries?: number } = {}) {
    this.loc = loc;
    this.layout = layout;
    this.description = `gs://${loc.name}/${layout.prefix}`;
    this.retries = opts.retries ?? DEFAULTS.remoteRetries;
  }

  #r<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal, onRetry?: () => void): Promise<T> {
    return withRetry(`GCS ${what}`, fn, { signal, retries: this.retries, onRetry });
  }

  async #current(name: string, signal?: AbortSignal): Promise<Current> {
    const key = this.layout.refKey(name);
    try {
      for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
        let generation: string;
        let size: number;
        try {
          const [meta] = await this.#r('getMetadata', () => this.loc.bucket.file(key).getMetadata(), signal);
          generation = String(meta.generation ?? '');
          size = Number(meta.size ?? 0);
        } catch (err) {
          if (isGcsNotFound(err)) return undefined;
          throw err;
        }
        if (!parseGeneration(generation))
          throw new HoardError(
            'HOARD_EREMOTE',
            `ref object gs://${this.loc.name}/${key} has no valid generation`,
          );
        if (size > MAX_REF_OBJECT_BYTES)
          throw new HoardError(
            'HOARD_EREMOTE',
            `ref object gs://${this.loc.name}/${key} is too large (${size} bytes)`,
          );
        try {
          const [bytes] = await this.#r(
            'download',
            () => this.loc.bucket.file(key, { generation: Number(generation) }).download(),
            signal,
          );
          return { ...parseBucketRef(bytes, name), generation };
        } catch (err) {
          if (!isGcsNotFound(err)) throw err; // moved on meanwhile: read again
        }
      }
      throw new HoardError(
        'HOARD_EREMOTE',
        `ref gs://${this.loc.name}/${key} keeps changing while being read`,
      );
    } catch (err) {
      throw gcsError(err, 'read', this.loc.name, key);
    }
  }

  async get(name: string, signal?: AbortSignal): Promise<RefValue | undefined> {
    validateRefName(name);
    const cur = await this.#current(name, signal);
    return cur?.kind === 'ref' ? { target: cur.target, version: cur.generation } : undefined;
  }

  async set(name: string, target: Digest, expected: string | null, signal?: AbortSignal): Promise<RefValue> {
    validateRefName(name);
    const key = this.layout.refKey(name);
    const ifGenerationMatch = expected === null ? 0 : parseGeneration(expected);
    if (ifGenerationMatch === undefined) throw new RefConflictError(name, expected);
    const { body, nonce } = encodeBucketRef(target);
    const file = this.loc.bucket.file(key);
    let retried = false;
    try {
      await this.#r(
        'upload',
        () =>
          file.save(body, {
            resumable: false,
            contentType: 'application/json',
            metadata: { cacheControl: 'no-store' },
            preconditionOpts: { ifGenerationMatch },
          }),
        signal,
        () => {
          retried = true;
        },
      );
    } catch (err) {
      if (isGcsPreconditionFailed(err)) {
        if (retried) {
          const cur = await this.#current(name, signal);
          if (cur?.kind === 'ref' && cur.nonce === nonce) return { target, version: cur.generation };
        }
        throw new RefConflictError(name, expected);
      }
      throw gcsError(err, 'upload', this.loc.name, key);
    }
    const generation = String(file.metadata.generation ?? '');
    if (parseGeneration(generation)) return { target, version: generation };
    const cur = await this.#current(name, signal);
    if (cur?.kind === 'ref' && cur.nonce === nonce) return { target, version: cur.generation };
    throw new RefConflictError(name, expected);
  }

  async delete(name: string, expected: string, signal?: AbortSignal): Promise<void> {
    validateRefName(name);
    const key = this.layout.refKey(name);
    const gen = parseGeneration(expected);
    if (gen !== undefined) {
      let retried = false;
      try {
        await this.#r(
          'delete',
          () => this.loc.bucket.file(key).delete({ ifGenerationMatch: gen }),
          signal,
          () => {
            retried = true;
          },
        );
        return;
      } catch (err) {
        // A retried delete whose first answer was lost finds nothing left: it was ours.
        if (isGcsNotFound(err) && retried) return;
        if (!isGcsNotFound(err) && !isGcsPreconditionFailed(err))
          throw gcsError(err, 'delete', this.loc.name, key);
      }
    }
    const cur = await this.#current(name, signal);
    if (cur?.kind !== 'ref') throw new RefNotFoundError(name);
    throw new RefConflictError(name, expected);
  }

  async *list(prefix = '', signal?: AbortSignal): AsyncIterable<RefListing> {
    validateRefPrefix(prefix);
    const keyPrefix = this.layout.refKey(prefix);
    let pageToken: string | undefined;
    for (;;) {
      const [files, next] = await this.#r(
        'list',
        () =>
          this.loc.bucket.getFiles({
            prefix: keyPrefix,
            autoPaginate: false,
            maxResults: 1000,
            ...(pageToken ? { pageToken } : {}),
          }),
        signal,
      ).catch((err) => {
        throw gcsError(err, 'list', this.loc.name, keyPrefix);
      });
      const names = this.layout.refNamesOfKeys(files.map((f) => f.name));
      yield* refsOfPage(
        names,
        (n) => this.#current(n, signal),
        (c) => c.generation,
      );
      pageToken = (next as { pageToken?: string } | null)?.pageToken;
      if (!pageToken) return;
    }
  }
}
