// Receiving an upload of a build-tool protocol (a Bazel CAS blob or action
// result, a ccache entry): the raw request body as a stream bounded by
// --max-blob-size, and the failures of an upload told apart — too large
// (413, before a byte is read when Content-Length says so), cut short by the
// client (HOARD_ETRUNCATED), a full disk (507) — with nothing stored in any
// case (the stores publish only complete, verified bytes).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULTS } from '../../core/defaults.ts';
import { HoardError, isNoSpaceErrno, noSpaceOr } from '../../core/errors.ts';

/** Upload bodies are never parsed: handlers stream the raw request. */
export function rawBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
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
 * Runs `store` on the request body (at most `max` bytes, `size` the declared
 * Content-Length) and maps what can go wrong with an upload to its error.
 * The request is never destroyed mid-body: a client still writing would see
 * a reset instead of the answer; the rest is drained for a bounded time.
 */
export async function receiveUpload<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  opts: { max: number; what: string },
  store: (body: Readable, size: number | undefined) => Promise<T>,
): Promise<T> {
  const raw = request.raw;
  const header = request.headers['content-length'];
  const size = header === undefined ? undefined : Number(header);
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 0))
    throw new HoardError('HOARD_EBAD_REQUEST', 'invalid Content-Length');
  if (size !== undefined && size > opts.max) {
    reply.header('connection', 'close');
    throw overLimit(size, opts.max, opts.what);
  }
  const max = opts.max;
  const what = opts.what;
  const chunks = raw.iterator({ destroyOnReturn: false });
  const bounded = async function* () {
    let n = 0;
    for await (const chunk of chunks as AsyncIterable<Buffer>) {
      n += chunk.byteLength;
      if (n > max) throw overLimit(n, max, what);
      yield chunk;
    }
  };
  try {
    return await store(Readable.from(bounded()), size);
  } catch (err) {
    if (!raw.complete) {
      reply.header('connection', 'close');
      drainThenClose(raw, reply.raw);
    }
    if (isNoSpaceErrno(err)) throw noSpaceOr(err, what);
    if (!(err instanceof HoardError) && (raw.errored || raw.destroyed || raw.readableAborted))
      throw new HoardError('HOARD_ETRUNCATED', `${what}: request body cut short; nothing was stored`, {
        cause: err,
      });
    throw err;
  }
}

/** After the error answer: read and drop what is still coming, then close after uploadErrorLingerMs. */
function drainThenClose(req: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    if (req.complete || req.destroyed) return;
    req.resume();
    const timer = setTimeout(() => req.socket.destroy(), DEFAULTS.uploadErrorLingerMs);
    timer.unref();
    req.socket.once('close', () => clearTimeout(timer));
  });
}
