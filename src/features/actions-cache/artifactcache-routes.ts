// Cache service v1, `_apis/artifactcache` (the legacy GitHub service, and
// what Gitea's, Forgejo's and act's runners speak), at the paths the toolkit
// builds from ACTIONS_CACHE_URL (`<base>_apis/artifactcache/<resource>`):
//   GET   cache?keys=k1,k2&version=V   → 200 {cacheKey, scope, creationTime, archiveLocation, cacheVersion} | 204
//   GET   caches?key=K                 → {totalCount, artifactCaches} (the toolkit's diagnostics on a miss)
//   POST  caches {key, version, cacheSize?}  → 201 {cacheId} | 409 (exists / being created)
//   PATCH caches/:id  Content-Range: bytes a-b/*, the bytes → 204
//   POST  caches/:id {size}            → 204: the chunks cover [0, size) exactly; published
// `archiveLocation` is a signed download URL (blob-routes.ts). Errors are
// `{"message","typeKey"}`, the shape the toolkit's HTTP client reads a
// message from. Chunks arrive in parallel and in any order; only the
// reserving token may send them and commit.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HoardError } from '../../core/errors.ts';
import { acceptJsonBodies } from '../../server/json-bodies.ts';
import { rawBodies, receiveUpload } from '../upload-body.ts';
import type { ActionsCache } from './actions-cache.ts';
import { checkKey, checkVersion, entryRef, MAX_KEYS } from './cache-keys.ts';
import type { PendingUpload } from './pending-uploads.ts';
import { answerErrors } from './service-errors.ts';

const BASE = '/_apis/artifactcache';
/** Entries listed by `GET caches?key=` (diagnostics only). */
const MAX_LISTED = 100;

export async function artifactCacheRoutes(
  app: FastifyInstance,
  cache: ActionsCache,
  maxJsonBodyBytes: number,
): Promise<void> {
  const noScope = { config: { scope: 'none' as const } };

  answerErrors(app, (reply, status, message, err) => {
    const typeKey = err instanceof HoardError ? err.code : 'HOARD_EINTERNAL';
    reply.code(status).type('application/json').send({ message, typeKey });
  });

  /** The upload `:id` names, which only its owner may touch. */
  const ownUpload = (request: FastifyRequest<{ Params: { id: string } }>): PendingUpload => {
    const u = cache.uploads.byCacheId(request.params.id);
    const owner = cache.authorize(request, 'write', u.ref);
    if (owner !== u.owner || cache.namespaceOf(request) !== u.namespace)
      throw new HoardError('HOARD_EFORBIDDEN', 'this upload was reserved by another token');
    return u;
  };

  app.get<{ Querystring: { keys?: string; version?: string } }>(
    `${BASE}/cache`,
    noScope,
    async (request, reply) => {
      const { keys: raw, version: rawVersion } = request.query;
      if (typeof raw !== 'string' || raw === '')
        throw new HoardError('HOARD_EBAD_REQUEST', 'keys is required');
      const keys = raw.split(',');
      if (keys.length > MAX_KEYS) throw new HoardError('HOARD_EBAD_REQUEST', `at most ${MAX_KEYS} keys`);
      for (const k of keys) checkKey(k);
      const version = checkVersion(rawVersion);
      cache.authorize(request, 'read');
      const match = await cache.lookup(cache.namespaceOf(request), version, keys);
      if (!match) return reply.code(204).send();
      return {
        cacheKey: match.key,
        scope: cache.namespaceOf(request),
        cacheVersion: version,
        creationTime: match.entry.meta.created,
        archiveLocation: cache.downloadUrl(cache.base(request), match.entry),
      };
    },
  );

  app.get<{ Querystring: { key?: string } }>(`${BASE}/caches`, noScope, async (request) => {
    const key = checkKey(request.query.key);
    cache.authorize(request, 'read');
    const namespace = cache.namespaceOf(request);
    const found = await cache.listKey(namespace, key, MAX_LISTED);
    return {
      totalCount: found.length,
      artifactCaches: found.map((e) => ({
        cacheKey: e.meta.key,
        cacheVersion: e.meta.version,
        scope: namespace,
        creationTime: e.meta.created,
      })),
    };
  });

  app.register(async (json) => {
    acceptJsonBodies(json, maxJsonBodyBytes);

    json.post(`${BASE}/caches`, noScope, async (request, reply) => {
      const body = object(request.body);
      const key = checkKey(body.key);
      const version = checkVersion(body.version);
      const declared =
        body.cacheSize === undefined || body.cacheSize === null
          ? undefined
          : size(body.cacheSize, 'cacheSize');
      const namespace = cache.namespaceOf(request);
      const owner = cache.authorize(request, 'write', entryRef(namespace, version, key));
      const u = await cache.reserve({ owner, namespace, key, version }, declared);
      return reply.code(201).send({ cacheId: u.cacheId });
    });

    json.post<{ Params: { id: string } }>(`${BASE}/caches/:id`, noScope, async (request, reply) => {
      const u = ownUpload(request);
      await cache.publish(u, size(object(request.body).size, 'size'));
      return reply.code(204).send();
    });
  });

  app.register(async (raw) => {
    rawBodies(raw);
    raw.patch<{ Params: { id: string } }>(`${BASE}/caches/:id`, noScope, async (request, reply) => {
      const u = ownUpload(request);
      const { start, end } = contentRange(request.headers['content-range']);
      await cache.uploads.using(u, () =>
        receiveUpload(request, reply, { what: `Actions cache chunk of ${u.key}` }, (body, length) => {
          if (length !== undefined && length !== end - start + 1)
            throw new HoardError('HOARD_EBAD_REQUEST', 'Content-Length does not match Content-Range');
          return cache.uploads.writeRange(u, start, end, body);
        }),
      );
      return reply.code(204).send();
    });
  });
}

/** `bytes a-b/*` (or `/total`): inclusive byte positions. */
export function contentRange(header: unknown): { start: number; end: number } {
  const m =
    typeof header === 'string' ? /^bytes (\d{1,16})-(\d{1,16})\/(\*|\d{1,16})$/.exec(header.trim()) : null;
  const start = Number(m?.[1]);
  const end = Number(m?.[2]);
  if (!m || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start)
    throw new HoardError(
      'HOARD_EBAD_REQUEST',
      'Content-Range must be `bytes <first>-<last>/*` with first <= last',
    );
  if (m[3] !== '*' && end >= Number(m[3]))
    throw new HoardError('HOARD_EBAD_REQUEST', 'Content-Range ends beyond its total');
  return { start, end };
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HoardError('HOARD_EBAD_REQUEST', 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

function size(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new HoardError('HOARD_EBAD_REQUEST', `${what} must be a non-negative integer`);
  return v;
}
