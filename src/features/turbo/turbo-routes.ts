// Turborepo Remote Caching API v8 (spec: turborepo.com/docs/openapi, the
// self-hosted "Remote Cache API"; Vercel's api.vercel.com is its reference
// implementation):
//   PUT|GET|HEAD /v8/artifacts/:hash?teamId=…|slug=…   one artifact
//   POST /v8/artifacts          {"hashes":[…]} → per hash {size, taskDurationMs, tag} or an error
//   POST /v8/artifacts/events   usage events (accepted, not stored)
//   GET  /v8/artifacts/status   {"status":"enabled"}
//
// An artifact is the cache entry `cache/turbo/<team>/<hash>`, where <team>
// is `teamId` (turbo sends it when it starts with `team_`) or else `slug`
// (`--team`). `x-artifact-duration` and `x-artifact-tag` (the HMAC signature
// when `remoteCache.signature` is on) are entry meta, answered byte for byte
// as they came: turbo verifies the tag against the body it downloads.
//
// PUT overwrites (last writer wins): the spec gives PUT no conflict answer,
// and a hash names the task's inputs, not its outputs, so `turbo --force`
// re-uploading a task replaces the entry, as on Vercel. Readers never see a
// torn artifact: an entry names one complete, verified blob.
//
// Errors are the server's JSON `{"error":{"code","message"}}`, which is the
// shape turbo's client decodes on a 403 (`error.code`, `error.message`).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DEFAULTS } from '../../core/defaults.ts';
import { HoardError } from '../../core/errors.ts';
import { mapLimit } from '../../core/pool.ts';
import type { CacheEntries } from '../../server/cache-entries.ts';
import { acceptJsonBodies } from '../../server/json-bodies.ts';
import { isRanged } from '../../server/send-content.ts';
import { rawBodies, receiveUpload } from '../upload-body.ts';

/** Turbo's task hashes are hex (16 digits today); the bound leaves room for longer hashes. */
const HASH = /^[0-9a-fA-F]{1,128}$/;
/** The headers kept as entry meta (under these keys) and answered as they came. */
const META_HEADERS = {
  duration: { header: 'x-artifact-duration', pattern: /^\d{1,15}$/, must: 'an integer (milliseconds)' },
  // The signature is a base64 HMAC today; bounded, printable ASCII.
  tag: {
    header: 'x-artifact-tag',
    pattern: /^[\x21-\x7e]{1,1024}$/,
    must: '1 to 1024 printable ASCII characters',
  },
} as const;

interface HashParams {
  hash: string;
}
interface TeamQuery {
  teamId?: string;
  slug?: string;
}

export interface TurboRouteOptions {
  entries: CacheEntries;
  maxJsonBodyBytes: number;
}

