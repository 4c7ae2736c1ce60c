// /v1/blobs: GET/HEAD (ranges, conditional requests), PUT (streamed,
// verified, bounded), POST /v1/blobs/missing, POST /v1/blobs/batch (many
// small blobs in one framed response), POST /v1/blobs/batch-upload (many
// small blobs in one framed request, durable together), and two extensions used by the
// http(s):// remote's conformance (DELETE and a paginated list).

import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  BATCH_CONTENT_TYPE,
  BATCH_MAGIC,
  BatchStatus,
  RECORD_HEAD_BYTES,
  readUploadFrames,
  recordHead,
  writeRecordHead,
} from '../../core/blob-batch-frame.ts';
import { DEFAULTS } from '../../core/defaults.ts';
import { type Digest, digestFromHex, hexOf, parseDigest } from '../../core/digest.ts';
import { HoardError, isNoSpaceErrno, noSpaceOr } from '../../core/errors.ts';
import type { BlobHandle, ServingBlobStore } from '../../store/blob-handle.ts';
import { closeAfterAnswer } from '../close-after-answer.ts';
import { checkUnbound, type ServerContext } from '../context.ts';
import { blobBaseHeaders, blobEtag, ifRangeHolds, noneMatch, parseRange } from '../http-range.ts';
import { acceptJsonBodies, pageLimit } from '../json-bodies.ts';

interface HexParams {
  hex: string;
}

