// Gradle's HTTP build cache (org.gradle.caching.http.HttpBuildCache) under
// /gradle: `GET /gradle/<key>` answers 200 with the entry or 404 (a miss),
// `PUT /gradle/<key>` stores it (any 2xx is success to Gradle), HEAD as GET
// without a body. Credentials come as HTTP Basic (Gradle sends them
// preemptively; the hoard token is the password, any user name), Bearer
// works too. Entries are cache refs `cache/gradle/<key>` over blobs, so
// bytes Gradle shares with another tool are stored once.
//
// Overwrite: last writer wins. Gradle's protocol has no "exists" answer and
// its reference service (MapBasedBuildCacheService) stores with Map.put; a
// PUT of an existing key happens when an entry is stored again (e.g.
// `--rerun-tasks`), and the fresh outputs replace the old ones.
//
// Status codes matter to Gradle: 401, 403, 400, 405, 406, 411, 415, 417 and a
// few others are fatal (the build fails), 413 means "too large, not stored"
// (the build goes on), any other error disables the remote cache for the
// rest of the build. So auth and key errors are fatal by design; a too-large
// or failed upload is not.

import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HoardError } from '../../core/errors.ts';
import type { CacheEntries } from '../../server/cache-entries.ts';
import { isRanged } from '../../server/send-content.ts';
import { declaredLength, rawBodies } from '../upload-body.ts';

/**
 * Gradle's cache key: its HashCode in lowercase hex. Gradle (4.4 to 8.x)
 * uses MD5, 32 characters; up to 128 are accepted so a longer hash in a
 * later release still works.
 */
const GRADLE_KEY = /^[0-9a-f]{32,128}$/;

/** What Gradle sends as Content-Type (v1 up to Gradle 5, v2 since); stored and returned as it came. */
const ARTIFACT_TYPE = /^application\/vnd\.gradle\.build-cache-artifact\.v\d{1,3}$/;

interface KeyParams {
  key: string;
}

export async function gradleRoutes(app: FastifyInstance, entries: CacheEntries): Promise<void> {
  rawBodies(app);

  /** The entry name of the request's key, after auth (401/403 come before anything about the key). */
  const entryName = (request: FastifyRequest<{ Params: KeyParams }>, need: 'read' | 'write'): string => {
    const key = request.params.key;
    if (!GRADLE_KEY.test(key)) {
      entries.authorize(request, need);
      throw new HoardError(
        'HOARD_EBAD_REQUEST',
        `not a Gradle build cache key: ${JSON.stringify(key.slice(0, 80))}`,
        {
          hint: 'Gradle keys are 32 to 128 lowercase hex characters; point HttpBuildCache.url at http://<host>/gradle/',
        },
      );
    }
    const name = entries.refName(key);
    // A 401 carries the server's Basic challenge; a prefix-bound token needs a prefix covering `name`.
    entries.authorize(request, need, name);
    return name;
  };

  app.route<{ Params: KeyParams }>({
    method: ['GET', 'HEAD'],
    url: '/:key',
    exposeHeadRoute: false,
    config: { scope: 'none' },
    handler: async (request, reply) => {
      const name = entryName(request, 'read');
      const opened = await entries.open(name, { ranged: isRanged(request), signal: signalOf(reply) });
      if (!opened)
        return reply
          .code(404)
          .type('text/plain; charset=utf-8')
          .send(`no build cache entry ${request.params.key}\n`);
      const type = opened.entry.meta['content-type'];
      return entries.send(request, reply, opened, type ? { contentType: type } : {});
    },
  });

  app.put<{ Params: KeyParams }>('/:key', { config: { scope: 'none' } }, async (request, reply) => {
    const name = entryName(request, 'write');
    const size = declaredLength(request);
    const type = request.headers['content-type'];
    const meta: Record<string, string> = {};
    if (type !== undefined && ARTIFACT_TYPE.test(type)) meta['content-type'] = type;
    const body = (request.body as IncomingMessage | undefined) ?? request.raw;
    const res = await entries.put(name, body instanceof Readable ? body : Readable.from(body), {
      size,
      meta,
      mode: 'overwrite',
      signal: signalOf(reply),
    });
    return reply.code(res.created ? 201 : 200).send();
  });
}

/** Aborted when the client goes away before its answer is out, so a fill or an upload for nobody stops. */
function signalOf(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}
