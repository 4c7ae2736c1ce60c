// Answering GET and HEAD of a build-tool protocol with stored content: the
// length, a strong ETag from the content digest, one byte range where the
// client asks for it (RFC 9110, as /v1/blobs does), and the body streamed.

import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, hexOf } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import { blobEtag, parseRange } from '../../server/http-range.ts';
import type { ByteRange } from '../../store/blob-store.ts';

export interface StoredContent {
  readonly size: number;
  readonly digest: Digest;
  open(range?: ByteRange): Promise<Readable>;
}

export async function sendContent(
  request: FastifyRequest,
  reply: FastifyReply,
  content: StoredContent,
): Promise<FastifyReply> {
  const { size } = content;
  const range = request.headers.range;
  const r = parseRange(Array.isArray(range) ? range.join(',') : range, size);
  if (r.kind === 'unsatisfiable') {
    reply.header('content-range', `bytes */${size}`);
    throw new HoardError('HOARD_ERANGE_NOT_SATISFIABLE', `range not satisfiable for ${size} bytes`, {
      details: { size },
    });
  }
  const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, size];
  reply.header('etag', blobEtag(hexOf(content.digest)));
  reply.header('accept-ranges', 'bytes');
  reply.header('content-type', 'application/octet-stream');
  reply.header('content-length', String(end - start));
  if (r.kind === 'partial') {
    reply.code(206);
    reply.header('content-range', `bytes ${start}-${end - 1}/${size}`);
  }
  if (request.method === 'HEAD') return reply.send();
  return reply.send(
    await content.open(r.kind === 'partial' ? { offset: start, length: end - start } : undefined),
  );
}