export async function blobRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  // Only the serving interface: whatever stack of tiers is behind it.
  const blobs: ServingBlobStore = ctx.blobs;

  // Blob bodies are never parsed: the handler streams the raw request.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.route<{ Params: HexParams }>({
    method: ['GET', 'HEAD'],
    url: '/sha256/:hex',
    exposeHeadRoute: false,
    config: { scope: 'read' },
    handler: async (request, reply) => {
      const digest = digestFromHex(request.params.hex);
      const etag = blobEtag(hexOf(digest));
      const head = request.method === 'HEAD';
      const inm = request.headers['if-none-match'];
      if (inm !== undefined && noneMatch(inm, etag)) {
        if (!(await blobs.has(digest))) throw notFound(digest);
        return reply.code(304).headers(blobBaseHeaders(etag)).send();
      }
      const rangeHeader = ifRangeHolds(headerString(request.headers['if-range']), etag)
        ? headerString(request.headers.range)
        : undefined;
      if (head) {
        const info = await blobs.stat(digest);
        if (!info) throw notFound(digest);
        const r = parseRange(rangeHeader, info.size);
        return sendHeadersOnly(reply, etag, info.size, r);
      }
      const handle = await blobs.open(digest, { ranged: rangeHeader !== undefined });
      if (!handle) throw notFound(digest);
      reply.header('x-hoard-tier', handle.tier);
      const r = parseRange(rangeHeader, handle.size);
      if (r.kind === 'unsatisfiable') {
        handle.close();
        return unsatisfiable(reply, handle.size);
      }
      const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, handle.size];
      reply.headers(blobBaseHeaders(etag));
      reply.header('content-type', 'application/octet-stream');
      reply.header('content-length', String(end - start));
      if (r.kind === 'partial') {
        reply.code(206);
        reply.header('content-range', `bytes ${start}-${end - 1}/${handle.size}`);
      }
      return reply.send(handle.bytes ? handle.bytes(start, end) : handle.stream(start, end));
    },
  });

  app.put<{ Params: HexParams }>('/sha256/:hex', { config: { scope: 'write' } }, async (request, reply) => {
    const digest = digestFromHex(request.params.hex);
    const max = ctx.config.maxBlobBytes;
    const lenHeader = request.headers['content-length'];
    const declared = lenHeader === undefined ? undefined : Number(lenHeader);
    if (declared !== undefined && (!Number.isSafeInteger(declared) || declared < 0))
      throw new HoardError('HOARD_EBAD_REQUEST', 'invalid Content-Length');
    if (declared !== undefined && declared > max) {
      // Refused before reading a byte: answered, then the body is dropped for a bounded time.
      closeAfterAnswer(request.raw, reply.raw);
      throw tooLarge(declared, max);
    }
    const body = (request.body as IncomingMessage | undefined) ?? request.raw;
    try {
      // A small declared body is taken from the request's own events into one
      // buffer: a stream, an async iterator and a generator per 4 KiB PUT were
      // ~60 µs of its CPU (profile in docs/benchmarks.md, "PUT 4 KiB through a journal").
      // Larger ones are streamed: read without destroying the request when the
      // store gives up mid-body (disk full, too large): destroying it would
      // reset the connection and the client would never see why. The answer
      // is sent, then the rest of the body is discarded for a bounded time
      // (closeAfterAnswer).
      const source =
        declared !== undefined && declared <= SMALL_BODY_BYTES && body instanceof Readable
          ? [await readSmallBody(body, declared)]
          : Readable.from(
              limitBytes(body instanceof Readable ? body.iterator({ destroyOnReturn: false }) : body, max),
            );
      const res = await blobs.write(digest, source, { size: declared });
      return reply
        .code(res.created ? 201 : 200)
        .header('etag', blobEtag(hexOf(digest)))
        .send({ digest, size: res.size, created: res.created });
    } catch (err) {
      // The body may be unread (e.g. a mismatch found early): don't keep the connection.
      if (!request.raw.complete) closeAfterAnswer(request.raw, reply.raw);
      // A full disk is ours, never the client's cut-off body (fs stores already say so; a raw errno too).
      if (isNoSpaceErrno(err)) throw noSpaceOr(err, `blob ${digest}`);
      if (!(err instanceof HoardError) && (request.raw.errored || request.raw.destroyed))
        throw new HoardError('HOARD_ETRUNCATED', 'request body cut short; nothing was stored', {
          cause: err,
        });
      throw err;
    }
  });

  // Many small blobs in one request (src/core/blob-batch-frame.ts's upload
  // framing): each record verified before the tiers see it, durability
  // settled once for the batch, the answer sent only once every blob is
  // stored. A failure mid-body still settles what was stored before it (so
  // nothing is left published but not durable), then answers the error.
  app.post('/batch-upload', { config: { scope: 'write' } }, async (request, reply) => {
    const body = (request.body as IncomingMessage | undefined) ?? request.raw;
    const chunks = body instanceof Readable ? body.iterator({ destroyOnReturn: false }) : body;
    const batch = blobs.writeBatch();
    try {
      const n = await readUploadFrames(
        chunks as AsyncIterable<Uint8Array>,
        {
          recordBytes: DEFAULTS.blobUploadRecordMaxBytes,
          totalBytes: ctx.config.blobBatchMaxBytes,
          records: DEFAULTS.blobBatchMaxDigests,
        },
        async (digest, bytes) => {
          await batch.add(digest, bytes);
        },
      );
      if (n === 0) throw new HoardError('HOARD_EBAD_REQUEST', 'a batched upload carries at least one blob');
    } catch (err) {
      await batch.flush().catch(() => batch.abort());
      if (!request.raw.complete) closeAfterAnswer(request.raw, reply.raw);
      if (isNoSpaceErrno(err)) throw noSpaceOr(err, 'batched blob upload');
      if (!(err instanceof HoardError) && (request.raw.errored || request.raw.destroyed))
        throw new HoardError(
          'HOARD_ETRUNCATED',
          'request body cut short; nothing past the last whole blob was stored',
          {
            cause: err,
          },
        );
      throw err;
    }
    return reply.code(200).send({ blobs: await batch.flush() });
  });

  app.delete<{ Params: HexParams }>(
    '/sha256/:hex',
    { config: { scope: 'write' } },
    async (request, reply) => {
      const digest = digestFromHex(request.params.hex);
      checkUnbound(ctx, request, 'delete blobs');
      const deleted = await blobs.delete(digest);
      if (!deleted) throw notFound(digest);
      return reply.code(204).send();
    },
  );

  // Missing and list speak JSON: a scoped child with a JSON parser for any content type.
  app.register(async (json) => {
    acceptJsonBodies(json, opts.ctx.config.maxJsonBodyBytes);

    json.post('/missing', { config: { scope: 'read' } }, async (request) => {
      const digests = digestList(request.body, DEFAULTS.missingMaxBatch, 'split the question into batches');
      return { missing: await blobs.missing(digests) };
    });

    json.post('/batch', { config: { scope: 'read' } }, async (request, reply) => {
      const digests = digestList(request.body, DEFAULTS.blobBatchMaxDigests, 'split the read into batches');
      if (digests.length === 0)
        throw new HoardError('HOARD_EBAD_REQUEST', 'a batch asks for at least one digest');
      if (new Set(digests).size !== digests.length)
        throw new HoardError('HOARD_EBAD_REQUEST', 'a digest is asked for twice in one batch');
      reply.header('content-type', BATCH_CONTENT_TYPE);
      reply.header('cache-control', 'no-store');
      // Pulled by the socket: a slow client stops the generator (backpressure),
      // a gone one ends it (the open handle is released by its stream).
      return reply.send(
        Readable.from(batchBody(blobs, digests, Math.min(ctx.config.blobBatchMaxBytes, 0xffff_ffff)), {
          objectMode: false,
        }),
      );
    });

    json.get<{ Querystring: { after?: string; limit?: string } }>(
      '/',
      { config: { scope: 'read' } },
      async (request) => {
        checkUnbound(ctx, request, 'list blobs');
        const q = request.query.after;
        const after = q !== undefined && q !== '' ? parseDigest(q) : undefined;
        const limit = pageLimit(request.query.limit, 1000, 10_000);
        const out: { digest: Digest; size: number }[] = [];
        let more = false;
        // The store seeks to the cursor, so a page costs one page, not a rescan from the start.
        for await (const b of blobs.list({ after })) {
          if (out.length === limit) {
            more = true;
            break;
          }
          out.push({ digest: b.digest, size: b.size });
        }
        return { blobs: out, next: more ? out[out.length - 1].digest : null };
      },
    );
  });
}

