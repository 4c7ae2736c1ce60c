// Uploads in progress: reserved (v1 `POST caches`, v2 `CreateCacheEntry`),
// receiving (v2: Azure Put Blob / Put Block / Put Block List on the signed
// URL; v1: `PATCH caches/:id` ranges) and not yet published. Every byte goes
// to a spool directory per upload under the data directory, never to memory:
// v2 blocks each to their own file (they arrive in parallel, in any order,
// and only the committed block list says which ones make the archive); v1
// ranges by positional writes into one file. Nothing here is visible to a
// reader: the archive becomes an entry only when the cache service publishes
// it on finalize/commit (actions-cache.ts), after checking its size.
//
// Bounds: an upload's bytes by the server's --max-blob-size (v2: the staged
// blocks and blob together, a replaced one counted once; v1: the end of every
// range, so a re-sent chunk costs nothing more); 50,000 blocks (Azure's own limit), block ids of at most 64
// bytes, all of one length (Azure's rules); reservations per token by
// `maxPerOwner`. An upload idle for `idleMs` (nothing received, no request in
// flight) is dropped and its spool deleted by a periodic sweep; the spool
// root is emptied at start (what a crash left behind is garbage).

import { randomBytes, randomInt } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Clock, systemClock } from '../../core/clock.ts';
import { HoardError, noSpaceOr } from '../../core/errors.ts';

/** Azure's bound on the blocks of one blob. */
export const MAX_BLOCKS = 50_000;
/** Azure's bound on a block id (before base64). */
const MAX_BLOCK_ID_BYTES = 64;

export interface UploadTarget {
  /** Who reserved it (token name, `loopback`): only they may send its bytes (v1) and finalize it. */
  owner: string;
  namespace: string;
  key: string;
  version: string;
  /** The cache ref it will be published as. */
  ref: string;
}

export interface PendingUpload extends UploadTarget {
  /** Names the upload in its signed URL (128 random bits). */
  readonly id: string;
  /** Names it in the v1 API (`caches/:id`): a number, as the toolkit expects. */
  readonly cacheId: number;
  readonly dir: string;
  lastActivity: number;
  /** Requests on it in flight: it does not expire meanwhile. */
  busy: number;
  /** Finalize began: no more bytes are accepted. */
  finishing: boolean;
  /** v2: staged blocks by id. */
  readonly blocks: Map<string, { file: string; size: number }>;
  /** v2: what Put Blob or Put Block List made the blob, in order. */
  committed: { files: string[]; size: number } | undefined;
  /** v1: byte ranges received into `data` (start, end exclusive). */
  readonly ranges: [number, number][];
  /** v2 staged bytes (blocks and the Put Blob body): bounded by maxBytes. v1 is bounded by its extent. */
  staged: number;
  /** v2: the bytes of the current Put Blob body (replaced by the next one). */
  blobBytes: number;
  /** v1: the end of the furthest range accepted (the spool file's extent). */
  extent: number;
}

export interface PendingUploadsOptions {
  spoolDir: string;
  /** One upload's bound. */
  maxBytes: number;
  /** Every upload's spooled bytes together. */
  maxSpoolBytes: number;
  maxPerOwner: number;
  idleMs: number;
  clock?: Clock;
}

