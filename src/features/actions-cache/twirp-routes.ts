// Cache service v2: the Twirp JSON service
// `github.actions.results.api.v1.CacheService` of actions/toolkit's
// packages/cache (generated from results/api/v1/cache.proto), at the paths
// the toolkit builds from ACTIONS_RESULTS_URL (`new URL('/twirp/…', base)`:
// always at the server root):
//   POST /twirp/github.actions.results.api.v1.CacheService/CreateCacheEntry
//        {key, version} → {ok, signed_upload_url}
//   POST …/FinalizeCacheEntryUpload {key, version, size_bytes} → {ok, entry_id}
//   POST …/GetCacheEntryDownloadURL {key, restore_keys, version} → {ok, signed_download_url, matched_key}
// Fields are read in proto (snake_case) or JSON (lowerCamel) names, int64s as
// strings or numbers, as protojson does; unknown fields are ignored. Answers
// use proto names. Errors are Twirp's `{"code","msg"}` with its statuses;
// a miss is `{"ok":false}` (what the toolkit expects), not an error.
// Only JSON is spoken: a protobuf request is a `bad_route`.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HoardError } from '../../core/errors.ts';
import { acceptJsonBodies } from '../../server/json-bodies.ts';
import type { ActionsCache } from './actions-cache.ts';
import { checkKey, checkVersion, entryRef, MAX_KEYS } from './cache-keys.ts';
import { answerErrors } from './service-errors.ts';

export const TWIRP_SERVICE = 'github.actions.results.api.v1.CacheService';

/** Twirp error codes by HTTP status (twirp's own table, inverted where it is one-to-one). */
const TWIRP_CODE_OF_STATUS: Record<number, string> = {
  400: 'invalid_argument',
  401: 'unauthenticated',
  403: 'permission_denied',
  404: 'not_found',
  409: 'already_exists',
  412: 'failed_precondition',
  413: 'out_of_range',
  429: 'resource_exhausted',
  499: 'canceled',
  503: 'unavailable',
  507: 'resource_exhausted',
};

type Body = Record<string, unknown>;

export async function twirpRoutes(
  app: FastifyInstance,
  cache: ActionsCache,
  maxJsonBodyBytes: number,
): Promise<void> {
  const noScope = { config: { scope: 'none' as const } };

  answerErrors(app, (reply, status, message, err) => {
    const named = err instanceof HoardError ? (err.details?.twirp as string | undefined) : undefined;
    const code = named ?? TWIRP_CODE_OF_STATUS[status] ?? 'internal';
    reply
      .code(code === 'internal' ? 500 : status)
      .type('application/json')
      .send({ code, msg: message });
  });

  app.register(async (json) => {
    acceptJsonBodies(json, maxJsonBodyBytes);
    // Not parsed (the route answers bad_route): left unread, as any refused body.
    json.addContentTypeParser('application/protobuf', (_req, _payload, done) => done(null, undefined));
    const route = (method: string, handler: (request: FastifyRequest, body: Body) => Promise<Body>) =>
      json.post(`/twirp/${TWIRP_SERVICE}/${method}`, noScope, async (request) => {
        const type = String(request.headers['content-type'] ?? '');
        if (type.startsWith('application/protobuf'))
          throw new HoardError('HOARD_EBAD_REQUEST', 'this server speaks the JSON protocol only', {
            details: { twirp: 'bad_route' },
          });
        const body = request.body;
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw new HoardError('HOARD_EBAD_REQUEST', 'the request body must be a JSON object', {
            details: { twirp: 'malformed' },
          });
        return handler(request, body as Body);
      });

    // Any other method name, or HTTP method, is Twirp's bad_route.
    json.all('/twirp/*', noScope, async (request) => {
      throw new HoardError(
        'HOARD_EBAD_REQUEST',
        `no Twirp route ${request.method} ${request.url.split('?')[0]}`,
        {
          details: { twirp: 'bad_route', status: 404 },
        },
      );
    });

    route('CreateCacheEntry', async (request, body) => {
      const key = checkKey(field(body, 'key'));
      const version = checkVersion(field(body, 'version'));
      const namespace = cache.namespaceOf(request);
      const owner = cache.authorize(request, 'write', entryRef(namespace, version, key));
      const u = await cache.reserve({ owner, namespace, key, version });
      return { ok: true, signed_upload_url: cache.uploadUrl(cache.base(request), u) };
    });

    route('FinalizeCacheEntryUpload', async (request, body) => {
      const key = checkKey(field(body, 'key'));
      const version = checkVersion(field(body, 'version'));
      const size = int64(field(body, 'size_bytes'), 'size_bytes');
      const namespace = cache.namespaceOf(request);
      const ref = entryRef(namespace, version, key);
      const owner = cache.authorize(request, 'write', ref);
      const u = cache.uploads.pendingFor(ref);
      if (!u || u.owner !== owner)
        throw new HoardError('HOARD_EBLOB_NOT_FOUND', `no upload of key ${key} is in progress`, {
          hint: 'CreateCacheEntry first (an upload left idle expires)',
        });
      await cache.publish(u, size);
      return { ok: true, entry_id: String(u.cacheId) };
    });

    route('GetCacheEntryDownloadURL', async (request, body) => {
      const key = checkKey(field(body, 'key'));
      const version = checkVersion(field(body, 'version'));
      const restore = field(body, 'restore_keys') ?? [];
      if (!Array.isArray(restore))
        throw new HoardError('HOARD_EBAD_REQUEST', 'restore_keys must be a list of keys');
      if (restore.length + 1 > MAX_KEYS)
        throw new HoardError('HOARD_EBAD_REQUEST', `at most ${MAX_KEYS} keys (the key and its restore keys)`);
      const keys = [key, ...restore.map((k) => checkKey(k, 'a restore key'))];
      cache.authorize(request, 'read');
      const match = await cache.lookup(cache.namespaceOf(request), version, keys);
      if (!match) return { ok: false, signed_download_url: '', matched_key: '' };
      return {
        ok: true,
        signed_download_url: cache.downloadUrl(cache.base(request), match.entry),
        matched_key: match.key,
      };
    });
  });
}

/** A field by its proto name or its lowerCamel JSON name (protojson accepts both). */
function field(body: Body, protoName: string): unknown {
  if (body[protoName] !== undefined) return body[protoName];
  return body[protoName.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())];
}

function int64(v: unknown, what: string): number {
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0)
    throw new HoardError('HOARD_EBAD_REQUEST', `${what} must be a non-negative integer`);
  return n;
}