/** Blobs opened ahead of the one being sent: overlaps the tiers' lookups with sending. */
const BATCH_OPEN_AHEAD = 8;
/**
 * Records answered from bytes at hand (memory, a small disk blob) are
 * gathered into chunks of this size: a cache restore asks for ~45,000 blobs
 * of a few KiB, and a head and a body per record were two trips through the
 * response stream and a socket write each (a 64 KiB chunk is one).
 */
const GATHER_BYTES = 64 * 1024;
/** Bodies larger than this are sent as they are, not copied into a chunk. */
const GATHER_MAX_RECORD = 16 * 1024;

/**
 * The framed body of a batched read (src/core/blob-batch-frame.ts): one
 * record per digest in request order, present ones while the byte budget
 * lasts. A tier failing mid-body throws, which destroys the response: the
 * client sees a cut-short stream, never a wrong record. (Exported for
 * tests: the chunks it yields.)
 */
export async function* batchBody(
  blobs: ServingBlobStore,
  digests: readonly Digest[],
  budget: number,
): AsyncGenerator<Buffer> {
  const opening: Promise<BlobHandle | undefined>[] = [];
  let next = 0;
  const fillWindow = () => {
    while (next < digests.length && opening.length < BATCH_OPEN_AHEAD) {
      const p = blobs.open(digests[next++]);
      p.catch(() => {}); // awaited in order below; an early return must not leave it unhandled
      opening.push(p);
    }
  };
  // The chunk being gathered (a fresh one per chunk sent: the socket holds
  // what it was given until written).
  let chunk = Buffer.allocUnsafe(GATHER_BYTES);
  BATCH_MAGIC.copy(chunk, 0);
  let used = BATCH_MAGIC.byteLength;
  /** The gathered chunk, to send before anything that does not fit in it. */
  const take = (): Buffer | undefined => {
    if (used === 0) return undefined;
    const out = chunk.subarray(0, used);
    chunk = Buffer.allocUnsafe(GATHER_BYTES);
    used = 0;
    return out;
  };
  let left = budget;
  /** The handle being answered until its stream is taken (or it is closed). */
  let current: BlobHandle | undefined;
  try {
    for (let i = 0; i < digests.length; i++) {
      fillWindow();
      current = await opening.shift()!;
      const digest = digests[i];
      if (!current || current.size > left) {
        const status = current ? BatchStatus.notSent : BatchStatus.missing;
        current?.close();
        current = undefined;
        if (used + RECORD_HEAD_BYTES > GATHER_BYTES) yield take()!;
        writeRecordHead(chunk, used, digest, status, 0);
        used += RECORD_HEAD_BYTES;
        continue;
      }
      const size = current.size;
      if (size === 0 || current.bytes) {
        // Answered from what is at hand: the handle is done with before any yield.
        const bytes = size > 0 ? current.bytes!(0, size) : undefined;
        current.close();
        current = undefined;
        left -= size;
        if (size <= GATHER_MAX_RECORD) {
          if (used + RECORD_HEAD_BYTES + size > GATHER_BYTES) yield take()!;
          writeRecordHead(chunk, used, digest, BatchStatus.present, size);
          used += RECORD_HEAD_BYTES;
          if (bytes) {
            // TypedArray#set: Buffer#copy's per-call overhead was ~4 µs a record.
            chunk.set(bytes, used);
            used += bytes.byteLength;
          }
          continue;
        }
        const gathered = take();
        if (gathered) yield gathered;
        yield recordHead(digest, BatchStatus.present, size);
        if (bytes) yield bytes;
        continue;
      }
      left -= size;
      // Taken before the first yield: from here the stream owns (and closes) the file.
      const stream = current.stream(0, size);
      current = undefined;
      try {
        const gathered = take();
        if (gathered) yield gathered;
        yield recordHead(digest, BatchStatus.present, size);
        yield* stream as AsyncIterable<Buffer>;
      } finally {
        if (!stream.destroyed && !stream.readableEnded) stream.destroy();
      }
    }
    const rest = take();
    if (rest) yield rest;
  } finally {
    // Stopped early (client gone, a tier failed): release what was opened, ahead or at hand.
    current?.close();
    for (const p of opening)
      p.then(
        (h) => h?.close(),
        () => {},
      );
  }
}

