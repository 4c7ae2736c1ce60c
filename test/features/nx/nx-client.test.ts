// The real Nx client (npm `nx`, pinned in ../turbo/npm-client.ts) against
// `hoard serve` with NX_SELF_HOSTED_REMOTE_CACHE_SERVER: a two-project
// workspace builds and uploads; after wiping `.nx` (its local cache and
// workspace data) and the outputs, the rerun reads every task from hoard
// and restores the outputs byte for byte. A read-only token cannot write.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { nxFeature } from '../../../src/features/nx/nx-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import { CLIENTS, type InstalledClient, installClient } from '../turbo/npm-client.ts';
import { twoPackageWorkspace, type Workspace } from '../turbo/two-package-workspace.ts';

const run = promisify(execFile);

/** Everything Nx keeps locally: its cache and workspace data (.nx/), older versions' node_modules/.cache/nx. */
const LOCAL_STATE = ['.nx', 'node_modules/.cache/nx'];

describe('nx (real client) against hoard', () => {
  let client: InstalledClient;
  let dir: string;
  let ws: Workspace;
  let srv: TestServer;

  before(async () => {
    client = await installClient('nx');
    dir = await mkdtemp(join(tmpdir(), 'hoard-nx-client-'));
    const tokens = await writeTokensFile(
      dir,
      [
        { name: 'ci', token: 'ci-secret', scopes: ['read', 'write'], refs: ['cache/nx/'] },
        { name: 'dev', token: 'dev-secret', scopes: ['read'] },
      ],
      'json',
    );
    srv = await startTestServer(
      { tokens },
      { features: [withSettings(apiFeature), withSettings(nxFeature)] },
    );
    ws = await twoPackageWorkspace(join(dir, 'ws'), client.nodeModules, {
      'package.json': { name: 'ws', private: true, workspaces: ['packages/*'] },
      'nx.json': {
        targetDefaults: { build: { cache: true, dependsOn: ['^build'], outputs: ['{projectRoot}/dist'] } },
      },
    });
  });
  after(async () => {
    await srv?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Runs the build; a failed run is returned (with its output), not thrown. */
  const nx = async (token: string) => {
    const r = await run(client.bin, ['run-many', '-t', 'build', '--output-style=static'], {
      cwd: ws.root,
      timeout: 180_000,
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        NX_DAEMON: 'false',
        NX_NO_CLOUD: 'true',
        NX_TUI: 'false',
        NX_SELF_HOSTED_REMOTE_CACHE_SERVER: `${srv.url}/nx`,
        NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN: token,
      },
    }).catch((err: Error & { stdout?: string; stderr?: string }) => ({
      stdout: err.stdout ?? '',
      stderr: `${err.stderr ?? ''}\n${err.message}`,
      failed: true,
    }));
    return { out: `${r.stdout}\n${r.stderr}`, failed: 'failed' in r };
  };
  const entries = async () => {
    const names: string[] = [];
    for await (const r of srv.server.ctx.refs.list('cache/nx/')) names.push(r.name);
    return names;
  };

  it(`builds, uploads, and the rerun after a local cache wipe reads from hoard (nx ${CLIENTS.nx.version})`, async () => {
    const first = await nx('ci-secret');
    assert.equal(first.failed, false, first.out);
    assert.deepEqual(await ws.executions(), ['a', 'b']);
    const built = await ws.outputs();
    assert.equal((await entries()).length, 2, 'one entry per task');

    await ws.wipe(LOCAL_STATE);
    const second = await nx('dev-secret');
    assert.equal(second.failed, false, second.out);
    assert.equal(second.out.match(/\[remote cache\]/g)?.length, 2, second.out);
    assert.deepEqual(await ws.executions(), ['a', 'b'], 'no task ran again');
    assert.deepEqual(await ws.outputs(), built);
  });

  it('a read-only token cannot write', async () => {
    await ws.renameA('a2');
    await ws.wipe(LOCAL_STATE);
    const before = await entries();
    const r = await nx('dev-secret');
    assert.deepEqual((await ws.executions()).slice(2), ['a2', 'b'], r.out);
    assert.deepEqual(await entries(), before, 'nothing stored');
  });
});
