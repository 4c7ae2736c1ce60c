// A raw request body into a cache entry, for the build-tool front-ends
// (Turborepo, Nx): the declared Content-Length, and what happens to the
// connection when the store gives up before the body ends.

import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULTS } from '../../core/defaults.ts';
import { HoardError } from '../../core/errors.ts';
import type { CacheEntries, PutOptions, PutResult } from '../../server/cache-entries.ts';

/** The request's Content-Length, if it sent one; a malformed one is a 400. */
export function declaredLength(request: FastifyRequest): number | undefined {
  const raw = request.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
    throw new HoardError('HOARD_EBAD_REQUEST', 'invalid Content-Length');
  return n;
}

/**
 * Streams the request body into `entries.put`. On failure (too large, cut
 * short, disk full) the rest of the body is unread: the answer goes out with
 * `Connection: close`, then what is left is drained for a bounded time, so
 * the client reads the error instead of a reset connection.
 */
export async function putFromRequest(
  entries: CacheEntries,
  name: string,
  request: FastifyRequest,
  reply: FastifyReply,
  opts: PutOptions,
): Promise<PutResult> {
  const req = request.raw;
  // Read without destroying the request when put() stops early (see above).
  const body = Readable.from(req.iterator({ destroyOnReturn: false }));
  try {
    return await entries.put(name, body, { ...opts, signal: opts.signal });
  } catch (err) {
    if (!req.complete) {
      reply.header('connection', 'close');
      reply.raw.once('finish', () => {
        if (req.complete || req.destroyed) return;
        req.resume();
        const timer = setTimeout(() => req.socket.destroy(), DEFAULTS.uploadErrorLingerMs);
        timer.unref();
        req.socket.once('close', () => clearTimeout(timer));
      });
    }
    if (!(err instanceof HoardError) && (req.errored || req.destroyed))
      throw new HoardError('HOARD_ETRUNCATED', 'request body cut short; nothing was stored', { cause: err });
    throw err;
  }
}
