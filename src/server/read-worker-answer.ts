// What a read worker (read-worker.ts) answers on its own: GET and HEAD of
// /v1/blobs/sha256/<hex> for a blob that is a file in the disk tier, with the
// primary's headers and Range / If-None-Match / If-Range semantics
// (http-range.ts, as routes/blobs.ts uses them). Everything else — a blob
// that is not a file here, a range that cannot be satisfied, a file that does
// not hash to its name, a disk that looks slow — is 'forward': the primary
// answers it, so every error, miss, fill and quarantine stays in one place.
//
// Integrity is the primary's rule, per process: a worker trusts a file only
// once it has hashed it itself, and only while the file keeps its identity
// (device, inode, size, mtime, ctime: disk-verify.ts). Small files (≤ 64 KiB)
// are read whole and hashed before the first answer; a large untrusted file is
// streamed whole while hashed, the last chunk held back until the digest
// matches (disk-stream.ts), and a ranged read of one goes to the primary.
// A small blob's hashed bytes are kept (hot-blobs.ts) and served again while
// one stat of its path finds the same file.
// Only final names under blobs/sha256/ are opened: a blob file appears there
// by link(2) of a complete, fsynced temp file, never partially written. An
// eviction or quarantine racing an open is harmless on Linux: the open
// descriptor keeps the inode.

import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, sha256 } from '../core/digest.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { readSmallBlobSync } from '../store/sync-metadata.ts';
import { diskStream } from './disk-stream.ts';
import { fileIdentity, TrustedFiles } from './disk-verify.ts';
import { HotBlobs } from './hot-blobs.ts';
import { blobBaseHeaderList, blobEtag, ifRangeHolds, noneMatch, parseRange } from './http-range.ts';
import { SyncReadGuard } from './sync-read-guard.ts';

/** Blobs up to this size are read whole with synchronous calls (the primary's SMALL_READ_BYTES). */
const SMALL_READ_BYTES = 64 * 1024;

/** How an answer went: sent (with the body bytes it carries), or left to the primary. */
export type WorkerAnswer = { status: number; bytesOut: number; hit: boolean } | 'forward';

export interface DiskBlobAnswersOptions {
  dataDir: string;
  /** Sent with every answer as x-hoard-worker (which worker answered). */
  workerId: string;
  /** Bytes of small verified blobs kept for reads re-validated by a stat (hot-blobs.ts); DEFAULTS.hotBlobBytes. */
  hotBlobBytes?: number;
  /** A large file did not hash to its name while streamed (the answer was cut): tell the primary. */
  onCorrupt(digest: Digest): void;
}

export class DiskBlobAnswers {
  /** The data directory's blob folder: a blob's file is <it>/<first two hex>/<hex> (FsBlobStore.pathIn). */
  readonly #blobDir: string;
  readonly #trusted = new TrustedFiles(DEFAULTS.trustedDiskFiles);
  readonly #guard = new SyncReadGuard();
  readonly #hot: HotBlobs;
  readonly #onCorrupt: (digest: Digest) => void;
  readonly #workerId: string;

