// The GitHub Actions cache service's core, shared by the v2 (Twirp) and v1
// (`_apis/artifactcache`) front-ends: lookups with restore keys, reservations,
// publishing a finished upload as a cache entry, and the signed URLs.
//
// An entry is a cache ref `cache/actions/<namespace>/v<version>/k<key>`
// (cache-keys.ts) → entry record → the archive as one blob, through
// CacheEntries: tiers, shared bucket, --cache-ref-ttl expiry, disk bound and
// metrics (tool `actions`) apply as to every front-end. Archives are
// tar.zst / tar.gz files: they deduplicate per whole archive only.
//
// Lookup (GitHub's documented order): the exact key at the version; else the
// newest entry whose key starts with the key; else, for each restore key in
// order, the newest entry whose key starts with it. "Newest" is the entry's
// creation time (meta `created`). One namespace only (actions-namespace.ts);
// the requests of the toolkit carry no branch scope (v2's optional
// `metadata.scope` is not sent by it), so there is one scope per namespace.
//
// Keys are immutable, as on GitHub: a reservation of an existing entry is
// refused ("already exists"), as is a second reservation while one upload of
// the entry is in progress; publishing is create-if-absent, so two servers
// sharing a bucket that both accepted an upload of one key keep the first.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, Hasher } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import { mapLimit } from '../../core/pool.ts';
import { authorize, type Scope } from '../../server/auth.ts';
import type { CacheEntries, CacheEntry } from '../../server/cache-entries.ts';
import type { FeatureContext } from '../../server/feature.ts';
import type { BlobHandle } from '../../store/blob-handle.ts';
import { namespaceOf } from './actions-namespace.ts';
import { ACTIONS_REF_ROOT, entryRef, escapeSegment, prefixRef } from './cache-keys.ts';
import type { PendingUpload, PendingUploads, UploadTarget } from './pending-uploads.ts';
import type { UrlSigner } from './signed-url.ts';

/** Candidates of one prefix looked at (the newest of them wins); bounds a lookup's cost. */
const MAX_PREFIX_CANDIDATES = 2000;
/** Parallel record reads of a prefix search. */
const LOOKUP_CONCURRENCY = 16;

export interface Match {
  entry: CacheEntry;
  /** The key of the entry found (the primary key on an exact hit). */
  key: string;
  exact: boolean;
}

export class ActionsCache {
  readonly entries: CacheEntries;
  readonly uploads: PendingUploads;
  readonly signer: UrlSigner;
  readonly #fctx: FeatureContext;

  constructor(fctx: FeatureContext, entries: CacheEntries, uploads: PendingUploads, signer: UrlSigner) {
    this.#fctx = fctx;
    this.entries = entries;
    this.uploads = uploads;
    this.signer = signer;
  }

  /** The entry a restore with these keys gets (keys[0] is the primary key), or undefined. */
  async lookup(namespace: string, version: string, keys: readonly string[]): Promise<Match | undefined> {
    const exactRef = entryRef(namespace, version, keys[0]);
    const exact = await this.entries.peek(exactRef);
    if (exact) {
      this.entries.counted(exactRef, exact);
      return { entry: exact, key: keys[0], exact: true };
    }
    for (const prefix of keys) {
      const found = await this.#newest(namespace, version, prefix);
      if (found) {
        this.entries.counted(found.name, found);
        return { entry: found, key: found.meta.key, exact: false };
      }
    }
    this.entries.counted(exactRef, undefined);
    return undefined;
  }

