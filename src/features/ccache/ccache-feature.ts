// ccache's HTTP remote storage as a feature of `hoard serve`, under `/ccache`
// (`remote_storage = http://host:7777/ccache/`): keyed cache entries in the
// `ccache` namespace (`cache/ccache/<key>`).

import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { ccacheRoutes } from './ccache-routes.ts';

export const ccacheFeature = defineFeature({
  name: 'ccache',
  create: (ctx) => {
    const entries = new CacheEntries(ctx, 'ccache');
    return {
      prefix: '/ccache',
      async routes(app) {
        await ccacheRoutes(app, { entries, maxBlobBytes: ctx.server.maxBlobBytes });
      },
    };
  },
});