  constructor(opts: DiskBlobAnswersOptions) {
    // FsBlobStore.pathIn's layout with the join done once (path.join per request was ~2 % of a worker's CPU).
    this.#blobDir = dirname(dirname(FsBlobStore.pathIn(opts.dataDir, `sha256:${'0'.repeat(64)}`)));
    this.#onCorrupt = opts.onCorrupt;
    this.#workerId = opts.workerId;
    this.#hot = new HotBlobs({
      maxBytes: opts.hotBlobBytes ?? DEFAULTS.hotBlobBytes,
      maxBlobBytes: SMALL_READ_BYTES,
    });
  }

  /** The hot-blob cache's counters (tests). */
  get hot(): { hits: number; stale: number; size: number } {
    return this.#hot;
  }

  /**
   * Answers GET/HEAD of `hex` (64 lowercase hex: the caller matched it), or
   * returns 'forward' having sent nothing. Synchronous for small blobs; a
   * promise only when a large file is opened.
   */
  answer(req: IncomingMessage, res: ServerResponse, hex: string): WorkerAnswer | Promise<WorkerAnswer> {
    // The disk looks slow: let the primary read through its thread pool instead of blocking here.
    if (this.#guard.paused) return 'forward';
    const digest: Digest = `sha256:${hex}`;
    const path = this.pathOf(hex);
    const etag = blobEtag(hex);
    const h = req.headers;
    const inm = h['if-none-match'];
    if (inm !== undefined && noneMatch(Array.isArray(inm) ? inm.join(',') : inm, etag)) {
      if (!this.#exists(path)) return 'forward';
      res.writeHead(304, this.#baseHeaders(etag, false));
      res.end();
      return { status: 304, bytesOut: 0, hit: false };
    }
    const ifRange = h['if-range'];
    const rangeHeader = ifRangeHolds(Array.isArray(ifRange) ? ifRange.join(',') : ifRange, etag)
      ? h.range
      : undefined;
    if (req.method === 'HEAD') {
      const size = this.#sizeOf(path);
      if (size === undefined) return 'forward';
      const r = parseRange(rangeHeader, size);
      if (r.kind === 'unsatisfiable') return 'forward';
      res.writeHead(r.kind === 'partial' ? 206 : 200, this.#contentHeaders(etag, size, r, false));
      res.end();
      // bytesOut is the Content-Length, as the primary's request line says it (its metric counts 0 for HEAD).
      return {
        status: r.kind === 'partial' ? 206 : 200,
        bytesOut: r.kind === 'partial' ? r.end - r.start : size,
        hit: false,
      };
    }
    // A small blob read and hashed here before, its file unchanged since: one stat, no read.
    let bytes = this.#hot.get(digest, path);
    if (bytes === undefined) {
      const got = this.#guard.run(() => readSmallBlobSync(path, SMALL_READ_BYTES));
      if (got === 'absent') return 'forward';
      if (got === 'large') return this.#answerLarge(res, digest, path, etag, rangeHeader);
      const { stats } = got;
      bytes = got.bytes;
      if (bytes.byteLength !== stats.size) return 'forward'; // changed under us: the primary retries
      const identity = fileIdentity(stats);
      if (!this.#trusted.has(digest, identity)) {
        if (sha256(bytes) !== digest) return 'forward'; // the primary quarantines it and answers
        this.#trusted.add(digest, identity);
      }
      this.#hot.add(digest, bytes, stats);
    }
    const size = bytes.byteLength;
    const r = parseRange(rangeHeader, size);
    if (r.kind === 'unsatisfiable') return 'forward';
    const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, size];
    const status = r.kind === 'partial' ? 206 : 200;
    res.writeHead(status, this.#contentHeaders(etag, size, r, true));
    res.end(start === 0 && end === size ? bytes : bytes.subarray(start, end));
    return { status, bytesOut: end - start, hit: true };
  }

  async #answerLarge(
    res: ServerResponse,
    digest: Digest,
    path: string,
    etag: string,
    rangeHeader: string | undefined,
  ): Promise<WorkerAnswer> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, 'r');
    } catch {
      return 'forward';
    }
    let st: Awaited<ReturnType<typeof fh.stat>>;
    try {
      st = await fh.stat();
    } catch {
      await fh.close().catch(() => {});
      return 'forward';
    }
    const r = parseRange(rangeHeader, st.size);
    const identity = fileIdentity(st);
    const trusted = this.#trusted.has(digest, identity);
    // Unsatisfiable (the primary's error answer), or a part of a file not hashed yet (a range cannot
    // be verified on its own; the primary hashes the whole file once, then serves it).
    if (r.kind === 'unsatisfiable' || (!trusted && r.kind === 'partial') || st.size <= SMALL_READ_BYTES) {
      await fh.close().catch(() => {});
      return 'forward';
    }
    const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, st.size];
    const status = r.kind === 'partial' ? 206 : 200;
    res.writeHead(status, this.#contentHeaders(etag, st.size, r, true));
    const stream = diskStream({
      fh,
      start,
      end,
      chunkBytes: DEFAULTS.serveChunkBytes,
      sync: this.#guard,
      verify: trusted
        ? undefined
        : {
            digest,
            verified: () => this.#trusted.add(digest, identity),
            mismatch: async () => {
              this.#trusted.forget(digest);
              this.#hot.forget(digest);
              this.#onCorrupt(digest);
            },
          },
      done: () => {
        fh.close().catch(() => {});
      },
    });
    // A mismatch destroys the stream: the response is cut short of its Content-Length, as the primary's is.
    stream.once('error', () => res.destroy());
    stream.pipe(res);
    return { status, bytesOut: end - start, hit: true };
  }

  /** The file of blob `hex` (64 lowercase hex) in the data directory: FsBlobStore.pathIn's. */
  pathOf(hex: string): string {
    return `${this.#blobDir}/${hex.slice(0, 2)}/${hex}`;
  }

  #exists(path: string): boolean {
    return this.#sizeOf(path) !== undefined;
  }

  #sizeOf(path: string): number | undefined {
    try {
      const st = statSync(path, { throwIfNoEntry: false });
      return st?.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The headers of every answer, as a flat list for writeHead (Node's fast
   * way: no header object, no setHeader per name): which worker answered,
   * and the primary's blob headers (http-range.ts blobBaseHeaders), with
   * x-hoard-tier when the body comes from the disk.
   */
  #baseHeaders(etag: string, tier: boolean): string[] {
    const h = blobBaseHeaderList(etag);
    h.push('x-hoard-worker', this.#workerId);
    if (tier) h.push('x-hoard-tier', 'disk');
    return h;
  }

  #contentHeaders(
    etag: string,
    size: number,
    r: { kind: 'full' } | { kind: 'partial'; start: number; end: number },
    tier: boolean,
  ): string[] {
    const h = this.#baseHeaders(etag, tier);
    h.push(
      'content-type',
      'application/octet-stream',
      'content-length',
      String(r.kind === 'partial' ? r.end - r.start : size),
    );
    if (r.kind === 'partial') h.push('content-range', `bytes ${r.start}-${r.end - 1}/${size}`);
    return h;
  }
}
