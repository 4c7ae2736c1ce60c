// Snapshot routes of the git proxy, as GitSubRoutes of the git plugin:
//
//   GET|HEAD /git/<repo>/snapshot.tar.zst[?ref=<branch|tag>]
//       after the freshness check, the snapshot of the ref's commit (default:
//       the upstream's HEAD branch). 200 with the body and
//       Content-Location: /v1/blobs/sha256/<hex>   (immutable, serves Range)
//       ETag: "<hex>", X-Hoard-Commit: <sha>, Cache-Control: no-cache, and
//       X-Hoard-Ref: the full ref resolved (e.g. refs/heads/main).
//   GET|HEAD /git/<repo>/snapshot/<commit>.tar.zst
//       that commit's snapshot (fetched first if the mirror lacks it), or 404.
//
// Clients read the headers of the stable URL and download the immutable
// blob URL in parallel ranges, so a regeneration can never mix two archives.

import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hexOf } from '../core/digest.ts';
import { HoardError, httpStatusOf, toHoardError } from '../core/errors.ts';
import { clientMessage, logFailure } from './git-http-replies.ts';
import type { GitSubRoute } from './git-routes.ts';
import type { SnapshotInfo, SnapshotService } from './snapshot-service.ts';

const STABLE = /^(.+)\/snapshot\.tar\.zst$/;
const BY_COMMIT = /^(.+)\/snapshot\/([^/]+)\.tar\.zst$/;

function requestBase(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

async function send(
  service: SnapshotService,
  request: FastifyRequest,
  reply: FastifyReply,
  info: SnapshotInfo,
): Promise<unknown> {
  const hex = hexOf(info.digest);
  service.served++;
  const etag = `"${hex}"`;
  reply.headers({
    'content-location': `/v1/blobs/sha256/${hex}`,
    etag,
    'x-hoard-commit': info.commit,
    'cache-control': 'no-cache',
    'content-type': 'application/zstd',
  });
  if (info.staleSeconds !== null) reply.header('x-hoard-stale', String(info.staleSeconds));
  if (info.ref) reply.header('x-hoard-ref', info.ref);
  const inm = request.headers['if-none-match'];
  if (inm?.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) return reply.code(304).send();
  reply.header('content-length', String(info.size));
  // HEAD goes through fastify's automatic HEAD route, which keeps our
  // Content-Length only for a stream payload (an empty body would reset it to 0).
  if (request.method === 'HEAD') return reply.code(200).send(Readable.from([]));
  const body = await service.blobs.read(info.digest);
  return reply.code(200).send(body);
}

/**
 * A failure as the client may see it: a 5xx's text (git's stderr, the
 * upstream's error) goes to the log, the client gets a generic message with
 * the request id (see clientMessage).
 */
function sanitized(
  handler: GitSubRoute['handler'],
): (request: FastifyRequest, reply: FastifyReply, m: RegExpExecArray) => Promise<unknown> {
  return async (request, reply, m) => {
    try {
      return await handler(request, reply, m);
    } catch (err) {
      const e = toHoardError(err, 'HOARD_EGIT');
      if (httpStatusOf(e) < 500) throw e;
      logFailure(request, e);
      throw new HoardError(e.code, clientMessage(e, request), { details: { clientSafe: true } });
    }
  };
}

/** The snapshot routes for the git plugin's `routes` option. */
export function snapshotRoutes(service: SnapshotService): GitSubRoute[] {
  return [
    {
      method: 'GET',
      match: BY_COMMIT,
      handler: sanitized(async (request, reply, m) =>
        send(service, request, reply, await service.forCommit(m[1], m[2], requestBase(request))),
      ),
    },
    {
      method: 'GET',
      match: STABLE,
      handler: sanitized(async (request, reply, m) => {
        const ref = (request.query as { ref?: string }).ref;
        return send(service, request, reply, await service.forRef(m[1], ref, requestBase(request)));
      }),
    },
  ];
}
