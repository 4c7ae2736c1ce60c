// The real Turborepo client (npm `turbo`, pinned in npm-client.ts) against
// `hoard serve`: a two-package workspace builds with
// `--api http://127.0.0.1:<port>/turbo --token … --team …` and signed
// artifacts; after deleting `.turbo`, `node_modules/.cache` and the outputs,
// the rerun is all remote cache hits (turbo verified the x-artifact-tag it
// got back) and restores the outputs byte for byte. A read-only token's run
// builds but stores nothing.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { turboFeature } from '../../../src/features/turbo/turbo-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import { CLIENTS, type InstalledClient, installClient } from './npm-client.ts';
import { twoPackageWorkspace, type Workspace } from './two-package-workspace.ts';

const run = promisify(execFile);

/** Everything turbo keeps locally (2.x: .turbo/; 1.x: node_modules/.cache/turbo). */
const LOCAL_STATE = ['.turbo', 'node_modules/.cache', 'packages/a/.turbo', 'packages/b/.turbo'];

describe('turbo (real client) against hoard', () => {
  let client: InstalledClient;
  let dir: string;
  let ws: Workspace;
  let srv: TestServer;

  before(async () => {
    client = await installClient('turbo');
    dir = await mkdtemp(join(tmpdir(), 'hoard-turbo-client-'));
    const tokens = await writeTokensFile(
      dir,
      [
        { name: 'ci', token: 'ci-secret', scopes: ['read', 'write'], refs: ['cache/turbo/team-a'] },
        { name: 'dev', token: 'dev-secret', scopes: ['read'] },
      ],
      'json',
    );
    srv = await startTestServer(
      { tokens },
      { features: [withSettings(apiFeature), withSettings(turboFeature)] },
    );
    ws = await twoPackageWorkspace(join(dir, 'ws'), client.nodeModules, {
      'package.json': { name: 'ws', private: true, packageManager: 'npm@10.8.2', workspaces: ['packages/*'] },
      'turbo.json': {
        $schema: 'https://turborepo.com/schema.json',
        remoteCache: { signature: true },
        tasks: { build: { dependsOn: ['^build'], outputs: ['dist/**'] } },
      },
    });
  });
  after(async () => {
    await srv?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const turbo = async (token: string) => {
    const { stdout, stderr } = await run(
      client.bin,
      ['run', 'build', '--api', `${srv.url}/turbo`, '--token', token, '--team', 'team-a'],
      {
        cwd: ws.root,
        timeout: 120_000,
        env: {
          PATH: process.env.PATH,
          HOME: dir,
          XDG_CONFIG_HOME: join(dir, 'config'),
          TURBO_TELEMETRY_DISABLED: '1',
          TURBO_NO_UPDATE_NOTIFIER: '1',
          DO_NOT_TRACK: '1',
          TURBO_REMOTE_CACHE_SIGNATURE_KEY: 'a-shared-signing-secret-of-32-bytes-or-more',
        },
      },
    );
    return `${stdout}\n${stderr}`;
  };
  const entries = async () => {
    const names: string[] = [];
    for await (const r of srv.server.ctx.refs.list('cache/turbo/')) names.push(r.name);
    return names;
  };

  it(`builds, uploads, and the rerun after a local wipe is a remote hit restoring outputs byte for byte (turbo ${CLIENTS.turbo.version})`, async () => {
    const first = await turbo('ci-secret');
    assert.match(first, /Cached:\s+0 cached, 2 total/);
    assert.deepEqual(await ws.executions(), ['a', 'b']);
    const built = await ws.outputs();
    const names = await entries();
    assert.equal(names.length, 2, 'one entry per task');
    assert.ok(names.every((n) => n.startsWith('cache/turbo/team-a/')));
    // Signed: hoard keeps the tag turbo sent and answers it back.
    const hash = names[0].split('/').at(-1);
    const res = await fetch(`${srv.url}/turbo/v8/artifacts/${hash}?slug=team-a`, {
      method: 'HEAD',
      headers: { authorization: 'Bearer dev-secret' },
    });
    assert.ok(res.headers.get('x-artifact-tag'), 'the artifact carries its signature');
    assert.match(res.headers.get('x-artifact-duration') ?? '', /^\d+$/);

    await ws.wipe(LOCAL_STATE);
    const second = await turbo('dev-secret');
    assert.match(second, /Cached:\s+2 cached, 2 total/);
    assert.match(second, /FULL TURBO/);
    assert.deepEqual(await ws.executions(), ['a', 'b'], 'no task ran again');
    assert.deepEqual(await ws.outputs(), built);
  });

  it('a read-only token builds but stores nothing', async () => {
    await ws.renameA('a2');
    await ws.wipe(LOCAL_STATE);
    const before = await entries();
    await turbo('dev-secret');
    assert.deepEqual((await ws.executions()).slice(2), ['a2', 'b']);
    assert.deepEqual(await entries(), before);
  });
});
