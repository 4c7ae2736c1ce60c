// Nx custom remote cache specification (nx.dev, "Self-hosted caching",
// OpenAPI 1.0.0):
//   PUT /v1/cache/{hash}   a task's output archive (tar) → 200; 409 when the
//                          hash exists ("Cannot override an existing record");
//                          401 no/invalid token; 403 e.g. a read-only token
//   GET /v1/cache/{hash}   200 with the archive; 404 when absent
//
// An entry is `cache/nx/<hash>`, written create-if-absent, as the spec's 409
// says: the first complete upload of a hash stays, a concurrent or later
// one is refused and stores nothing new. Nx prints error bodies to its user,
// so they are `text/plain` messages here (the spec's schema), not the
// server's JSON. Nx 24 treats any PUT answer but 200 and 409 as a
// misconfigured endpoint, so success is exactly 200.

import type { FastifyError, FastifyInstance } from 'fastify';
import { HoardError, httpStatusOf } from '../../core/errors.ts';
import type { CacheEntries } from '../../server/cache-entries.ts';
import { isRanged } from '../../server/send-content.ts';
import { rawBodies, receiveUpload } from '../upload-body.ts';

/** Nx hashes are decimal today (a 64-bit xxhash); hex or longer ones fit too. */
const HASH = /^[0-9A-Za-z]{1,128}$/;

interface HashParams {
  hash: string;
}

export async function nxRoutes(app: FastifyInstance, entries: CacheEntries): Promise<void> {
  const noScope = { config: { scope: 'none' as const } };
  const nameOf = (hash: string) => {
    if (!HASH.test(hash))
      throw new HoardError('HOARD_EBAD_REQUEST', `invalid Nx hash ${JSON.stringify(hash.slice(0, 200))}`);
    return entries.refName(hash);
  };

  app.setErrorHandler((err: FastifyError | HoardError, request, reply) => {
    const status = err instanceof HoardError ? httpStatusOf(err) : (err.statusCode ?? 500);
    if (status >= 500) request.log.error({ err }, 'request failed');
    let message = status >= 500 && !(err instanceof HoardError) ? 'internal error' : err.message;
    // The server's own hint names HOARD_TOKEN; an Nx user sets another variable.
    if (status === 401) message += ' (set NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN to a hoard token)';
    reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`);
  });

  rawBodies(app);

  app.put<{ Params: HashParams }>('/v1/cache/:hash', noScope, async (request, reply) => {
    const name = nameOf(request.params.hash);
    entries.authorize(request, 'write', name);
    const res = await receiveUpload(
      request,
      reply,
      { what: `artifact ${request.params.hash}` },
      (body, size) => entries.put(name, body, { size, mode: 'create' }),
    );
    if (!res.created)
      return reply.code(409).type('text/plain; charset=utf-8').send('Cannot override an existing record\n');
    return reply.code(200).send();
  });

  app.get<{ Params: HashParams }>('/v1/cache/:hash', noScope, async (request, reply) => {
    const name = nameOf(request.params.hash);
    entries.authorize(request, 'read', name);
    const opened = await entries.open(name, { ranged: isRanged(request) });
    if (!opened) return reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
    return entries.send(request, reply, opened);
  });
}
