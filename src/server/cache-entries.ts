// Keyed cache entries: the one model under every build-tool front-end
// (Bazel's action cache, ccache, Turborepo, Nx, Gradle). A key of a tool is
// a cache ref `cache/<tool>/<parts…>` pointing at an entry record
// (core/entry-record.ts: content blob, size, metadata); the content is an
// ordinary verified blob, so bytes two tools store are stored once and every
// entry gets the tiers, the shared bucket, single-flight fills, eviction,
// cache-ref expiry (--cache-ref-ttl) and the token's ref prefixes.
//
// Writes: the body is hashed while it is spooled to a temp file under the
// data directory (bounded by --max-blob-size), then stored as a blob (a known
// digest, as Bazel's CAS keys are, is verified instead); then the record;
// then the ref — create-if-absent where the protocol says an entry never
// changes, last-writer-wins where it may be overwritten. A failure at any
// step leaves no ref pointing at anything partial: blobs without a ref are
// garbage for gc.
//
// Reads: an entry whose content blob is gone from every tier (evicted,
// quarantined) is a miss, never a broken hit.

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, Hasher, isDigest, sha256 } from '../core/digest.ts';
import { decodeEntry, encodeEntry, MAX_ENTRY_BYTES } from '../core/entry-record.ts';
import { HoardError, isHoardError, noSpaceOr, RefConflictError } from '../core/errors.ts';
import { readAllBounded } from '../core/streams.ts';
import type { BlobHandle } from '../store/blob-handle.ts';
import type { ByteRange } from '../store/blob-store.ts';
import { authorize } from './auth.ts';
import { checkRefRead } from './context.ts';
import type { FeatureContext } from './feature.ts';
import { type SendOptions, sendContent } from './send-content.ts';

export interface CacheEntry {
  /** The cache ref, e.g. `cache/turbo/<team>/<hash>`. */
  readonly name: string;
  /** The content blob. */
  readonly digest: Digest;
  readonly size: number;
  readonly meta: Readonly<Record<string, string>>;
}

export interface PutOptions {
  /** Declared size (Content-Length): a body of another length stores nothing. */
  size?: number;
  /** Known content digest: the body is verified against it. */
  digest?: Digest;
  /** Stored with the entry (small strings). */
  meta?: Record<string, string>;
  /** create: an existing entry is left alone; overwrite: last writer wins. */
  mode: 'create' | 'overwrite';
  signal?: AbortSignal;
}

export interface PutResult {
  /** False when mode is create and the entry existed (it is returned as it is). */
  created: boolean;
  entry: CacheEntry;
}

/** One key part: what every tool's keys are made of, and nothing that could climb a path. */
const PART = /^[A-Za-z0-9._-]{1,200}$/;
/** Decoded entry records kept per tool (~200 bytes each). */
const RECORD_CACHE = 10_000;
/** Bodies up to this size (with a declared length) are received in memory instead of a spool file. */
const IN_MEMORY_BODY_BYTES = 256 * 1024;
/** Compare-and-set rounds of an overwrite racing other writers of one key. */
const OVERWRITE_ROUNDS = 10;

export class CacheEntries {
  readonly tool: string;
  readonly #ctx: FeatureContext;
  readonly #spool: string;
  /** Decoded entry records by their digest (insertion order = age; bounded by RECORD_CACHE). */
  readonly #records = new Map<
    Digest,
    { blob: Digest; size: number; meta: Readonly<Record<string, string>> }
  >();

  constructor(ctx: FeatureContext, tool: string) {
    if (!PART.test(tool))
      throw new HoardError('HOARD_ECONFIG', `invalid cache tool name ${JSON.stringify(tool)}`);
    this.#ctx = ctx;
    this.tool = tool;
    this.#spool = join(ctx.server.dataDir, 'tmp', 'cache-spool');
  }

  /** `cache/<tool>/<part>/…`; a part that is not a plain key segment is a 400. */
  refName(...parts: string[]): string {
    for (const p of parts)
      if (!PART.test(p) || p === '.' || p === '..')
        throw new HoardError('HOARD_EBAD_REQUEST', `invalid ${this.tool} cache key ${JSON.stringify(p)}`);
    return ['cache', this.tool, ...parts].join('/');
  }

