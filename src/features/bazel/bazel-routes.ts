// The Bazel HTTP remote cache protocol (spec: the "Remote Caching" page of
// the Bazel docs, "HTTP caching protocol"; bazel-remote's README for the
// optional instance segment), under the feature's prefix `/bazel`:
//
//   GET|HEAD|PUT [/<instance>]/cas/<sha256 hex>   content-addressed blobs
//   GET|HEAD|PUT [/<instance>]/ac/<sha256 hex>    action digest → ActionResult
//
// A miss is 404; a PUT is answered 200. CAS blobs are hoard blobs (one store
// for every tool; the instance does not partition them, as content names
// itself), verified on write: a body whose SHA-256 is not the key is 400 and
// stores nothing. The action cache is action-cache.ts (validated on PUT, a hit
// only when every output it references is present).
//
// ccache's `bazel` layout sends its own entries to /ac/ (they are not
// ActionResults): they are recognised by the shape of ccache's keys and stored
// opaque (isCcacheBazelKey below).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { digestFromHex } from '../../core/digest.ts';
import { HoardError } from '../../core/errors.ts';
import type { CacheEntries } from '../../server/cache-entries.ts';
import type { ServerMetrics } from '../../server/metrics.ts';
import { isRanged, sendContent } from '../../server/send-content.ts';
import type { TieredBlobStore } from '../../server/tiered-blob-store.ts';
import { bufferHandle } from '../../store/blob-handle.ts';
import { keyRoute } from '../key-route.ts';
import { rawBodies, receiveUpload } from '../upload-body.ts';
import type { ActionCache } from './action-cache.ts';
import { EMPTY_DIGEST } from './action-result.ts';

export interface BazelRouteOptions {
  readonly entries: CacheEntries;
  readonly actions: ActionCache;
  readonly blobs: TieredBlobStore;
  readonly maxBlobBytes: number;
  readonly metrics: ServerMetrics;
}

interface Params {
  instance?: string;
  hex: string;
}

/**
 * Whether an /ac/ key is ccache's `bazel` layout: its 20-byte key as 40 hex
 * digits padded to 64 by repeating its first 24 (ccache's HttpStorage.cpp,
 * "Mimic hex representation of a SHA256 hash value"). A SHA-256 action
 * digest has that shape with probability 2^-96.
 */
export function isCcacheBazelKey(hex: string): boolean {
  return hex.length === 64 && hex.slice(40) === hex.slice(0, 24);
}

export async function bazelRoutes(app: FastifyInstance, opts: BazelRouteOptions): Promise<void> {
  const { entries, actions, blobs, maxBlobBytes, metrics } = opts;
  // CAS traffic bypasses the cache entries, so it is counted here, under the same tool label.
  const count = (op: string, result: string) => metrics.cacheRequests.inc({ tool: entries.tool, op, result });
  rawBodies(app);
  const instanceOf = (p: Params) => p.instance ?? '_';

  const casGet = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    entries.authorize(request, 'read');
    entries.refName(instanceOf(request.params)); // the instance must be a valid key part
    const digest = digestFromHex(request.params.hex);
    // Bazel never uploads the empty blob and may still ask for it.
    if (digest === EMPTY_DIGEST)
      return sendContent(request, reply, bufferHandle(Buffer.alloc(0), 'memory'), { etag: digest });
    const handle = await blobs.open(digest, { ranged: isRanged(request) });
    count('cas_get', handle ? 'hit' : 'miss');
    if (!handle) throw new HoardError('HOARD_EBLOB_NOT_FOUND', `blob ${digest} not in the cache`);
    return sendContent(request, reply, handle, {
      etag: digest,
      onBody: (bytes) => metrics.cacheBytes.inc({ tool: entries.tool, direction: 'out' }, bytes),
    });
  };

  const casPut = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    // Writing the CAS needs a token whose ref prefixes cover the Bazel namespace.
    entries.authorize(request, 'write', entries.refName(instanceOf(request.params), 'cas'));
    const digest = digestFromHex(request.params.hex);
    const res = await receiveUpload(
      request,
      reply,
      { max: maxBlobBytes, what: `blob ${digest}` },
      (body, size) => blobs.write(digest, body, { size }),
    );
    count('cas_put', res.created ? 'stored' : 'exists');
    if (res.created) metrics.cacheBytes.inc({ tool: entries.tool, direction: 'in' }, res.size);
    return reply.code(200).send();
  };

  const acGet = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    entries.authorize(request, 'read'); // 401/403 before anything about the key
    const name = actions.name(instanceOf(request.params), request.params.hex);
    entries.checkRead(request, name); // a prefix-bound token reads only its refs
    const { hit, incomplete } = await actions.lookup(name, { ranged: isRanged(request) });
    // The entry itself was found (and counted as a hit): its outputs are what is missing.
    if (incomplete) count('get', 'incomplete');
    if (!hit)
      throw new HoardError('HOARD_EREF_NOT_FOUND', `no action result for ${request.params.hex}`, {
        details: { ref: name },
      });
    return entries.send(request, reply, hit, { etag: hit.entry.digest });
  };

  const acPut = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { hex } = request.params;
    const name = actions.name(instanceOf(request.params), hex);
    entries.authorize(request, 'write', name);
    const opaque = isCcacheBazelKey(hex);
    await receiveUpload(request, reply, { max: maxBlobBytes, what: `action result ${hex}` }, (body, size) =>
      actions.put(name, body, { size, opaque }),
    );
    return reply.code(200).send();
  };

  for (const base of ['', '/:instance']) {
    keyRoute(app, `${base}/cas/:hex`, { get: casGet, put: casPut });
    keyRoute(app, `${base}/ac/:hex`, { get: acGet, put: acPut });
  }
}