export class PendingUploads {
  readonly #o: PendingUploadsOptions;
  readonly #clock: Clock;
  readonly #byId = new Map<string, PendingUpload>();
  readonly #byCacheId = new Map<number, PendingUpload>();
  readonly #byRef = new Map<string, PendingUpload>();
  /** Bytes in the spool and on their way to it, all uploads together. */
  #spooled = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: PendingUploadsOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  /**
   * Removes the spool (a previous process's leftovers) and starts the idle
   * sweep. The spool folder is made by the first upload, not here: a server
   * that never receives one leaves nothing in its data directory's tmp/.
   */
  async start(): Promise<void> {
    await rm(this.#o.spoolDir, { recursive: true, force: true });
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.#o.idleMs / 4)));
    this.#timer = setInterval(() => void this.sweep(), every);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#spooled = 0;
    this.#byId.clear();
    this.#byCacheId.clear();
    this.#byRef.clear();
    await rm(this.#o.spoolDir, { recursive: true, force: true });
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Bytes spooled (and being spooled) by every upload in progress. */
  get spooled(): number {
    return this.#spooled;
  }

  /** Takes `n` more bytes of the spool, or throws 507 when they do not fit. */
  #take(n: number): void {
    if (this.#spooled + n > this.#o.maxSpoolBytes)
      throw new HoardError(
        'HOARD_ENO_SPACE',
        `the Actions cache upload spool is full (${this.#spooled} bytes in uploads in progress)`,
        { hint: 'wait for uploads to finish or expire, or raise --actions-cache-max-spool' },
      );
    this.#spooled += n;
  }

  /** The upload reserving `ref`, if one is in progress. */
  pendingFor(ref: string): PendingUpload | undefined {
    return this.#byRef.get(ref);
  }

  /** Reserves an upload: 409 while another one of the same entry is in progress, 429 over the owner's bound. */
  async reserve(t: UploadTarget, declaredSize?: number): Promise<PendingUpload> {
    if (declaredSize !== undefined && declaredSize > this.#o.maxBytes)
      throw tooLarge(declaredSize, this.#o.maxBytes);
    if (this.#byRef.has(t.ref))
      throw new HoardError('HOARD_ESYNC_CONFLICT', `an upload of key ${t.key} is already in progress`, {
        hint: 'another job may be creating this cache',
      });
    let mine = 0;
    for (const u of this.#byId.values()) if (u.owner === t.owner) mine++;
    if (mine >= this.#o.maxPerOwner)
      throw new HoardError(
        'HOARD_EUNAVAILABLE',
        `${t.owner} has ${mine} uploads in progress (the bound is ${this.#o.maxPerOwner})`,
        {
          hint: 'finish or abandon uploads first (abandoned ones expire), or raise --actions-cache-max-pending-uploads',
          details: { limit: 'pending-uploads' },
        },
      );
    const id = randomBytes(16).toString('hex');
    let cacheId: number;
    do cacheId = randomInt(1, 2 ** 47);
    while (this.#byCacheId.has(cacheId));
    const dir = join(this.#o.spoolDir, id);
    await mkdir(dir, { recursive: true });
    const u: PendingUpload = {
      ...t,
      id,
      cacheId,
      dir,
      lastActivity: this.#clock.now(),
      busy: 0,
      finishing: false,
      blocks: new Map(),
      committed: undefined,
      ranges: [],
      staged: 0,
      blobBytes: 0,
      extent: 0,
    };
    // Checked again after the await: a concurrent reservation of the same ref may have won.
    if (this.#byRef.has(t.ref)) {
      await rm(dir, { recursive: true, force: true });
      throw new HoardError('HOARD_ESYNC_CONFLICT', `an upload of key ${t.key} is already in progress`);
    }
    this.#byId.set(id, u);
    this.#byCacheId.set(cacheId, u);
    this.#byRef.set(t.ref, u);
    return u;
  }

  /** The upload a signed URL names (404 when unknown, finished or expired). */
  byId(id: string): PendingUpload {
    const u = /^[0-9a-f]{32}$/.test(id) ? this.#byId.get(id) : undefined;
    if (!u) throw gone();
    return u;
  }

  byCacheId(raw: string): PendingUpload {
    const n = /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
    const u = this.#byCacheId.get(n);
    if (!u) throw gone();
    return u;
  }

  /** Runs `work` with the upload marked busy (it cannot expire under a request). */
  async using<T>(u: PendingUpload, work: () => Promise<T>): Promise<T> {
    if (u.finishing || !this.#byId.has(u.id))
      throw new HoardError('HOARD_ESYNC_CONFLICT', 'the upload is being finalized or is gone');
    u.busy++;
    try {
      return await work();
    } finally {
      u.busy--;
      u.lastActivity = this.#clock.now();
    }
  }

  /** v2 Put Blob: the body is the whole blob (replacing anything staged before). */
  async putBlob(u: PendingUpload, body: Readable, length: number | undefined): Promise<number> {
    const file = join(u.dir, 'blob');
    const tmp = join(u.dir, `blob-${randomBytes(6).toString('hex')}.part`);
    const size = await this.#spool(u, body, tmp, length, u.blobBytes);
    await rename(tmp, file);
    u.staged -= u.blobBytes;
    u.blobBytes = size;
    u.committed = { files: [file], size };
    return size;
  }

  /** v2 Put Block: one staged block (a block re-sent under the same id replaces it). */
  async putBlock(
    u: PendingUpload,
    blockId: string,
    body: Readable,
    length: number | undefined,
  ): Promise<number> {
    const raw = decodeBlockId(blockId);
    const first = u.blocks.keys().next().value;
    if (first !== undefined && first.length !== blockId.length)
      throw new HoardError('HOARD_EBAD_REQUEST', 'every block id of a blob must have the same length');
    if (!u.blocks.has(blockId) && u.blocks.size >= MAX_BLOCKS)
      throw new HoardError('HOARD_ETOO_LARGE', `at most ${MAX_BLOCKS} blocks per blob`);
    const file = join(u.dir, `block-${raw.toString('hex')}`);
    const tmp = `${file}-${randomBytes(6).toString('hex')}.part`;
    const old = u.blocks.get(blockId);
    const size = await this.#spool(u, body, tmp, length, old?.size ?? 0);
    if (old) u.staged -= old.size;
    await rename(tmp, file);
    u.blocks.set(blockId, { file, size });
    return size;
  }

  /** v2 Put Block List: the blob is these staged blocks, in this order. */
  commitBlocks(u: PendingUpload, ids: readonly string[]): number {
    if (ids.length > MAX_BLOCKS)
      throw new HoardError('HOARD_ETOO_LARGE', `at most ${MAX_BLOCKS} blocks per blob`);
    const files: string[] = [];
    let size = 0;
    for (const id of ids) {
      const b = u.blocks.get(id);
      if (!b)
        throw new HoardError(
          'HOARD_EBAD_REQUEST',
          `block ${JSON.stringify(id.slice(0, 100))} was never staged`,
          {
            details: { azureCode: 'InvalidBlockList' },
          },
        );
      files.push(b.file);
      size += b.size;
    }
    if (size > this.#o.maxBytes) throw tooLarge(size, this.#o.maxBytes);
    u.committed = { files, size };
    return size;
  }

  /** v1 PATCH: `body` is bytes [start, end] (inclusive, as Content-Range says) of the archive. */
  async writeRange(u: PendingUpload, start: number, end: number, body: Readable): Promise<void> {
    if (end + 1 > this.#o.maxBytes) throw tooLarge(end + 1, this.#o.maxBytes);
    // The file's extent is taken from the spool before a byte is written (and kept until the drop).
    if (end + 1 > u.extent) {
      this.#take(end + 1 - u.extent);
      u.extent = end + 1;
    }
    const count = end - start + 1;
    const file = join(u.dir, 'data');
    let n = 0;
    const limit = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        n += chunk.byteLength;
        if (n > count)
          throw new HoardError(
            'HOARD_EBAD_REQUEST',
            `the body is longer than its Content-Range (${count} bytes)`,
          );
        yield chunk;
      }
    };
    // 'r+' writes at `start` but needs the file: create it (never truncating) first.
    await (await open(file, 'a')).close();
    await pipeline(body, limit, createWriteStream(file, { flags: 'r+', start })).catch((err) => {
      throw noSpaceOr(err, 'an Actions cache upload');
    });
    if (n !== count)
      throw new HoardError('HOARD_ETRUNCATED', `expected ${count} bytes (Content-Range), got ${n}`);
    u.ranges.push([start, end + 1]);
  }

  /**
   * Throws 409 while a request is still sending bytes to the upload (a
   * finalize must wait for them) or another finalize of it is under way.
   */
  assertIdle(u: PendingUpload): void {
    if (u.finishing) throw new HoardError('HOARD_ESYNC_CONFLICT', 'the upload is already being finalized');
    if (u.busy > 0)
      throw new HoardError('HOARD_ESYNC_CONFLICT', 'the upload is still receiving data', {
        hint: 'finalize after every block or chunk has been answered',
      });
  }

  /**
   * Finalize: no more bytes are accepted; returns the archive's bytes in
   * order, or throws when they are not exactly `size` bytes (v2: the
   * committed blob; v1: ranges covering [0, size) with nothing beyond).
   */
  finish(u: PendingUpload, size: number): { size: number; open(): Readable } {
    this.assertIdle(u);
    let files: string[];
    if (u.committed) {
      if (u.committed.size !== size)
        throw new HoardError(
          'HOARD_EBAD_REQUEST',
          `the uploaded archive has ${u.committed.size} bytes, not ${size}`,
        );
      files = u.committed.files;
    } else if (u.ranges.length > 0) {
      const covered = coverage(u.ranges);
      if (covered !== size)
        throw new HoardError(
          'HOARD_EBAD_REQUEST',
          covered < 0
            ? `the uploaded chunks leave gaps or go beyond ${size} bytes`
            : `the uploaded chunks cover ${covered} bytes, not ${size}`,
        );
      files = [join(u.dir, 'data')];
    } else if (size === 0) {
      files = [];
    } else {
      throw new HoardError('HOARD_EBAD_REQUEST', 'nothing was uploaded');
    }
    u.finishing = true;
    return {
      size,
      open: () =>
        Readable.from(
          (async function* () {
            for (const f of files) yield* createReadStream(f, size === 0 ? undefined : { end: size - 1 });
          })(),
        ),
    };
  }

  /** Forgets the upload and deletes its spool. */
  async drop(u: PendingUpload): Promise<void> {
    if (this.#byId.get(u.id) === u) {
      this.#spooled -= u.staged + u.extent;
      this.#byId.delete(u.id);
      this.#byCacheId.delete(u.cacheId);
      if (this.#byRef.get(u.ref) === u) this.#byRef.delete(u.ref);
    }
    await rm(u.dir, { recursive: true, force: true });
  }

  /** Drops uploads idle for longer than idleMs (none while a request is on them). */
  async sweep(): Promise<number> {
    const now = this.#clock.now();
    const idle = [...this.#byId.values()].filter(
      (u) => u.busy === 0 && !u.finishing && now - u.lastActivity >= this.#o.idleMs,
    );
    for (const u of idle) await this.drop(u);
    return idle.length;
  }

  /** Streams a body to `tmp`, bounding the upload's staged bytes (less `replacing`, what it replaces). */
  async #spool(
    u: PendingUpload,
    body: Readable,
    tmp: string,
    length: number | undefined,
    replacing: number,
  ): Promise<number> {
    const max = this.#o.maxBytes;
    let n = 0;
    const take = (bytes: number) => this.#take(bytes);
    const bound = async function* (this: void, source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        take(chunk.byteLength);
        n += chunk.byteLength;
        if (u.staged - replacing + n > max) throw tooLarge(u.staged - replacing + n, max);
        yield chunk;
      }
    };
    try {
      await pipeline(body, bound, createWriteStream(tmp, { flags: 'wx' })).catch((err) => {
        throw noSpaceOr(err, 'an Actions cache upload');
      });
      if (length !== undefined && n !== length)
        throw new HoardError('HOARD_ETRUNCATED', `expected ${length} bytes (Content-Length), got ${n}`);
    } catch (err) {
      this.#spooled -= n;
      await rm(tmp, { force: true });
      throw err;
    }
    u.staged += n;
    // What it replaces leaves the spool (the caller renames over it or forgets it).
    this.#spooled -= replacing;
    return n;
  }
}

/** A block id: base64 of at most 64 bytes (Azure's rule). */
export function decodeBlockId(id: string): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(id) || id.length % 4 !== 0)
    throw new HoardError('HOARD_EBAD_REQUEST', 'blockid must be base64', {
      details: { azureCode: 'InvalidQueryParameterValue' },
    });
  const raw = Buffer.from(id, 'base64');
  if (raw.length === 0 || raw.length > MAX_BLOCK_ID_BYTES)
    throw new HoardError('HOARD_EBAD_REQUEST', `blockid must decode to 1 to ${MAX_BLOCK_ID_BYTES} bytes`, {
      details: { azureCode: 'InvalidQueryParameterValue' },
    });
  return raw;
}

/** The length of [0, n) when `ranges` cover exactly that, else -1 (a gap). */
function coverage(ranges: readonly [number, number][]): number {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [s, e] of sorted) {
    if (s > end) return -1;
    end = Math.max(end, e);
  }
  return end;
}

function tooLarge(size: number, max: number): HoardError {
  return new HoardError(
    'HOARD_ETOO_LARGE',
    `an archive of ${size} bytes is over the server limit of ${max} bytes`,
    {
      hint: 'raise --max-blob-size on the server',
    },
  );
}

function gone(): HoardError {
  return new HoardError('HOARD_EBLOB_NOT_FOUND', 'no such upload (unknown, finished or expired)', {
    details: { azureCode: 'BlobNotFound' },
  });
}