export async function turboRoutes(app: FastifyInstance, opts: TurboRouteOptions): Promise<void> {
  const { entries } = opts;
  const noScope = { config: { scope: 'none' as const } };

  /** The entry name of an artifact, validating the hash and the team. */
  const nameOf = (request: FastifyRequest<{ Params: HashParams; Querystring: TeamQuery }>) =>
    entries.refName(teamOf(request.query), hashOf(request.params.hash));

  app.register(async (raw) => {
    rawBodies(raw);

    raw.put<{ Params: HashParams; Querystring: TeamQuery }>(
      '/v8/artifacts/:hash',
      noScope,
      async (request, reply) => {
        const name = nameOf(request);
        entries.authorize(request, 'write', name);
        const meta: Record<string, string> = {};
        for (const [key, h] of Object.entries(META_HEADERS)) {
          const value = singleHeader(request, h.header);
          if (value === undefined) continue;
          if (!h.pattern.test(value))
            throw new HoardError('HOARD_EBAD_REQUEST', `${h.header} must be ${h.must}`);
          meta[key] = value;
        }
        await receiveUpload(request, reply, { what: `artifact ${request.params.hash}` }, (body, size) =>
          entries.put(name, body, { size, meta, mode: 'overwrite' }),
        );
        return reply.code(202).send({ urls: [request.url.split('?')[0]] });
      },
    );
  });

  app.route<{ Params: HashParams; Querystring: TeamQuery }>({
    method: ['GET', 'HEAD'],
    url: '/v8/artifacts/:hash',
    exposeHeadRoute: false,
    ...noScope,
    handler: async (request, reply) => {
      const name = nameOf(request);
      entries.authorize(request, 'read', name);
      const opened = await entries.open(name, { ranged: isRanged(request) });
      if (!opened) throw new HoardError('HOARD_EBLOB_NOT_FOUND', `no artifact ${request.params.hash}`);
      // x-artifact-duration and x-artifact-tag, byte for byte as they came.
      const headers: Record<string, string> = {};
      for (const [key, h] of Object.entries(META_HEADERS))
        if (opened.entry.meta[key] !== undefined) headers[h.header] = opened.entry.meta[key];
      return entries.send(request, reply, opened, { headers });
    },
  });

  app.register(async (json) => {
    acceptJsonBodies(json, opts.maxJsonBodyBytes);

    json.post<{ Querystring: TeamQuery }>('/v8/artifacts', noScope, async (request) => {
      const team = teamOf(request.query);
      entries.authorize(request, 'read', entries.refName(team));
      const hashes = (request.body as { hashes?: unknown } | undefined)?.hashes;
      if (!Array.isArray(hashes) || !hashes.every((h) => typeof h === 'string'))
        throw new HoardError('HOARD_EBAD_REQUEST', 'expected {"hashes":["…",…]}');
      if (hashes.length > DEFAULTS.missingMaxBatch)
        throw new HoardError(
          'HOARD_EBAD_REQUEST',
          `at most ${DEFAULTS.missingMaxBatch} hashes per request, got ${hashes.length}`,
        );
      // Lookups in parallel, bounded (a batch may name thousands of hashes; each may reach the shared tier).
      const names = hashes.map((h) => entries.refName(team, hashOf(h)));
      const found = await mapLimit(names, DEFAULTS.bucketHeadConcurrency, (n) => entries.get(n));
      const out: Record<string, unknown> = {};
      hashes.forEach((h, i) => {
        const entry = found[i];
        out[h] = entry
          ? {
              size: entry.size,
              taskDurationMs: Number(entry.meta.duration ?? 0),
              ...(entry.meta.tag !== undefined ? { tag: entry.meta.tag } : {}),
            }
          : { error: { message: 'artifact not found' } };
      });
      return out;
    });

    json.post<{ Querystring: TeamQuery }>('/v8/artifacts/events', noScope, async (request, reply) => {
      entries.authorize(request, 'read', entries.refName(teamOf(request.query)));
      // Usage analytics: accepted and dropped (hoard's own metrics count hits and misses).
      if (!Array.isArray(request.body))
        throw new HoardError('HOARD_EBAD_REQUEST', 'expected a JSON array of cache events');
      return reply.code(200).send({});
    });
  });

  app.get<{ Querystring: TeamQuery }>('/v8/artifacts/status', noScope, async (request) => {
    const { teamId, slug } = request.query;
    entries.authorize(request, 'read', teamId || slug ? entries.refName(teamOf(request.query)) : undefined);
    return { status: 'enabled' };
  });
}

/** The team namespace: `teamId` when given, else `slug`; one of them is required. */
function teamOf(q: TeamQuery): string {
  const team = q.teamId || q.slug;
  if (typeof team !== 'string' || team === '')
    throw new HoardError('HOARD_EBAD_REQUEST', 'teamId or slug is required', {
      hint: 'run turbo with --team <slug> (or TURBO_TEAM)',
    });
  return team;
}

function hashOf(hash: string): string {
  if (!HASH.test(hash))
    throw new HoardError(
      'HOARD_EBAD_REQUEST',
      `invalid artifact hash ${JSON.stringify(hash.slice(0, 200))}`,
      {
        hint: 'a Turborepo hash is hexadecimal, 1 to 128 digits',
      },
    );
  return hash;
}

function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  if (Array.isArray(v)) throw new HoardError('HOARD_EBAD_REQUEST', `${name} given more than once`);
  return v;
}
