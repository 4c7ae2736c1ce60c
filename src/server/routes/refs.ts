// /v1/refs: GET (ETag), PUT with If-Match / If-None-Match: * (compare-and-set),
// DELETE with If-Match, and GET /v1/refs?prefix= listing.
//
// The ETag of a ref is its store version, base64url-encoded and quoted, so
// any backend's version token (an S3 ETag with quotes, a GCS generation, a
// local random id) is a valid HTTP entity tag and round-trips exactly.

import type { FastifyInstance } from 'fastify';
import { DEFAULTS } from '../../core/defaults.ts';
import { parseDigest } from '../../core/digest.ts';
import { HoardError, RefNotFoundError } from '../../core/errors.ts';
import { validateRefName, validateRefPrefix } from '../../core/ref-name.ts';
import type { ServingBlobStore } from '../../store/blob-handle.ts';
import { mayReadRef } from '../auth.ts';
import { authorizeRequest, checkRefRead, requestPrincipal, type ServerContext } from '../context.ts';
import { etagList } from '../http-range.ts';
import { acceptJsonBodies, pageLimit } from '../json-bodies.ts';

export function refEtag(version: string): string {
  return `"${Buffer.from(version, 'utf8').toString('base64url')}"`;
}

function versionOf(etag: string): string {
  const m = /^"([A-Za-z0-9_-]*)"$/.exec(etag);
  if (!m) throw new HoardError('HOARD_EBAD_REQUEST', `malformed ETag ${JSON.stringify(etag.slice(0, 100))}`);
  return Buffer.from(m[1], 'base64url').toString('utf8');
}

interface NameParams {
  '*': string;
}

export async function refRoutes(app: FastifyInstance, opts: { ctx: ServerContext }): Promise<void> {
  const { ctx } = opts;
  const { refs } = ctx;
  const blobs: ServingBlobStore = ctx.blobs;

  acceptJsonBodies(app, opts.ctx.config.maxJsonBodyBytes);

  app.get<{ Querystring: { prefix?: string; after?: string; limit?: string } }>(
    '/',
    { config: { scope: 'read' } },
    async (request) => {
      const prefix = validateRefPrefix(request.query.prefix ?? '');
      const after = request.query.after ?? '';
      const limit = pageLimit(request.query.limit, DEFAULTS.refListMaxPage, DEFAULTS.refListMaxPage);
      const out: { name: string; target: string; etag: string }[] = [];
      let more = false;
      // A prefix-bound token lists only the refs it may read (auth.ts, mayReadRef).
      const reader = requestPrincipal(ctx, request);
      for await (const r of refs.list(prefix)) {
        if (after && r.name <= after) continue;
        if (!mayReadRef(reader, r.name)) continue;
        if (out.length === limit) {
          more = true;
          break;
        }
        out.push({ name: r.name, target: r.target, etag: refEtag(r.version) });
      }
      return { refs: out, next: more ? out[out.length - 1].name : null };
    },
  );

  app.get<{ Params: NameParams }>('/*', { config: { scope: 'read' } }, async (request, reply) => {
    const name = validateRefName(request.params['*']);
    checkRefRead(ctx, request, name);
    const v = await refs.get(name);
    if (!v) throw new RefNotFoundError(name);
    const etag = refEtag(v.version);
    ctx.refExpiry?.touch(name);
    reply.header('etag', etag).header('cache-control', 'no-cache');
    const inm = etagList(request.headers['if-none-match']);
    if (inm.includes(etag) || inm.includes('*')) return reply.code(304).send();
    return { target: v.target };
  });

  app.put<{ Params: NameParams }>('/*', { config: { scope: 'write' } }, async (request, reply) => {
    const name = validateRefName(request.params['*']);
    authorizeRequest(ctx, request, 'write', name);
    const body = request.body as { target?: unknown } | undefined;
    if (!body || typeof body !== 'object')
      throw new HoardError('HOARD_EBAD_REQUEST', 'expected {"target":"sha256:…"}');
    const target = parseDigest(body.target);
    const expected = expectedVersion(request.headers['if-match'], request.headers['if-none-match']);
    if (!(await blobs.hasAuthoritative(target)))
      throw new HoardError('HOARD_EREF_TARGET_MISSING', `ref ${name}: target blob ${target} is not stored`, {
        hint: 'upload the blob before pointing a ref at it',
        details: { ref: name, target },
      });
    const v = await refs.set(name, target, expected);
    ctx.refExpiry?.touch(name);
    return reply
      .code(expected === null ? 201 : 200)
      .header('etag', refEtag(v.version))
      .send({ target: v.target });
  });

  app.delete<{ Params: NameParams }>('/*', { config: { scope: 'write' } }, async (request, reply) => {
    const name = validateRefName(request.params['*']);
    authorizeRequest(ctx, request, 'write', name);
    const ifMatch = request.headers['if-match'];
    if (!ifMatch)
      throw new HoardError('HOARD_EPRECONDITION_REQUIRED', `DELETE of ref ${name} needs If-Match: <etag>`);
    await refs.delete(name, ifMatchVersion(ifMatch));
    return reply.code(204).send();
  });
}

/** The version a PUT expects: If-Match's, or null for If-None-Match: *. */
function expectedVersion(ifMatch: string | undefined, ifNoneMatch: string | undefined): string | null {
  if (ifMatch !== undefined && ifNoneMatch !== undefined)
    throw new HoardError('HOARD_EBAD_REQUEST', 'send either If-Match or If-None-Match, not both');
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*')
      throw new HoardError('HOARD_EBAD_REQUEST', 'If-None-Match on PUT must be *');
    return null;
  }
  if (ifMatch === undefined)
    throw new HoardError(
      'HOARD_EPRECONDITION_REQUIRED',
      'PUT of a ref needs If-Match: <etag> (update) or If-None-Match: * (create)',
      { hint: 'read the ref first; refs change only by compare-and-set' },
    );
  return ifMatchVersion(ifMatch);
}

/** The version named by an If-Match holding exactly one ETag. */
function ifMatchVersion(ifMatch: string): string {
  const tags = etagList(ifMatch);
  if (tags.length !== 1 || tags[0] === '*')
    throw new HoardError('HOARD_EBAD_REQUEST', 'If-Match must hold exactly one ETag');
  return versionOf(tags[0]);
}