  /** The entry, or undefined: no such key, or its content is gone from every tier. */
  async get(name: string, signal?: AbortSignal): Promise<CacheEntry | undefined> {
    return this.#counted(name, await this.#lookup(name, signal));
  }

  /**
   * The entry, or undefined (as get()), without counting a lookup or touching
   * its expiry: the candidates a search looks at before it picks one.
   */
  peek(name: string, signal?: AbortSignal): Promise<CacheEntry | undefined> {
    return this.#lookup(name, signal);
  }

  /** Counts the outcome of a search (the hit/miss metric; a hit's expiry counts from now). */
  counted(name: string, entry: CacheEntry | undefined): CacheEntry | undefined {
    return this.#counted(name, entry);
  }

  /**
   * The entry with its content opened, or undefined (as get()). One look at
   * the tiers decides the hit and serves it: a HEAD-then-read pair could meet
   * an eviction in between. `ranged`: only part of the content is wanted.
   */
  async open(
    name: string,
    opts: { ranged?: boolean; signal?: AbortSignal } = {},
  ): Promise<{ entry: CacheEntry; handle: BlobHandle } | undefined> {
    const entry = await this.#resolve(name, opts.signal);
    const handle = entry && (await this.#ctx.blobs.open(entry.digest, { ranged: opts.ranged }));
    this.#counted(name, handle ? entry : undefined);
    return handle && entry ? { entry, handle } : undefined;
  }

  /** Sends an opened entry (sendContent), counting the bytes out. */
  send(
    request: FastifyRequest,
    reply: FastifyReply,
    opened: { entry: CacheEntry; handle: BlobHandle },
    opts: Omit<SendOptions, 'onBody'> = {},
  ): FastifyReply {
    return sendContent(request, reply, opened.handle, {
      ...opts,
      onBody: (bytes) => this.#ctx.metrics.cacheBytes.inc({ tool: this.tool, direction: 'out' }, bytes),
    });
  }

  #counted(name: string, entry: CacheEntry | undefined): CacheEntry | undefined {
    this.#ctx.metrics.cacheRequests.inc({ tool: this.tool, op: 'get', result: entry ? 'hit' : 'miss' });
    if (entry) this.#ctx.ctx.refExpiry?.touch(name);
    return entry;
  }

  async #lookup(name: string, signal?: AbortSignal): Promise<CacheEntry | undefined> {
    const entry = await this.#resolve(name, signal);
    return entry && (await this.#ctx.blobs.has(entry.digest)) ? entry : undefined;
  }

