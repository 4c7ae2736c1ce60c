// The GitHub Actions cache service as a feature: v2 (Twirp, for
// `@actions/cache` with ACTIONS_CACHE_SERVICE_V2 and ACTIONS_RESULTS_URL) and
// v1 (`_apis/artifactcache`, for ACTIONS_CACHE_URL: forge runners, older
// toolkits) over one core (actions-cache.ts), plus the signed URLs both hand
// out (blob-routes.ts). Its routes sit at the server root, where the toolkit
// builds them.

import { join } from 'node:path';
import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { ActionsCache } from './actions-cache.ts';
import { actionsCacheSettings } from './actions-cache-settings.ts';
import { artifactCacheRoutes } from './artifactcache-routes.ts';
import { blobRoutes } from './blob-routes.ts';
import { PendingUploads } from './pending-uploads.ts';
import { UrlSigner } from './signed-url.ts';
import { twirpRoutes } from './twirp-routes.ts';

export const actionsCacheFeature = defineFeature({
  name: 'actions-cache',
  settings: actionsCacheSettings,
  create: async (fctx, settings) => {
    const uploads = new PendingUploads({
      spoolDir: join(fctx.server.dataDir, 'tmp', 'actions-cache'),
      maxBytes: fctx.server.maxBlobBytes,
      maxSpoolBytes: settings.maxSpoolBytes,
      maxPerOwner: settings.maxPendingUploads,
      idleMs: settings.uploadIdleMs,
    });
    const signer = new UrlSigner({ secret: settings.secret, ttlMs: settings.urlTtlMs });
    const cache = new ActionsCache(fctx, new CacheEntries(fctx, 'actions'), uploads, signer);
    await uploads.start();
    return {
      cache,
      routes: async (app) => {
        await app.register(async (scoped) => twirpRoutes(scoped, cache, fctx.server.maxJsonBodyBytes));
        await app.register(async (scoped) =>
          artifactCacheRoutes(scoped, cache, fctx.server.maxJsonBodyBytes),
        );
        // v1 again with the token in the path (ACTIONS_CACHE_URL=http://host/actions-cache/t/<token>/),
        // for forge runners that set ACTIONS_RUNTIME_TOKEN to their own job token.
        await app.register(
          async (scoped) => artifactCacheRoutes(scoped, cache, fctx.server.maxJsonBodyBytes),
          { prefix: '/actions-cache/t/:token' },
        );
        await app.register(async (scoped) => blobRoutes(scoped, cache));
      },
      close: () => uploads.close(),
    };
  },
});
