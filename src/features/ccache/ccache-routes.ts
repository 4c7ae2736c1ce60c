// ccache's HTTP remote storage (spec: the ccache manual, "Remote storage
// backends", HTTP storage backend; ccache's HttpStorage.cpp for the exact
// paths), under the feature's prefix `/ccache`:
//
//   GET|HEAD|PUT|DELETE /<key>                  layout=flat
//   GET|HEAD|PUT|DELETE /<2 chars>/<rest>       layout=subdirs (the default)
//
// Both layouts name the same entry `cache/ccache/<key>`, so switching layouts
// keeps the hits. ccache overwrites entries (a PUT replaces), so writes are
// last-writer-wins. Any non-2xx answer to a GET is a miss to ccache.
// Credentials: `http://user:TOKEN@host/ccache/` (Basic, token as password) or
// the `bearer-token` attribute. The `bazel` layout goes to /bazel/ (the Bazel
// feature), which stores ccache's entries there as opaque values.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HoardError } from '../../core/errors.ts';
import type { CacheEntries } from '../../server/cache-entries.ts';
import { isRanged } from '../../server/send-content.ts';
import { keyRoute } from '../key-route.ts';
import { rawBodies, receiveUpload } from '../upload-body.ts';

/**
 * A ccache key: ccache 4.x writes 4 hex digits and 29 base32hex digits
 * (lowercase); later versions may change the length or alphabet, so any
 * lowercase alphanumeric key of a sane length is accepted.
 */
const KEY = /^[0-9a-z]{8,128}$/;

interface Params {
  key?: string;
  prefix?: string;
  rest?: string;
}

export async function ccacheRoutes(
  app: FastifyInstance,
  opts: { entries: CacheEntries; maxBlobBytes: number },
): Promise<void> {
  const { entries, maxBlobBytes } = opts;
  rawBodies(app);

  const nameOf = (p: Params): { key: string; name: string } => {
    if (p.prefix !== undefined && p.prefix.length !== 2)
      throw new HoardError('HOARD_EBAD_REQUEST', `invalid ccache subdirs path ${p.prefix}/${p.rest}`, {
        hint: 'the subdirs layout is /<first 2 characters of the key>/<rest of the key>',
      });
    const key = p.key ?? `${p.prefix}${p.rest}`;
    if (!KEY.test(key))
      throw new HoardError('HOARD_EBAD_REQUEST', `invalid ccache key ${JSON.stringify(key.slice(0, 140))}`, {
        hint: 'a ccache key is 8 to 128 lowercase letters and digits',
      });
    return { key, name: entries.refName(key) };
  };

  const get = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    entries.authorize(request, 'read'); // 401/403 before anything about the key
    const { key, name } = nameOf(request.params);
    entries.checkRead(request, name); // a prefix-bound token reads only its refs
    const opened = await entries.open(name, { ranged: isRanged(request) });
    if (!opened)
      throw new HoardError('HOARD_EREF_NOT_FOUND', `no ccache entry ${key}`, { details: { ref: name } });
    return entries.send(request, reply, opened, { etag: opened.entry.digest });
  };

  const put = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { key, name } = nameOf(request.params);
    entries.authorize(request, 'write', name);
    const res = await receiveUpload(
      request,
      reply,
      { max: maxBlobBytes, what: `ccache entry ${key}` },
      (body, size) => entries.put(name, body, { size, mode: 'overwrite' }),
    );
    return reply.code(res.created ? 201 : 200).send();
  };

  const remove = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { key, name } = nameOf(request.params);
    entries.authorize(request, 'write', name);
    if (!(await entries.delete(name)))
      throw new HoardError('HOARD_EREF_NOT_FOUND', `no ccache entry ${key}`, { details: { ref: name } });
    return reply.code(204).send();
  };

  for (const url of ['/:key', '/:prefix/:rest']) keyRoute(app, url, { get, put, delete: remove });
}
