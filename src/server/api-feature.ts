// The blob and ref API v1 (`/v1/blobs`, `/v1/refs`) as a feature: what
// `hoard push/pull` and other hoard servers speak. Every server runs it.

import { defineFeature } from './feature.ts';
import { blobRoutes } from './routes/blobs.ts';
import { refRoutes } from './routes/refs.ts';

export const apiFeature = defineFeature({
  name: 'api',
  create: ({ ctx }) => ({
    prefix: '/v1',
    async routes(app) {
      await app.register(blobRoutes, { prefix: '/blobs', ctx });
      await app.register(refRoutes, { prefix: '/refs', ctx });
    },
  }),
});