  async #newest(namespace: string, version: string, prefix: string): Promise<CacheEntry | undefined> {
    const names: string[] = [];
    for await (const ref of this.#fctx.refs.list(prefixRef(namespace, version, prefix))) {
      names.push(ref.name);
      if (names.length >= MAX_PREFIX_CANDIDATES) break;
    }
    const found = await mapLimit(names, LOOKUP_CONCURRENCY, (n) => this.entries.peek(n));
    let best: CacheEntry | undefined;
    for (const e of found) {
      // The ref listing matched the escaped prefix; the key itself is the record's.
      if (!e || typeof e.meta.key !== 'string' || !e.meta.key.startsWith(prefix)) continue;
      if (!best || (e.meta.created ?? '') > (best.meta.created ?? '')) best = e;
    }
    return best;
  }

  /** Entries of `key` at any version (v1's diagnostics listing); scans a bounded number of refs. */
  async listKey(namespace: string, key: string, max: number): Promise<CacheEntry[]> {
    const leaf = `/k${escapeSegment(key)}`;
    const names: string[] = [];
    let scanned = 0;
    for await (const ref of this.#fctx.refs.list(`${ACTIONS_REF_ROOT}/${namespace}/v`)) {
      if (++scanned > MAX_PREFIX_CANDIDATES * 5 || names.length >= max) break;
      if (ref.name.endsWith(leaf) && ref.name.split('/').length === namespace.split('/').length + 4)
        names.push(ref.name);
    }
    const found = await mapLimit(names, LOOKUP_CONCURRENCY, (n) => this.entries.peek(n));
    return found.filter((e): e is CacheEntry => e !== undefined);
  }

  /** Reserves an upload of a new entry: "already exists" (409) when it does or one is in progress. */
  async reserve(t: Omit<UploadTarget, 'ref'>, declaredSize?: number): Promise<PendingUpload> {
    const ref = entryRef(t.namespace, t.version, t.key);
    if (await this.entries.peek(ref)) throw alreadyExists(t.key);
    return this.uploads.reserve({ ...t, ref }, declaredSize);
  }

  /**
   * Publishes a finished upload of `size` bytes as the entry: hashed in one
   * pass over the spool, stored verified against that digest in a second,
   * then the ref created if absent. The upload is dropped either way (a
   * wrong size included); a failure leaves no entry. A finalize while bytes
   * are still arriving is refused and changes nothing.
   */
  async publish(u: PendingUpload, size: number): Promise<CacheEntry> {
    this.uploads.assertIdle(u);
    try {
      const archive = this.uploads.finish(u, size);
      const hasher = new Hasher();
      for await (const chunk of archive.open()) hasher.update(chunk as Buffer);
      const put = await this.entries.put(u.ref, archive.open(), {
        digest: hasher.digest(),
        size,
        mode: 'create',
        meta: { key: u.key, version: u.version, created: new Date().toISOString() },
      });
      if (!put.created) throw alreadyExists(u.key);
      return put.entry;
    } finally {
      await this.uploads.drop(u);
    }
  }

  /**
   * Where runners reach this server: --public-url, else the scheme and Host
   * the request came with (the toolkit then uses the name it was given).
   */
  base(request: FastifyRequest): string {
    const configured = this.#fctx.server.publicUrl;
    if (configured) return configured.replace(/\/+$/, '');
    return `${request.protocol}://${request.host}`;
  }

  /**
   * Throws 401/403 unless the request may `need` in `namespace` (a write, the
   * entry `ref` by the token's ref prefixes); returns who asks (for the
   * per-token bound on uploads).
   */
  authorize(request: FastifyRequest, need: Scope, ref?: string): string {
    return authorize(
      this.#fctx.auth,
      { remoteAddress: request.socket.remoteAddress, authorization: credentialsOf(request) },
      need,
      need === 'write' ? ref : undefined,
    );
  }

  namespaceOf(request: FastifyRequest): string {
    return namespaceOf(this.#fctx.auth, credentialsOf(request));
  }

  /** An archive by its digest (what a signed download URL names), opened once for every range sent from it. */
  openArchive(digest: Digest, ranged: boolean): Promise<BlobHandle | undefined> {
    return this.#fctx.blobs.open(digest, { ranged });
  }

  /** Sends an opened archive (one range where asked: `range` overrides the Range header), counting bytes out. */
  sendArchive(
    request: FastifyRequest,
    reply: FastifyReply,
    digest: Digest,
    handle: BlobHandle,
    range: string | undefined,
  ): FastifyReply {
    const entry: CacheEntry = { name: '', digest, size: handle.size, meta: {} };
    return this.entries.send(request, reply, { entry, handle }, { etag: digest, range });
  }

  /** `base` + the signed URL of an upload's blob (what the Azure SDK uploads to). */
  uploadUrl(base: string, u: PendingUpload): string {
    return `${base}/actions-cache/uploads/${u.id}?${this.signer.sign('upload', u.id)}`;
  }

  /** `base` + the signed URL of an entry's archive (by content digest: immutable, ranged reads never mix archives). */
  downloadUrl(base: string, entry: CacheEntry): string {
    const hex = entry.digest.slice('sha256:'.length);
    return `${base}/actions-cache/blobs/${hex}?${this.signer.sign('download', hex)}`;
  }
}

/**
 * The credentials of a request: the token in the path of the v1 mount
 * `/actions-cache/t/<token>/` (for runners whose ACTIONS_RUNTIME_TOKEN is the
 * forge's job token, which hoard cannot check, but whose cache URL is
 * configurable), else the Authorization header.
 */
export function credentialsOf(request: FastifyRequest): string | undefined {
  const token = (request.params as { token?: unknown } | undefined)?.token;
  return typeof token === 'string' && token !== '' ? `Bearer ${token}` : request.headers.authorization;
}

export function alreadyExists(key: string): HoardError {
  return new HoardError('HOARD_ESYNC_CONFLICT', `cache entry ${key} already exists`, {
    hint: 'keys are immutable: save under a new key',
    details: { twirp: 'already_exists' },
  });
}
