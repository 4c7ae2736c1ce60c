// The body of a git POST (upload-pack, receive-pack): inflated when the
// client sent it gzip-compressed, read on demand, and its failures told
// apart from git's: bad gzip data or a client that went away is the
// request's fault (400), never a 5xx.

import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyRequest } from 'fastify';
import { HoardError, toHoardError } from '../core/errors.ts';
import { readChunk } from './pkt-line.ts';

/**
 * The request body, inflated when the client sent it gzip-compressed. Its
 * failures (bad gzip, a client that went away) surface as an 'error' event
 * or `errored` on the returned stream, whenever they happen: a listener is
 * attached at once, so one emitted before anyone listens is not lost.
 */
export function requestBody(request: FastifyRequest): Readable {
  const raw = request.body as Readable;
  if (!(raw instanceof Readable)) throw new HoardError('HOARD_EBAD_REQUEST', 'missing git request body');
  const enc = String(request.headers['content-encoding'] ?? '').toLowerCase();
  let body: Readable = raw;
  if (enc === 'gzip' || enc === 'x-gzip') {
    // Not pipeline(): it would destroy the request on a gzip error, i.e. the socket,
    // and the client would get a reset instead of the 400. The rest of the body is
    // drained instead (the server's request timeouts bound how long).
    const gunzip = createGunzip();
    raw.on('error', (err) => gunzip.destroy(err));
    gunzip.on('error', () => {
      raw.unpipe(gunzip);
      raw.resume();
    });
    body = raw.pipe(gunzip);
  } else if (enc && enc !== 'identity')
    throw new HoardError('HOARD_EBAD_REQUEST', `unsupported Content-Encoding ${JSON.stringify(enc)}`);
  body.on('error', () => {});
  return body;
}

/** Reads the rest of a request body after `head` (at most `max` bytes in all; then what was read). */
export async function readRest(body: Readable, head: Buffer, max: number): Promise<Buffer> {
  const parts = [head];
  let n = head.length;
  while (n < max) {
    const c = await readChunk(body);
    if (c === null) break;
    parts.push(c);
    n += c.length;
  }
  return Buffer.concat(parts);
}

/** A failure reading the request body as a client error: bad gzip data is 400, never a 5xx. */
export function bodyFailure(err: unknown): HoardError {
  if (err instanceof HoardError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code.startsWith('Z_') || /incorrect header check|unexpected end of file|invalid/i.test(String(err)))
    return new HoardError('HOARD_EBAD_REQUEST', 'invalid gzip request body', {
      cause: err,
      hint: 'the body sent with Content-Encoding: gzip does not inflate',
    });
  return toHoardError(err, 'HOARD_EBAD_REQUEST', 'could not read the git request body');
}
