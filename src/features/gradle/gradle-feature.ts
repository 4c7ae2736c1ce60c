// Gradle's HTTP build cache as a feature of `hoard serve`, mounted at
// /gradle (settings.gradle: `remote(HttpBuildCache) { url =
// 'http://host:7777/gradle/' }`). The protocol is in gradle-routes.ts; the
// entries (refs `cache/gradle/<key>` over blobs, size bound, metrics by
// tool, auth) are the keyed-cache core's.

import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { gradleRoutes } from './gradle-routes.ts';

export const gradleFeature = defineFeature({
  name: 'gradle',
  create(ctx) {
    const entries = new CacheEntries(ctx, 'gradle');
    return { prefix: '/gradle', routes: (app) => gradleRoutes(app, entries) };
  },
});
