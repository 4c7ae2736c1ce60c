// The Bazel HTTP remote cache as a feature of `hoard serve`, under `/bazel`
// (`bazel build --remote_cache=http://host:7777/bazel`): the CAS on the
// server's blobs, the action cache on keyed cache entries in the `bazel`
// namespace (`cache/bazel/<instance>/ac/<hex>`).

import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { ActionCache } from './action-cache.ts';
import { bazelRoutes } from './bazel-routes.ts';

export const bazelFeature = defineFeature({
  name: 'bazel',
  create: (ctx) => {
    const entries = new CacheEntries(ctx, 'bazel');
    const actions = new ActionCache(entries, ctx.blobs);
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