/** The `{"digests":[…]}` of a JSON body, at most `max` of them, each a valid digest. */
function digestList(body: unknown, max: number, hint: string): Digest[] {
  const list = (body as { digests?: unknown } | undefined)?.digests;
  if (!body || typeof body !== 'object' || !Array.isArray(list))
    throw new HoardError('HOARD_EBAD_REQUEST', 'expected {"digests":["sha256:…",…]}');
  if (list.length > max)
    throw new HoardError('HOARD_EBAD_REQUEST', `at most ${max} digests per request, got ${list.length}`, {
      hint,
    });
  return list.map((d) => parseDigest(d));
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

function notFound(digest: Digest): HoardError {
  return new HoardError('HOARD_EBLOB_NOT_FOUND', `blob ${digest} not found`, { details: { digest } });
}

function tooLarge(size: number, max: number): HoardError {
  return new HoardError(
    'HOARD_ETOO_LARGE',
    `blob of ${size} bytes exceeds the server limit of ${max} bytes`,
    {
      hint: 'raise --max-blob-size on the server',
    },
  );
}

function unsatisfiable(reply: FastifyReply, size: number): FastifyReply {
  reply.header('content-range', `bytes */${size}`);
  throw new HoardError('HOARD_ERANGE_NOT_SATISFIABLE', `range not satisfiable for a ${size}-byte blob`, {
    details: { size },
  });
}

function sendHeadersOnly(
  reply: FastifyReply,
  etag: string,
  size: number,
  r: ReturnType<typeof parseRange>,
): FastifyReply {
  if (r.kind === 'unsatisfiable') return unsatisfiable(reply, size);
  reply.headers(blobBaseHeaders(etag));
  reply.header('content-type', 'application/octet-stream');
  if (r.kind === 'partial') {
    reply.code(206);
    reply.header('content-range', `bytes ${r.start}-${r.end - 1}/${size}`);
    reply.header('content-length', String(r.end - r.start));
  } else reply.header('content-length', String(size));
  return reply.send();
}

/** Declared bodies up to this are read whole into one buffer by the PUT handler (readSmallBody). */
const SMALL_BODY_BYTES = 64 * 1024;

/**
 * The body of a request that declared `size` bytes, read from its events
 * into one buffer (at most `size` bytes held). Ends short (the client went
 * away, the idle guard cut it) or long: a HOARD_ETRUNCATED, nothing stored.
 */
function readSmallBody(body: Readable, size: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    const cleanup = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
    };
    const fail = (err: unknown) => {
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      if (got + chunk.byteLength > size)
        return fail(new HoardError('HOARD_ETRUNCATED', `expected ${size} bytes, got more`));
      buf.set(chunk, got);
      got += chunk.byteLength;
    };
    const onEnd = () => {
      cleanup();
      if (got === size) resolve(buf);
      else reject(new HoardError('HOARD_ETRUNCATED', `expected ${size} bytes, got ${got}`));
    };
    const onError = (err: Error) => fail(err);
    // Closed before its end: the client is gone; the handler says so (request.raw.destroyed).
    const onClose = () => fail(new Error(`request body ended after ${got} of ${size} bytes`));
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('close', onClose);
  });
}

/** Counts body bytes while streaming; more than `max` fails with 413. */
async function* limitBytes(source: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const chunk of source) {
    n += chunk.byteLength;
    if (n > max) throw tooLarge(n, max);
    yield chunk;
  }
}
