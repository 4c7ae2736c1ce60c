// Repository snapshots as a feature of `hoard serve`: the snapshot service
// (commit → deterministic tar.zst blob, snapshot-service.ts) over the git
// feature's mirrors and the server's stores, and its routes under
// /git/<repo>/snapshot.tar.zst. Built on the git feature, so it is listed
// after it in the composition root.

import { join } from 'node:path';
import type { Feature } from '../server/feature.ts';
import { defineFeature } from '../server/feature.ts';
import { defaultPublicUrl } from '../server/listen-address.ts';
import { gitFeature } from './git-feature.ts';
import { snapshotRoutes } from './snapshot-routes.ts';
import { SnapshotService } from './snapshot-service.ts';
import { snapshotSettings } from './snapshot-settings.ts';

export interface SnapshotFeature extends Feature {
  readonly service: SnapshotService;
}

export const snapshotFeature = defineFeature({
  name: 'snapshots',
  settings: snapshotSettings,
  create(ctx, settings): SnapshotFeature {
    const git = ctx.use(gitFeature);
    const service = new SnapshotService({
      mirrors: git.mirrors,
      blobs: ctx.blobs,
      refs: ctx.refs,
      tmpDir: join(ctx.server.dataDir, 'git', 'snapshot-tmp'),
      // Part of the archive's bytes: the same on every server sharing a bucket.
      publicUrl: ctx.server.publicUrl ?? defaultPublicUrl(ctx.server.listen),
      debounceMs: settings.debounceMs,
      concurrency: settings.generateConcurrency,
      prebuildAnchors: settings.prebuildAnchors,
      log: ctx.log,
    });
    git.addRoutes(snapshotRoutes(service));
    return { service, close: () => service.close() };
  },
});
