// Receiving an upload of a build-tool protocol (a Bazel CAS blob or action
// result, a ccache entry, a Turborepo or Nx artifact): the raw request body
// as a stream, bounded by --max-blob-size where the store does not bound it
// itself, and the failures of an upload told apart — too large (413, before
// a byte is read when Content-Length says so), cut short by the client
// (HOARD_ETRUNCATED), a full disk (507) — with nothing stored in any case
// (the stores publish only complete, verified bytes). A refused upload's
// connection is answered, then drained and closed (server/close-after-answer.ts).

import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HoardError, isNoSpaceErrno, noSpaceOr } from '../core/errors.ts';
import { closeAfterAnswer } from '../server/close-after-answer.ts';

/** Upload bodies are never parsed: handlers stream the raw request. */
export function rawBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
}

/** The request's Content-Length, if it sent one; a malformed one is a 400. */
export function declaredLength(request: FastifyRequest): number | undefined {
  const raw = request.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw new HoardError('HOARD_EBAD_REQUEST', 'invalid Content-Length');
  return n;
}

function overLimit(size: number, max: number, what: string): HoardError {
  return new HoardError(
    'HOARD_ETOO_LARGE',
    `${what} of ${size} bytes exceeds the server limit of ${max} bytes`,
    {
      hint: 'raise --max-blob-size on the server',
    },
  );
}

/**
 * Runs `store` on the request body (at most `max` bytes when given; without
 * it the store bounds the body itself; `size` the declared Content-Length)
 * and maps what can go wrong with an upload to its error. The request is
 * never destroyed mid-body: a client still writing would see a reset
 * instead of the answer; the rest is drained for a bounded time.
 */
export async function receiveUpload<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  opts: { max?: number; what: string },
  store: (body: Readable, size: number | undefined) => Promise<T>,
): Promise<T> {
  const raw = request.raw;
  const size = declaredLength(request);
  const { max, what } = opts;
  if (max !== undefined && size !== undefined && size > max) {
    closeAfterAnswer(raw, reply.raw);
    throw overLimit(size, max, what);
  }
  // Read without destroying the request when `store` stops early (see above).
  const chunks = raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
  const bounded = async function* (limit: number) {
    let n = 0;
    for await (const chunk of chunks) {
      n += chunk.byteLength;
      if (n > limit) throw overLimit(n, limit, what);
      yield chunk;
    }
  };
  try {
    return await store(Readable.from(max === undefined ? chunks : bounded(max)), size);
  } catch (err) {
    if (!raw.complete) closeAfterAnswer(raw, reply.raw);
    if (isNoSpaceErrno(err)) throw noSpaceOr(err, what);
    if (!(err instanceof HoardError) && (raw.errored || raw.destroyed || raw.readableAborted))
      throw new HoardError('HOARD_ETRUNCATED', `${what}: request body cut short; nothing was stored`, {
        cause: err,
      });
    throw err;
  }
}
