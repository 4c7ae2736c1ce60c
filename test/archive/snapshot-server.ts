// An in-process hoard server with the git proxy and the snapshot routes
// wired in, on a temp data directory, for the snapshot and restore tests.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { gitPlugin } from '../../src/git/git-routes.ts';
import { MirrorManager } from '../../src/git/mirror-manager.ts';
import { snapshotGitRoutes } from '../../src/git/snapshot-routes.ts';
import type { SnapshotService } from '../../src/git/snapshot-service.ts';
import { Upstreams } from '../../src/git/upstreams.ts';
import { buildServer, type HoardServer } from '../../src/server/app.ts';
import { resolveConfig } from '../../src/server/config.ts';

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
}): Promise<SnapshotTestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hoard-snapsrv-'));
  const config = resolveConfig({ listen: '127.0.0.1:0', data: dataDir, logLevel: 'silent' });
  let mirrors!: MirrorManager;
  let snapshots!: SnapshotService;
  const server = await buildServer(config, {
    logger: false,
    plugins: [
      {
        prefix: '/git',
        plugin: async (app, { ctx }) => {
          mirrors = new MirrorManager({
            dataDir,
            upstreams: new Upstreams(Object.entries(opts.upstreams).map(([name, url]) => ({ name, url }))),
            maxStalenessMs: opts.maxStalenessMs ?? 0,
            registry: new Registry(),
          });
          await gitPlugin(app, {
            mirrors,
            routes: snapshotGitRoutes(mirrors, ctx, dataDir, {
              app,
              publicUrl: opts.publicUrl,
              debounceMs: opts.debounceMs ?? 50,
              onService: (s) => {
                snapshots = s;
              },
            }),
          });
        },
      },
    ],
  });
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