  /** The entry a ref names, without checking that its content is still stored. */
  async #resolve(name: string, signal?: AbortSignal): Promise<CacheEntry | undefined> {
    const ref = await this.#ctx.refs.get(name, signal);
    if (!ref) return undefined;
    const { blobs } = this.#ctx;
    // A record never changes (it is named by its digest): a decoded one is reused, which
    // spares a small hit two of its four store operations.
    const known = this.#records.get(ref.target);
    if (known) return { name, digest: known.blob, size: known.size, meta: known.meta };
    const target = await blobs.stat(ref.target);
    if (!target) return undefined;
    let rec: ReturnType<typeof decodeEntry>;
    if (target.size <= MAX_ENTRY_BYTES) {
      try {
        rec = decodeEntry(await readAllBounded(await blobs.read(ref.target), MAX_ENTRY_BYTES));
      } catch (err) {
        if (isHoardError(err, 'HOARD_EBLOB_NOT_FOUND')) return undefined;
        if (!isHoardError(err, 'HOARD_EBAD_REQUEST')) throw err;
        rec = undefined; // not a valid record: the target itself is the content
      }
    }
    // A ref written through the blob/ref API may point at the content directly.
    if (!rec) return { name, digest: ref.target, size: target.size, meta: {} };
    const meta = Object.freeze({ ...rec.meta });
    this.#remember(ref.target, { blob: rec.blob, size: rec.size, meta });
    return { name, digest: rec.blob, size: rec.size, meta };
  }

  #remember(
    record: Digest,
    rec: { blob: Digest; size: number; meta: Readonly<Record<string, string>> },
  ): void {
    this.#records.set(record, rec);
    if (this.#records.size > RECORD_CACHE) this.#records.delete(this.#records.keys().next().value as Digest);
  }

  /** The entry's content, verified while it streams. */
  async read(entry: CacheEntry, range?: ByteRange): Promise<Readable> {
    const stream = await this.#ctx.blobs.read(entry.digest, range);
    this.#ctx.metrics.cacheBytes.inc(
      { tool: this.tool, direction: 'out' },
      range ? Math.max(0, Math.min(range.length ?? entry.size, entry.size - range.offset)) : entry.size,
    );
    return stream;
  }

  async put(name: string, body: Readable, opts: PutOptions): Promise<PutResult> {
    const max = this.#ctx.server.maxBlobBytes;
    if (opts.size !== undefined && opts.size > max)
      throw new HoardError(
        'HOARD_ETOO_LARGE',
        `${this.tool} entry of ${opts.size} bytes is over the limit of ${max}`,
      );
    if (opts.mode === 'create') {
      // The common case of a create-only protocol re-sending a key: no upload to store.
      const existing = await this.#lookup(name, opts.signal);
      if (existing) {
        body.resume();
        this.#ctx.metrics.cacheRequests.inc({ tool: this.tool, op: 'put', result: 'exists' });
        return { created: false, entry: existing };
      }
    }
    let record: Digest | undefined;
    const uploads = this.#ctx.metrics.cacheUploads;
    uploads.inc({ tool: this.tool });
    let stored: { digest: Digest; size: number };
    try {
      // The record is written beside the content (both fsyncs in flight at once); the ref,
      // written after both, is what makes either visible.
      stored = await this.#storeContent(body, opts, max, async (digest, size) => {
        const rec = encodeEntry({ blob: digest, size, meta: opts.meta ?? {} });
        await this.#ctx.blobs.write(rec.digest, [rec.bytes], {
          size: rec.bytes.byteLength,
          signal: opts.signal,
        });
        record = rec.digest;
      });
    } finally {
      uploads.dec({ tool: this.tool });
    }
    const { digest, size } = stored;
    if (record === undefined) throw new Error('unreachable: the entry record was not written');
    const entry: CacheEntry = { name, digest, size, meta: Object.freeze({ ...(opts.meta ?? {}) }) };
    this.#remember(record, { blob: digest, size, meta: entry.meta });
    const refs = this.#ctx.refs;
    if (opts.mode === 'create') {
      try {
        await refs.set(name, record, null, opts.signal);
      } catch (err) {
        if (!(err instanceof RefConflictError)) throw err;
        // Another writer got there first: theirs stands (an entry never changes).
        const theirs = await this.#lookup(name, opts.signal);
        this.#ctx.metrics.cacheRequests.inc({ tool: this.tool, op: 'put', result: 'exists' });
        return { created: false, entry: theirs ?? entry };
      }
    } else {
      for (let round = 0; ; round++) {
        const current = await refs.get(name, opts.signal);
        try {
          await refs.set(name, record, current?.version ?? null, opts.signal);
          break;
        } catch (err) {
          if (!(err instanceof RefConflictError) || round + 1 >= OVERWRITE_ROUNDS) throw err;
        }
      }
    }
    this.#ctx.ctx.refExpiry?.touch(name);
    this.#ctx.metrics.cacheRequests.inc({ tool: this.tool, op: 'put', result: 'stored' });
    this.#ctx.metrics.cacheBytes.inc({ tool: this.tool, direction: 'in' }, size);
    return { created: true, entry };
  }

  /**
   * Stores the body as a blob: verified against a known digest, else hashed
   * while received — in memory when it is small and its length is declared,
   * else spooled to a temp file. `beside(digest, size)` runs in parallel with
   * the content's write once the digest is known.
   */
  async #storeContent(
    body: Readable,
    opts: PutOptions,
    max: number,
    beside: (digest: Digest, size: number) => Promise<void>,
  ): Promise<{ digest: Digest; size: number }> {
    const { blobs } = this.#ctx;
    const write = { size: opts.size, signal: opts.signal };
    if (opts.digest !== undefined) {
      if (!isDigest(opts.digest))
        throw new HoardError('HOARD_EDIGEST_INVALID', `invalid digest ${opts.digest}`);
      // Verified first, then the record: a body that does not match its digest leaves nothing.
      const r = await blobs.write(opts.digest, body, write);
      await beside(opts.digest, r.size);
      return { digest: opts.digest, size: r.size };
    }
    if (opts.size !== undefined && opts.size <= IN_MEMORY_BODY_BYTES) {
      // Bounded by the declared length; a short body is truncated. Through pipeline(): it
      // notices a connection cut mid-body (a plain for-await on the request would wait).
      const declared = opts.size;
      const chunks: Buffer[] = [];
      let got = 0;
      await pipeline(
        body,
        async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) {
            got += chunk.byteLength;
            if (got > declared)
              throw new HoardError('HOARD_EBAD_REQUEST', `body longer than its declared ${declared} bytes`);
            chunks.push(chunk);
          }
        },
        { signal: opts.signal },
      );
      const bytes = Buffer.concat(chunks, got);
      if (bytes.byteLength !== opts.size)
        throw new HoardError('HOARD_ETRUNCATED', `expected ${opts.size} bytes, got ${bytes.byteLength}`);
      const digest = sha256(bytes);
      await Promise.all([blobs.write(digest, [bytes], write), beside(digest, bytes.byteLength)]);
      return { digest, size: bytes.byteLength };
    }
    await mkdir(this.#spool, { recursive: true });
    const tmp = join(this.#spool, `${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      const hasher = new Hasher();
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hasher.update(chunk);
            if (hasher.size > max)
              throw new HoardError('HOARD_ETOO_LARGE', `entry is over the limit of ${max} bytes`);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx' }),
        { signal: opts.signal },
      ).catch((err) => {
        throw noSpaceOr(err, 'a cache entry');
      });
      if (opts.size !== undefined && hasher.size !== opts.size)
        throw new HoardError('HOARD_ETRUNCATED', `expected ${opts.size} bytes, got ${hasher.size}`);
      const digest = hasher.digest();
      await Promise.all([
        blobs.write(digest, createReadStream(tmp), { size: hasher.size, signal: opts.signal }),
        beside(digest, hasher.size),
      ]);
      return { digest, size: hasher.size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async delete(name: string): Promise<boolean> {
    const ref = await this.#ctx.refs.get(name);
    if (!ref) return false;
    try {
      await this.#ctx.refs.delete(name, ref.version);
    } catch (err) {
      if (isHoardError(err, 'HOARD_EREF_NOT_FOUND')) return false;
      throw err;
    }
    this.#ctx.metrics.cacheRequests.inc({ tool: this.tool, op: 'delete', result: 'deleted' });
    return true;
  }

  /**
   * Throws 401/403 unless the request may `need` (the tokens file's scopes;
   * with `name`, a ref prefix of a prefix-bound token must cover it, for reads
   * as for writes). Bearer tokens and HTTP Basic with the token as the
   * password are accepted.
   */
  authorize(request: FastifyRequest, need: 'read' | 'write', name?: string): void {
    authorize(
      this.#ctx.auth,
      { remoteAddress: request.socket.remoteAddress, authorization: request.headers.authorization },
      need,
      name,
    );
  }
  /**
   * After authorize(request, 'read') passed: refuses (403) the entry `name`
   * to a token whose ref prefixes do not cover it. For routes that must
   * answer 401/403 before validating the key; it does not count the token
   * against the lockout again (authorize did).
   */
  checkRead(request: FastifyRequest, name: string): void {
    checkRefRead(this.#ctx, request, name);
  }
}
