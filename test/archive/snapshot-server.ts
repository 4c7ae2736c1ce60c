// An in-process hoard server with the git proxy and the snapshot routes
// wired in, on a temp data directory, for the snapshot and restore tests.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitFeature } from '../../src/git/git-feature.ts';
import type { MirrorManager } from '../../src/git/mirror-manager.ts';
import { snapshotFeature } from '../../src/git/snapshot-feature.ts';
import type { SnapshotService } from '../../src/git/snapshot-service.ts';
import { apiFeature } from '../../src/server/api-feature.ts';
import { buildServer, type HoardServer } from '../../src/server/app.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { withSettings } from '../../src/server/feature.ts';

export interface SnapshotTestServer {
  url: string;
  dataDir: string;
  server: HoardServer;
  mirrors: MirrorManager;
  snapshots: SnapshotService;
  close(): Promise<void>;
}

export async function startSnapshotServer(opts: {
  /** Upstream name → base URL (`file:///…`). */
  upstreams: Record<string, string>;
  publicUrl?: string;
  maxStalenessMs?: number;
  debounceMs?: number;
  /** A tokens file (auth on); without one, loopback clients only. */
  tokens?: string;
}): Promise<SnapshotTestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hoard-snapsrv-'));
  const config = resolveConfig({
    listen: '127.0.0.1:0',
    data: dataDir,
    logLevel: 'silent',
    publicUrl: opts.publicUrl,
    tokens: opts.tokens,
  });
  const server = await buildServer(config, {
    logger: false,
    features: [
      withSettings(apiFeature),
      withSettings(gitFeature, { upstreams: opts.upstreams, maxStalenessMs: opts.maxStalenessMs ?? 0 }),
      withSettings(snapshotFeature, { debounceMs: opts.debounceMs ?? 50 }),
    ],
  });
  const mirrors = server.feature(gitFeature).mirrors;
  const snapshots = server.feature(snapshotFeature).service;
  const url = await server.listen();
  return {
    url,
    dataDir,
    server,
    mirrors,
    snapshots,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
