// The npm registry pull-through cache at `/npm/` (npm-routes.ts has the
// API): package documents revalidated against the upstream (npm-documents.ts),
// tarballs stored once by content and verified on fill (npm-tarballs.ts),
// both on the keyed cache core (`cache/npm/…`), so they get the tiers, the
// shared bucket, eviction and cache-ref expiry like every build cache.

import { join } from 'node:path';
import { authorize } from '../../server/auth.ts';
import { CacheEntries } from '../../server/cache-entries.ts';
import { defineFeature } from '../../server/feature.ts';
import { DocumentBodies } from './npm-document-bodies.ts';
import { NpmDocuments } from './npm-documents.ts';
import { npmMetrics } from './npm-metrics.ts';
import { npmRoutes } from './npm-routes.ts';
import { npmSettings } from './npm-settings.ts';
import { NpmTarballs } from './npm-tarballs.ts';
import { NpmUpstreams } from './npm-upstreams.ts';

/** Memory for served document bodies (npm-document-bodies.ts): thousands of typical documents, a few huge ones. */
const DOCUMENT_BODIES_BYTES = 64 * 1024 * 1024;

export const npmFeature = defineFeature({
  name: 'npm',
  settings: npmSettings,
  create: (fctx, settings) => {
    const entries = new CacheEntries(fctx, 'npm');
    const upstreams = new NpmUpstreams(settings.upstream, settings.scopeUpstreams, settings.upstreamTokens);
    const metrics = npmMetrics(fctx.metrics.registry);
    const documents = new NpmDocuments({
      entries,
      upstreams,
      metrics,
      log: fctx.log,
      maxStalenessMs: settings.maxStalenessMs,
      fetchTimeoutMs: settings.fetchTimeoutMs,
    });
    const tarballs = new NpmTarballs({
      entries,
      upstreams,
      metrics,
      log: fctx.log,
      spoolDir: join(fctx.server.dataDir, 'tmp', 'npm-spool'),
      maxBytes: fctx.server.maxBlobBytes,
    });
    const bodies = new DocumentBodies(DOCUMENT_BODIES_BYTES);
    return {
      prefix: '/npm',
      // Documents and tarballs answered but not yet stored land before the stores close.
      close: async () => {
        await documents.flushed();
        await tarballs.flushed();
      },
      documents,
      bodies,
      tarballs,
      routes: (app) =>
        npmRoutes(app, {
          documents,
          bodies,
          tarballs,
          upstreams,
          allowWriteThrough: settings.allowWriteThrough,
          // Unset: each request's own base (the address its client reached).
          publicUrl: () => fctx.server.publicUrl,
          authorize: (request, need) =>
            authorize(
              fctx.auth,
              { remoteAddress: request.socket.remoteAddress, authorization: request.headers.authorization },
              need,
              // A forwarded write needs a token whose ref prefixes cover the npm cache.
              need === 'write' ? 'cache/npm/publish' : undefined,
            ),
        }),
    };
  },
});
