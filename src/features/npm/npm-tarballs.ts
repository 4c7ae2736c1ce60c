// Tarballs: immutable, stored once as blobs named by their SHA-256 (so the
// same tarball reached through two upstream URLs, or two packages, is one
// blob), found through the integrity their document names: the cache entry
// `cache/npm/tarball/<alg>-<hex of the integrity hash>` → the blob.
//
// A miss is one Fill (src/server/fill.ts) per integrity, however many
// requests race: the upstream body is written through a positional writer
// into a temp file while every waiter follows that file as it grows, so each
// gets the bytes as they arrive, not after. The writer verifies the
// integrity (and SHA-256 for the store) when the upstream ends; the last
// byte of each response is held back until then, so a tarball that does not
// match is never delivered complete and is never stored: every waiter's
// response is cut, the metric counts it, and the next request tries afresh.
//
// A verified tarball is stored behind the answer: copying the spool file
// into the blob store and writing its entry record and ref (three durable
// writes) would otherwise hold every waiter's last byte. A request that
// comes after the verification and before the store lands waits for it (the
// fill is forgotten only then, so no second upstream request); a store that
// fails is logged and costs a later fill.

import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, Hasher } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import { discard, httpRequest } from '../../http/http-client.ts';
import type { CacheEntries, CacheEntry } from '../../server/cache-entries.ts';
import { Fill } from '../../server/fill.ts';
import type { SendOptions } from '../../server/send-content.ts';
import type { BlobHandle } from '../../store/blob-handle.ts';
import { writeFullyAt } from '../../store/fs-atomic.ts';
import type { BlobFileWriter } from '../../store/local-blob-files.ts';
import type { Dist } from './npm-documents.ts';
import type { NpmMetrics } from './npm-metrics.ts';
import type { NpmUpstreams } from './npm-upstreams.ts';

/** Hash algorithms of Subresource Integrity strings, strongest first. */
const SRI_ALGS = ['sha512', 'sha384', 'sha256', 'sha1'] as const;
type SriAlg = (typeof SRI_ALGS)[number];

/** What a tarball must hash to: one algorithm and its expected digest. */
export interface Expected {
  alg: SriAlg;
  /** The expected digest, hex. */
  hex: string;
  /** As the document names it (for messages). */
  text: string;
}

/** The strongest hash a `dist` names: `integrity` (SRI), else the older `shasum` (SHA-1 hex). */
export function expectedOf(dist: Dist): Expected | undefined {
  if (typeof dist.integrity === 'string') {
    const found = new Map<string, string>();
    for (const part of dist.integrity.trim().split(/\s+/)) {
      const m = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/]+={0,2})(\?.*)?$/.exec(part);
      if (m) found.set(m[1], Buffer.from(m[2], 'base64').toString('hex'));
    }
    for (const alg of SRI_ALGS) {
      const hex = found.get(alg);
      if (hex) return { alg, hex, text: `${alg}-${Buffer.from(hex, 'hex').toString('base64')}` };
    }
  }
  if (typeof dist.shasum === 'string' && /^[0-9a-f]{40}$/i.test(dist.shasum))
    return { alg: 'sha1', hex: dist.shasum.toLowerCase(), text: `sha1 ${dist.shasum}` };
  return undefined;
}

export interface NpmTarballsOptions {
  entries: CacheEntries;
  upstreams: NpmUpstreams;
  metrics: NpmMetrics;
  log: FastifyBaseLogger;
  /** Where fills spool (under the data directory). */
  spoolDir: string;
  maxBytes: number;
}

/** A tarball to send: stored (opened, one look at the tiers) or still arriving through its fill. */
export type TarballStream =
  | { hit: true; opened: { entry: CacheEntry; handle: BlobHandle } }
  | { hit: false; size: number; body: Readable };

export class NpmTarballs {
  readonly #o: NpmTarballsOptions;
  readonly #fills = new Map<string, Promise<{ fill: Fill; stored: Promise<void> }>>();
  /** Stores running behind their answers. */
  readonly #storing = new Set<Promise<void>>();
  /** Upstream tarball requests started (for tests). */
  fillsStarted = 0;

  constructor(o: NpmTarballsOptions) {
    this.#o = o;
  }

