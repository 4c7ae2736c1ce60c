// Test helpers: an in-process hoard server on a free port with a temp data
// directory, optionally in front of a shared tier.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Remote } from '../../src/remote/remote.ts';
import { buildServer, type HoardServer, type ServerDeps } from '../../src/server/app.ts';
import { type RawSettings, resolveConfig } from '../../src/server/config.ts';

export interface TestServer {
  url: string;
  server: HoardServer;
  dataDir: string;
  close(): Promise<void>;
}

export async function startTestServer(
  settings: RawSettings = {},
  deps: ServerDeps & { shared?: Remote } = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hoard-srv-'));
  const config = resolveConfig({ listen: '127.0.0.1:0', data: dataDir, logLevel: 'silent', ...settings });
  const server = await buildServer(config, { logger: false, ...deps });
  const url = await server.listen();
  return {
    url,
    server,
    dataDir,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
