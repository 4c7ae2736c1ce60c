// The Nx self-hosted remote cache
// (`NX_SELF_HOSTED_REMOTE_CACHE_SERVER=http://host:7777/nx`): the "Nx custom
// remote cache specification" OpenAPI (Nx 20.8+), on the keyed cache core.

import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { nxRoutes } from './nx-routes.ts';

export const nxFeature = defineFeature({
  name: 'nx',
  create: (fctx) => {
    const entries = new CacheEntries(fctx, 'nx');
    return { prefix: '/nx', routes: (app) => nxRoutes(app, entries) };
  },
});
