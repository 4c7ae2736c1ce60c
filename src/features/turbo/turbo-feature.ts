// The Turborepo remote cache (`turbo --api http://host:7777/turbo`): the
// artifacts API v8 of the Turborepo "Remote Caching API" spec, on the keyed
// cache core. The client builds its URLs as `<api><endpoint>`, so the path
// prefix works and nothing needs mounting at the root.

import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { turboRoutes } from './turbo-routes.ts';

export const turboFeature = defineFeature({
  name: 'turbo',
  create: (fctx) => {
    const entries = new CacheEntries(fctx, 'turbo');
    return {
      prefix: '/turbo',
      routes: (app) => turboRoutes(app, { entries, maxJsonBodyBytes: fctx.server.maxJsonBodyBytes }),
    };
  },
});
