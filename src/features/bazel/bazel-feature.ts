// The Bazel HTTP remote cache as a feature of `hoard serve`, under `/bazel`
// (`bazel build --remote_cache=http://host:7777/bazel`): the CAS on the
// server's blobs, the action cache on keyed cache entries in the `bazel`
// namespace (`cache/bazel/<instance>/ac/<hex>`).

import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import type { TieredBlobStore } from '../../server/tiered-blob-store.ts';
import { ActionCache, type ActionCacheBlobs } from './action-cache.ts';
import { actionResultReferences } from './action-result-references.ts';
import { bazelRoutes } from './bazel-routes.ts';

export const bazelFeature = defineFeature({
  name: 'bazel',
  // gc keeps what an action result names (its outputs live in the CAS without refs).
  entryReferences: [actionResultReferences],
  create: (ctx) => {
    const entries = new CacheEntries(ctx, 'bazel');
    const actions = new ActionCache(entries, localFirst(ctx.blobs));
    return {
      prefix: '/bazel',
      /** The action cache, for other front-ends on the same store (gRPC REAPI). */
      actions,
      async routes(app) {
        await bazelRoutes(app, {
          entries,
          actions,
          blobs: ctx.blobs,
          maxBlobBytes: ctx.server.maxBlobBytes,
          metrics: ctx.metrics,
        });
      },
    };
  },
});

/**
 * The CAS as the action cache's integrity check sees it: a blob on the local
 * disk is present; only what the disk lacks is asked of the authority (the
 * shared tier, when there is one), so an AC hit whose outputs are warm costs
 * no round trip to the bucket.
 */
function localFirst(blobs: TieredBlobStore): ActionCacheBlobs {
  return {
    stat: (digest) => blobs.stat(digest),
    read: (digest, range) => blobs.read(digest, range),
    async missing(digests, signal) {
      if (!blobs.shared) return blobs.missing(digests, signal);
      const notOnDisk = await blobs.disk.missing(digests);
      return notOnDisk.length === 0 ? [] : blobs.missing(notOnDisk, signal);
    },
  };
}
