// Answering GET and HEAD of a build-tool protocol with stored content, for
// every front-end (Bazel, ccache, Turborepo, Nx, Gradle): the length, one
// byte range where the client asks for it (RFC 9110, as /v1/blobs does), an
// optional strong ETag from the content digest, and the body.
//
// The content arrives already opened (a BlobHandle): the lookup that decided
// "hit" and the bytes sent come from the same copy, so an eviction between
// the two cannot turn a hit into a torn or failed answer. Bytes held in
// memory are sent as one Buffer, not through a stream: on a small cache hit
// the stream machinery is a large share of the request's cost.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Digest, hexOf } from '../core/digest.ts';
import { HoardError } from '../core/errors.ts';
import type { BlobHandle } from '../store/blob-handle.ts';
import { blobEtag, parseRange } from './http-range.ts';

export interface SendOptions {
  /** Sends a strong ETag made from this digest. */
  etag?: Digest;
  /** Default application/octet-stream. */
  contentType?: string;
  /** Protocol headers answered with the content (Turborepo's x-artifact-*). */
  headers?: Readonly<Record<string, string>>;
  /** The Range header to honour instead of the request's (Azure's `x-ms-range`). */
  range?: string;
  /** Told how many body bytes are sent (not for HEAD or a refused range): the bytes-out metric. */
  onBody?(bytes: number): void;
}

/** Sends the opened content, or throws a 416 (the handle is closed whenever no body takes it). */
export function sendContent(
  request: FastifyRequest,
  reply: FastifyReply,
  handle: BlobHandle,
  opts: SendOptions = {},
): FastifyReply {
  const { size } = handle;
  const range = opts.range ?? request.headers.range;
  const r = parseRange(Array.isArray(range) ? range.join(',') : range, size);
  if (r.kind === 'unsatisfiable') {
    handle.close();
    reply.header('content-range', `bytes */${size}`);
    throw new HoardError('HOARD_ERANGE_NOT_SATISFIABLE', `range not satisfiable for ${size} bytes`, {
      details: { size },
    });
  }
  const [start, end] = r.kind === 'partial' ? [r.start, r.end] : [0, size];
  if (opts.etag !== undefined) reply.header('etag', blobEtag(hexOf(opts.etag)));
  if (opts.headers) for (const [k, v] of Object.entries(opts.headers)) reply.header(k, v);
  reply.header('accept-ranges', 'bytes');
  reply.header('content-type', opts.contentType ?? 'application/octet-stream');
  reply.header('content-length', String(end - start));
  if (r.kind === 'partial') {
    reply.code(206);
    reply.header('content-range', `bytes ${start}-${end - 1}/${size}`);
  }
  if (request.method === 'HEAD') {
    handle.close();
    return reply.send();
  }
  opts.onBody?.(end - start);
  return reply.send(handle.bytes ? handle.bytes(start, end) : handle.stream(start, end));
}

/** Whether the request asks for part of the content (a cold read then fetches only that part). */
export function isRanged(request: FastifyRequest): boolean {
  return request.headers.range !== undefined;
}
