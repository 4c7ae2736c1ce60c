// What every answer of the git routes (git-routes.ts, git-receive-pack.ts,
// git-fill-answers.ts, snapshot-routes.ts) has in common: no caching of
// anything mutable, and failures in the form a git client shows its user
// ("remote: …" from a text/plain body), with a 5xx's details kept for the
// log rather than sent.

import type { FastifyReply, FastifyRequest } from 'fastify';
import { type HoardError, httpStatusOf, toHoardError } from '../core/errors.ts';

/** The headers of every git answer but an immutable blob's (git http-backend's own). */
export const NO_CACHE = {
  'cache-control': 'no-cache, max-age=0, must-revalidate',
  pragma: 'no-cache',
  expires: 'Fri, 01 Jan 1980 00:00:00 GMT',
};

/** Answers a git request with its failure: the status its code maps to, a text a git client shows. */
export function replyFailure(reply: FastifyReply, err: unknown): FastifyReply {
  const e = toHoardError(err, 'HOARD_EGIT');
  const status = httpStatusOf(e);
  if (status >= 500) logFailure(reply.request, e);
  // text/plain: the git client shows it to the user as "remote: …".
  return reply
    .code(status)
    .headers(NO_CACHE)
    .header('content-type', 'text/plain; charset=utf-8')
    .header('x-hoard-error', e.code)
    .header('x-hoard-request-id', String(reply.request.id))
    .send(`${clientMessage(e, reply.request)}\n`);
}

/**
 * Logs a failed git request with everything known (git's stderr, the
 * upstream's HTTP error, the cause chain); the request logger carries reqId.
 */
export function logFailure(request: FastifyRequest, e: HoardError): void {
  const cause = e.cause instanceof Error ? e.cause.message : undefined;
  request.log.warn({ err: e.message, cause, code: e.code, reqId: request.id }, 'git request failed');
}

/**
 * What a client is told about a failure. 4xx messages are hoard's own words
 * about the request. A 5xx may carry an upstream's or git's text (host names,
 * internal addresses, file paths): the client gets a generic message and the
 * request id to find the details in the log, except for messages hoard wrote
 * itself and marked `details.clientSafe` (e.g. "could not mirror X: upstream
 * fetch failed").
 */
export function clientMessage(e: HoardError, request: FastifyRequest): string {
  if (httpStatusOf(e) < 500) return `${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}`;
  const generic = ['HOARD_EGIT', 'HOARD_EREMOTE'].includes(e.code)
    ? 'upstream fetch failed'
    : 'internal error';
  const text = e.details?.clientSafe === true ? e.message : `git request failed: ${generic}`;
  return `${text} (request id ${request.id})${e.hint ? `\nhint: ${e.hint}` : ''}`;
}
