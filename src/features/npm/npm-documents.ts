// Package documents: mutable, so cached with a freshness bound and
// revalidated with the upstream's ETag / Last-Modified. One revalidation per
// document and form at a time (single-flight): concurrent requests share its
// answer and its failure, and the next request after a failure tries again.
// An upstream that fails (5xx, unreachable, slower than fetch-timeout) leaves
// the cached document to be served stale, flagged.
//
// Tarball integrity is pinned: a version's `dist` is never replaced by one
// naming another integrity. Versions are immutable on every public registry,
// so a changed integrity is a compromised or broken upstream; serving the
// new document would make clients fetch (and lockfiles record) other bytes
// under the same version. The original `dist` is kept and the change logged.
//
// Stored as cache entries `cache/npm/doc/<form>/u/<name>` and
// `cache/npm/doc/<form>/s/<scope>/<name>`: the document as the upstream sent
// it (pinned), with its validators as entry meta. Clients get it with every
// `dist.tarball` rewritten to point at this server.
//
// Read your own writes: a write forwarded upstream with allow-write-through
// (publish, dist-tag, deprecate, unpublish) marks the package's documents
// (both forms) written (invalidate). A written document is revalidated
// however fresh, by a revalidation that starts after the write — one already
// in flight may have read the upstream before it, so the request does not
// join it — and only such a revalidation clears the mark. Without it, `npm
// publish` then `npm install pkg@<new>` through hoard failed (ETARGET) until
// the freshness bound ran out. The marks are this process's (several
// servers behind a balancer: each revalidates within its own bound) and
// bounded (MAX_WRITTEN_MARKS, the oldest dropped first).
//
// A fetched document is answered before it is stored: the store (blob,
// entry record, ref: three durable writes) runs behind the answer, and
// until it lands the document is served from memory as the stored one
// (`#pending`), so no request in between asks the upstream again and the
// integrity pins see it. Stores of one document run one after another, so
// an older one can never land over a newer. A store that fails is logged and
// costs only a later upstream request: nothing points at partial bytes.

import { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { type Digest, sha256 } from '../../core/digest.ts';
import { HoardError, isHoardError, isRetryable } from '../../core/errors.ts';
import { SingleFlight } from '../../core/single-flight.ts';
import { readAllBounded } from '../../core/streams.ts';
import { discard, httpRequest } from '../../http/http-client.ts';
import type { CacheEntries, CacheEntry } from '../../server/cache-entries.ts';
import type { NpmMetrics } from './npm-metrics.ts';
import { documentUrl, type NpmUpstreams } from './npm-upstreams.ts';

export type DocForm = 'full' | 'abbreviated';

/** Documents held in memory while their stores run behind the answers (see #store). */
export const MAX_PENDING_STORE_BYTES = 64 * 1024 * 1024;

/** The parts of a package document hoard reads (the rest passes through untouched). */
export interface PackageDocument {
  name?: string;
  'dist-tags'?: Record<string, string>;
  versions?: Record<string, { dist?: Dist; [k: string]: unknown }>;
  [k: string]: unknown;
}
export interface Dist {
  tarball?: string;
  integrity?: string;
  shasum?: string;
  [k: string]: unknown;
}

export interface DocumentResult {
  doc: PackageDocument;
  /** The digest of the stored bytes `doc` was read from: a new one whenever the stored document changes. */
  digest: Digest;
  /** Seconds past freshness when served stale (the upstream failed), else undefined. */
  staleSeconds?: number;
}

/** Largest package document accepted from an upstream (the biggest public ones are tens of MB). */
const MAX_DOCUMENT_BYTES = 128 * 1024 * 1024;
/** Parsed documents kept in memory, by the digest of their stored bytes. */
const PARSED_CACHE = 256;
/** Packages written through and not revalidated since, remembered at once (writes need a write token). */
const MAX_WRITTEN_MARKS = 10_000;

export const ABBREVIATED = 'application/vnd.npm.install-v1+json';

export interface NpmDocumentsOptions {
  entries: CacheEntries;
  upstreams: NpmUpstreams;
  metrics: NpmMetrics;
  log: FastifyBaseLogger;
  maxStalenessMs: number;
  fetchTimeoutMs: number;
  now?: () => number;
  /** Documents held in memory while their stores run behind (default MAX_PENDING_STORE_BYTES). */
  maxPendingStoreBytes?: number;
}

export class NpmDocuments {
  readonly #o: NpmDocumentsOptions;
  readonly #now: () => number;
  readonly #flights = new SingleFlight<string, DocumentResult>();
  readonly #parsed = new Map<Digest, PackageDocument>();
  /** Bytes of the documents whose store has not landed yet (chained stores of one ref included). */
  #pendingBytes = 0;
  /** Documents answered whose store has not landed yet, by ref: served as stored meanwhile. */
  readonly #pending = new Map<string, { entry: CacheEntry; doc: PackageDocument; stored: Promise<void> }>();
  /** By `<form>:<name>`: the sequence number of the last write forwarded upstream not revalidated since. */
  readonly #written = new Map<string, number>();
  #writes = 0;

  constructor(o: NpmDocumentsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  refName(name: string, form: DocForm): string {
    const i = name.indexOf('/');
    return i < 0
      ? this.#o.entries.refName('doc', form, 'u', name)
      : this.#o.entries.refName('doc', form, 's', name.slice(1, i), name.slice(i + 1));
  }

  /**
   * The document, from the cache while fresh, else revalidated. `refresh`
   * revalidates even a fresh one (a tarball of a version the cached document
   * does not know yet).
   */
  async get(name: string, form: DocForm, refresh = false): Promise<DocumentResult> {
    const ref = this.refName(name, form);
    const key = `${form}:${name}`;
    const written = this.#written.get(key);
    const cached = await this.#cached(ref);
    if (
      cached &&
      !refresh &&
      written === undefined &&
      this.#now() - Number(cached.entry.meta.fetchedAt ?? 0) < this.#o.maxStalenessMs
    ) {
      this.#o.metrics.requests.inc({ kind: 'document', result: 'hit' });
      return { doc: cached.doc, digest: cached.entry.digest };
    }
    // After a write, a flight of its own: one started before it may have read the old document.
    const flight = written === undefined ? key : `${key}:${written}`;
    return this.#flights.do(flight, async () => {
      const r = await this.#revalidate(name, form, ref);
      // Read from the upstream after the write (unless served stale): the mark is done with,
      // unless another write came meanwhile.
      if (written !== undefined && r.staleSeconds === undefined && this.#written.get(key) === written)
        this.#written.delete(key);
      return r;
    });
  }

  /**
   * A write to package `name` went through to the upstream (publish,
   * dist-tag, deprecate, unpublish): its documents are revalidated before
   * they are served again (see the header).
   */
  invalidate(name: string): void {
    const seq = ++this.#writes;
    for (const form of ['full', 'abbreviated'] as const) {
      const key = `${form}:${name}`;
      this.#written.delete(key); // re-inserted last: the oldest marks are dropped first
      this.#written.set(key, seq);
    }
    while (this.#written.size > MAX_WRITTEN_MARKS)
      this.#written.delete(this.#written.keys().next().value as string);
  }

  /** Any cached form of the document, fresh or not (tarball lookups need only `dist`). */
  async anyCached(name: string): Promise<PackageDocument | undefined> {
    for (const form of ['abbreviated', 'full'] as const) {
      const c = await this.#cached(this.refName(name, form));
      if (c) return c.doc;
    }
    return undefined;
  }

  /** Settles once every store begun so far has landed (or failed): for shutdown and tests. */
  async flushed(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending.values()].map((p) => p.stored));
  }

  async #cached(ref: string): Promise<{ entry: CacheEntry; doc: PackageDocument } | undefined> {
    const pending = this.#pending.get(ref);
    if (pending) return pending;
    const entry = await this.#o.entries.get(ref);
    if (!entry) return undefined;
    let doc = this.#parsed.get(entry.digest);
    if (!doc) {
      try {
        const bytes = await readAllBounded(await this.#o.entries.read(entry), MAX_DOCUMENT_BYTES);
        doc = JSON.parse(bytes.toString('utf8')) as PackageDocument;
      } catch (err) {
        if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) return undefined;
        throw err;
      }
      this.#remember(entry.digest, doc);
    }
    return { entry, doc };
  }

  #remember(digest: Digest, doc: PackageDocument): void {
    this.#parsed.set(digest, doc);
    if (this.#parsed.size > PARSED_CACHE) this.#parsed.delete(this.#parsed.keys().next().value as Digest);
  }

  async #revalidate(name: string, form: DocForm, ref: string): Promise<DocumentResult> {
    const { upstreams, metrics, log } = this.#o;
    const cached = await this.#cached(ref);
    const url = documentUrl(upstreams.of(name), name);
    const headers: Record<string, string> = {
      accept:
        form === 'abbreviated' ? `${ABBREVIATED}; q=1.0, application/json; q=0.8, */*` : 'application/json',
      ...upstreams.authorization(url),
    };
    if (cached?.entry.meta.etag) headers['if-none-match'] = cached.entry.meta.etag;
    if (cached?.entry.meta.lastModified) headers['if-modified-since'] = cached.entry.meta.lastModified;
    let body: Buffer;
    let validators: Record<string, string>;
    const signal = AbortSignal.timeout(this.#o.fetchTimeoutMs);
    try {
      const res = await httpRequest('GET', url, {
        headers,
        accept: 'any',
        retries: 0,
        signal,
      });
      if (res.status === 304 && cached) {
        discard(res);
        const entry = await this.#store(
          ref,
          cached.doc,
          Buffer.from(JSON.stringify(cached.doc)),
          cached.entry.meta,
        );
        metrics.requests.inc({ kind: 'document', result: 'revalidated' });
        return { doc: cached.doc, digest: entry.digest };
      }
      if (res.status === 404 || res.status === 410) {
        discard(res);
        throw new HoardError('HOARD_EBLOB_NOT_FOUND', `no package ${name} at its upstream`);
      }
      if (res.status !== 200) {
        discard(res);
        throw new HoardError(
          res.status >= 500 || res.status === 429 ? 'HOARD_EUNAVAILABLE' : 'HOARD_EREMOTE',
          `npm upstream answered ${res.status} for ${name}`,
          { hint: res.status === 401 || res.status === 403 ? 'check [npm] upstream-tokens' : undefined },
        );
      }
      body = await readAllBounded(res.body as AsyncIterable<Uint8Array>, MAX_DOCUMENT_BYTES);
      metrics.upstreamBytes.inc({ kind: 'document' }, body.byteLength);
      validators = {};
      const etag = res.headers.etag;
      const lastModified = res.headers['last-modified'];
      if (typeof etag === 'string') validators.etag = etag;
      if (typeof lastModified === 'string') validators.lastModified = lastModified;
    } catch (err) {
      // Only an unavailable upstream (or a timeout) is served stale: a 404 is an answer.
      // (The client's abort surfaces as HOARD_EABORTED too: our own timeout is told by the signal.)
      const timedOut = signal.aborted;
      const unavailable = timedOut || isRetryable(err);
      if (cached && unavailable) {
        const age = this.#now() - Number(cached.entry.meta.fetchedAt ?? 0);
        metrics.staleServes.inc();
        metrics.requests.inc({ kind: 'document', result: 'stale' });
        log.warn(
          { pkg: name, err: (err as Error).message },
          'npm upstream unavailable: serving a stale document',
        );
        return {
          doc: cached.doc,
          digest: cached.entry.digest,
          staleSeconds: Math.max(0, Math.round((age - this.#o.maxStalenessMs) / 1000)),
        };
      }
      metrics.requests.inc({ kind: 'document', result: 'error' });
      if (timedOut)
        throw new HoardError('HOARD_EUNAVAILABLE', `npm upstream did not answer for ${name} in time`, {
          cause: err,
        });
      throw err;
    }
    let doc: PackageDocument;
    try {
      doc = JSON.parse(body.toString('utf8')) as PackageDocument;
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    } catch (err) {
      throw new HoardError('HOARD_EREMOTE', `npm upstream sent an invalid document for ${name}`, {
        cause: err,
      });
    }
    const pinned = await this.#pin(name, doc);
    const bytes = pinned ? Buffer.from(JSON.stringify(doc)) : body;
    const entry = await this.#store(ref, doc, bytes, validators);
    metrics.requests.inc({ kind: 'document', result: 'miss' });
    return { doc, digest: entry.digest };
  }

  /** Keeps the original `dist` of every version whose integrity changed upstream; true if any did. */
  async #pin(name: string, doc: PackageDocument): Promise<boolean> {
    const known = new Map<string, Dist>();
    for (const form of ['full', 'abbreviated'] as const) {
      const c = await this.#cached(this.refName(name, form));
      for (const [v, m] of Object.entries(c?.doc.versions ?? {}))
        if (m?.dist && !known.has(v)) known.set(v, m.dist);
    }
    let changed = false;
    for (const [v, m] of Object.entries(doc.versions ?? {})) {
      const before = known.get(v);
      if (!before || !m?.dist) continue;
      if ((before.integrity ?? before.shasum) !== (m.dist.integrity ?? m.dist.shasum)) {
        this.#o.metrics.integrityChanges.inc();
        this.#o.log.warn(
          {
            pkg: name,
            version: v,
            was: before.integrity ?? before.shasum,
            now: m.dist.integrity ?? m.dist.shasum,
          },
          'npm upstream changed the integrity of a published version: serving the original',
        );
        m.dist = before;
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Stores the document behind the answer (see the header); returns the entry
   * it will be. Documents waiting for their store are held in memory: past
   * MAX_PENDING_STORE_BYTES of them (a disk slower than the upstream), the
   * answer waits for its own store, so a slow disk slows clients down instead
   * of growing the heap without bound.
   */
  async #store(
    ref: string,
    doc: PackageDocument,
    bytes: Buffer,
    meta: Readonly<Record<string, string>>,
  ): Promise<CacheEntry> {
    const entry: CacheEntry = {
      name: ref,
      digest: sha256(bytes),
      size: bytes.byteLength,
      meta: Object.freeze({ ...meta, fetchedAt: String(this.#now()) }),
    };
    const before = this.#pending.get(ref)?.stored ?? Promise.resolve();
    const stored = before
      .then(() =>
        this.#o.entries.put(ref, Readable.from([bytes]), {
          size: bytes.byteLength,
          meta: { ...entry.meta },
          mode: 'overwrite',
        }),
      )
      .then(
        () => {},
        (err: Error) => this.#o.log.warn({ ref, err: err.message }, 'npm document not stored'),
      );
    const pending = { entry, doc, stored };
    this.#pending.set(ref, pending);
    this.#pendingBytes += bytes.byteLength;
    this.#remember(entry.digest, doc);
    stored.then(() => {
      this.#pendingBytes -= bytes.byteLength;
      if (this.#pending.get(ref) === pending) this.#pending.delete(ref);
    });
    if (this.#pendingBytes > (this.#o.maxPendingStoreBytes ?? MAX_PENDING_STORE_BYTES)) await stored;
    return entry;
  }
}