  /** The tarball: from the store, or through the (one) fill of its integrity. */
  async open(name: string, expected: Expected, upstreamUrl: URL, again = false): Promise<TarballStream> {
    const { entries, metrics } = this.#o;
    const ref = entries.refName('tarball', `${expected.alg}-${expected.hex}`);
    const opened = await entries.open(ref);
    if (opened) {
      metrics.requests.inc({ kind: 'tarball', result: 'hit' });
      return { hit: true, opened };
    }
    const key = ref;
    let pending = this.#fills.get(key);
    if (!pending) {
      pending = this.#start(name, expected, upstreamUrl, ref);
      this.#fills.set(key, pending);
      // Forgotten once failed, or once its store landed: the next request after a failure retries.
      const forget = () => {
        if (this.#fills.get(key) === pending) this.#fills.delete(key);
      };
      pending.then(
        (f) => f.fill.settled.then(() => (f.fill.state === 'done' ? f.stored : undefined)).then(forget),
        forget,
      );
    }
    const { fill, stored } = await pending;
    if (fill.state === 'done') {
      // Verified meanwhile: served from the store once it lands (a few milliseconds).
      await stored;
      const opened = await entries.open(ref);
      if (opened) {
        metrics.requests.inc({ kind: 'tarball', result: 'hit' });
        return { hit: true, opened };
      }
      if (again) throw new HoardError('HOARD_EUNAVAILABLE', `the tarball of ${name} could not be stored`);
      return this.open(name, expected, upstreamUrl, true); // its store failed: a fill of its own
    }
    if (fill.state === 'failed') throw fill.error;
    metrics.requests.inc({ kind: 'tarball', result: 'miss' });
    return { hit: false, size: fill.size, body: fill.reader(0, fill.size) };
  }

  /** Sends a stored tarball (CacheEntries.send: length, Range, ETag, the bytes-out metric). */
  send(
    request: FastifyRequest,
    reply: FastifyReply,
    opened: { entry: CacheEntry; handle: BlobHandle },
    opts: SendOptions,
  ): FastifyReply {
    return this.#o.entries.send(request, reply, opened, opts);
  }

  /** Settles once every store begun so far has landed (or failed): for shutdown and tests. */
  async flushed(): Promise<void> {
    while (this.#storing.size > 0) await Promise.all(this.#storing);
  }

  async #start(
    name: string,
    expected: Expected,
    url: URL,
    ref: string,
  ): Promise<{ fill: Fill; stored: Promise<void> }> {
    const { upstreams, metrics, log, maxBytes } = this.#o;
    this.fillsStarted++;
    const res = await httpRequest('GET', url, {
      headers: { accept: 'application/octet-stream', ...upstreams.authorization(url) },
      accept: 'any',
    });
    if (res.status !== 200) {
      discard(res);
      throw new HoardError(
        res.status === 404
          ? 'HOARD_EBLOB_NOT_FOUND'
          : res.status >= 500
            ? 'HOARD_EUNAVAILABLE'
            : 'HOARD_EREMOTE',
        `npm upstream answered ${res.status} for a tarball of ${name}`,
      );
    }
    const size = Number(res.headers['content-length']);
    if (!Number.isSafeInteger(size) || size < 0) {
      discard(res);
      throw new HoardError(
        'HOARD_EREMOTE',
        `npm upstream sent a tarball of ${name} without a Content-Length`,
      );
    }
    if (size > maxBytes) {
      discard(res);
      throw new HoardError('HOARD_ETOO_LARGE', `tarball of ${name} is ${size} bytes, over --max-blob-size`);
    }
    await mkdir(this.#o.spoolDir, { recursive: true });
    const body = res.body;
    let landed!: () => void;
    const stored = new Promise<void>((r) => {
      landed = r;
    });
    const label = `sha256:${expected.hex.padEnd(64, '0').slice(0, 64)}` as Digest; // a label for Fill's messages
    const fill = new Fill(
      label,
      { stat: async () => ({ digest: label, size }), read: async () => body },
      {
        createWriter: async (_d, n) =>
          IntegrityWriter.open(
            join(this.#o.spoolDir, `${process.pid}-${randomBytes(8).toString('hex')}`),
            n,
            {
              expected,
              onBytes: (n) => metrics.upstreamBytes.inc({ kind: 'tarball' }, n),
              onVerified: (tmp, digest) => {
                const store = this.#o.entries
                  .put(ref, createReadStream(tmp), {
                    digest,
                    size: n,
                    mode: 'create',
                    meta: { integrity: expected.text, pkg: name },
                  })
                  .then(
                    () => {},
                    (err: Error) => log.warn({ pkg: name, err: err.message }, 'npm tarball not stored'),
                  )
                  .finally(async () => {
                    await unlink(tmp).catch(() => {});
                    landed();
                  });
                this.#storing.add(store);
                store.then(() => this.#storing.delete(store));
              },
              onMismatch: (actual) => {
                metrics.integrityFailures.inc();
                log.warn(
                  { pkg: name, url: `${url.origin}${url.pathname}`, expected: expected.text, actual },
                  'npm tarball does not match its integrity: refused, not stored',
                );
              },
            },
          ),
      },
      size,
    );
    // A failed fill stops reading the upstream; the body's own error (an abort) has nobody to tell.
    body.on('error', () => {});
    fill.settled.then(() => {
      if (fill.state === 'failed') {
        log.warn({ pkg: name, err: fill.error?.message }, 'npm tarball fill failed');
        if (!body.destroyed) body.destroy();
      }
    });
    return { fill, stored };
  }
}

interface WriterHooks {
  expected: Expected;
  onBytes(n: number): void;
  /** Takes the verified temp file (SHA-256 `digest`) over: stores it, then unlinks it. */
  onVerified(tmp: string, digest: Digest): void;
  onMismatch(actualHex: string): void;
}

/** A positional writer (Fill's disk side) that verifies an npm integrity and then stores the blob. */
class IntegrityWriter implements BlobFileWriter {
  readonly digest: Digest;
  readonly size: number;
  bytesWritten = 0;
  readonly #tmp: string;
  #fh: FileHandle | undefined;
  readonly #sha256 = new Hasher();
  readonly #sri: Hash;
  readonly #hooks: WriterHooks;

  static async open(tmp: string, size: number, hooks: WriterHooks): Promise<IntegrityWriter> {
    return new IntegrityWriter(tmp, size, await open(tmp, 'wx+'), hooks);
  }

  private constructor(tmp: string, size: number, fh: FileHandle, hooks: WriterHooks) {
    this.#tmp = tmp;
    this.size = size;
    this.#fh = fh;
    this.#hooks = hooks;
    this.#sri = createHash(hooks.expected.alg);
    this.digest = 'sha256:' as Digest;
  }

  #open(): FileHandle {
    if (!this.#fh) throw new HoardError('HOARD_EINTERNAL', 'tarball writer is closed');
    return this.#fh;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.bytesWritten + chunk.byteLength > this.size)
      throw new HoardError(
        'HOARD_EREMOTE',
        `npm upstream sent more than the ${this.size} bytes it announced`,
      );
    await writeFullyAt(this.#open(), chunk, this.bytesWritten, 'an npm tarball');
    this.#sha256.update(chunk);
    this.#sri.update(chunk);
    this.bytesWritten += chunk.byteLength;
    this.#hooks.onBytes(chunk.byteLength);
  }

  async readAt(buf: Buffer, length: number, position: number): Promise<number> {
    return (await this.#open().read(buf, 0, length, position)).bytesRead;
  }

  async commit(): Promise<{ created: boolean }> {
    const actual = this.#sri.digest('hex');
    if (actual !== this.#hooks.expected.hex) {
      // Fill aborts the writer (the temp file goes): nothing is stored.
      this.#hooks.onMismatch(actual);
      throw new HoardError(
        'HOARD_EREMOTE',
        `npm upstream sent a tarball that does not match its integrity ${this.#hooks.expected.text}`,
        {
          hint: 'the upstream registry or something between it and hoard altered the tarball; it was not stored',
        },
      );
    }
    this.#hooks.onVerified(this.#tmp, this.#sha256.digest());
    return { created: true };
  }

  async abort(): Promise<void> {
    await unlink(this.#tmp).catch(() => {});
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close().catch(() => {});
  }
}
