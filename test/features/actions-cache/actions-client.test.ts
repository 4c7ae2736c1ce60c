// The real @actions/cache (npm, pinned in ../turbo/npm-client.ts) against
// hoard's GitHub Actions cache service, for both services the toolkit picks
// by environment: v2 (Twirp + Azure blob uploads to signed URLs) and v1
// (_apis/artifactcache, chunked PATCH). Each saveCache / restoreCache runs in
// a child process (toolkit.ts). Proves: save, exact restore byte for byte,
// restore by a restore-key prefix picking the newest entry, a miss, keys of
// one repository invisible to another repository's token, v1 through the
// token-in-path mount a forge runner is configured with, the same key saved
// twice concurrently (one wins, the other gets the toolkit's "another job may
// be creating this cache" and -1), and a 200 MiB incompressible entry: v2
// uploaded as Put Block + Put Block List (over the SDK's 128 MiB single-shot
// bound), v1 as parallel chunks, both downloaded in parallel ranged segments
// (the server answers 206s) and restored byte for byte.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { actionsCacheFeature } from '../../../src/features/actions-cache/actions-cache-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import { installClient } from '../turbo/npm-client.ts';
import { runToolkit, type ToolkitRun } from './toolkit.ts';

const CI = 'ci-token-of-acme-app';
const OTHER = 'ci-token-of-acme-other';
const BIG = 200 * 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** `size` incompressible bytes, written in 4 MiB pieces (never all in memory). */
async function randomFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let at = 0; at < size; at += 4 * 1024 * 1024)
      await fh.write(randomBytes(Math.min(4 * 1024 * 1024, size - at)));
  } finally {
    await fh.close();
  }
}

describe('@actions/cache (real toolkit) against hoard', () => {
  let dir: string;
  let srv: TestServer;

  before(async () => {
    await installClient('actionsCache');
    dir = await mkdtemp(join(tmpdir(), 'hoard-actions-client-'));
    const tokens = await writeTokensFile(dir, [
      { name: 'acme-app', token: CI, scopes: ['read', 'write'], refs: ['cache/actions/acme/app'] },
      { name: 'acme-other', token: OTHER, scopes: ['read', 'write'], refs: ['cache/actions/acme/other'] },
    ]);
    srv = await startTestServer({ tokens }, { features: [withSettings(actionsCacheFeature)] });
  });
  after(async () => {
    await srv?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Answers of one route with one status so far. */
  const answered = async (route: string, status: string) =>
    (await srv.server.ctx.metrics.requests.get()).values
      .filter((v) => v.labels.route === route && v.labels.status === status)
      .reduce((n, v) => n + v.value, 0);
  const partials = () => answered('/actions-cache/blobs/:hex', '206');
  const blobPuts = () => answered('/actions-cache/uploads/:id', '201');

  for (const service of ['v2', 'v1'] as const) {
    describe(`cache service ${service}`, () => {
      let ws: string;
      const toolkit = (o: Pick<ToolkitRun, 'op' | 'key'> & Partial<ToolkitRun>) =>
        runToolkit({
          service,
          url: srv.url,
          token: CI,
          cwd: ws,
          paths: ['deps', 'out/bin'],
          tempDir: join(dir, `tmp-${service}`),
          ...o,
        });
      const writeTree = async (seed: string) => {
        await rm(join(ws, 'deps'), { recursive: true, force: true });
        await rm(join(ws, 'out'), { recursive: true, force: true });
        await mkdir(join(ws, 'deps', 'pkg', 'lib'), { recursive: true });
        await mkdir(join(ws, 'out', 'bin'), { recursive: true });
        await writeFile(join(ws, 'deps', 'pkg', 'index.js'), `module.exports = ${JSON.stringify(seed)};\n`);
        await writeFile(join(ws, 'deps', 'pkg', 'lib', 'blob.bin'), randomBytes(300_000));
        await writeFile(join(ws, 'out', 'bin', 'tool'), `#!/bin/sh\necho ${seed}\n`, { mode: 0o755 });
      };
      const snapshot = async () => ({
        index: await readFile(join(ws, 'deps', 'pkg', 'index.js'), 'utf8'),
        blob: createHash('sha256')
          .update(await readFile(join(ws, 'deps', 'pkg', 'lib', 'blob.bin')))
          .digest('hex'),
        tool: await readFile(join(ws, 'out', 'bin', 'tool'), 'utf8'),
      });
      const wipe = async () => {
        await rm(join(ws, 'deps'), { recursive: true, force: true });
        await rm(join(ws, 'out'), { recursive: true, force: true });
      };

      before(async () => {
        ws = join(dir, `ws-${service}`);
        await mkdir(ws, { recursive: true });
      });

      it('saves, restores the exact key byte for byte, and misses an unknown key', async () => {
        await writeTree('exact');
        const saved = await snapshot();
        const s = await toolkit({ op: 'save', key: `linux-deps-${service}-exact` });
        assert.ok(
          typeof s.result === 'number' && s.result > 0,
          `saveCache returned ${s.result}: ${s.stdout}`,
        );
        assert.deepEqual(s.warnings, []);
        await wipe();
        const r = await toolkit({ op: 'restore', key: `linux-deps-${service}-exact` });
        assert.equal(r.result, `linux-deps-${service}-exact`, r.stdout);
        assert.deepEqual(await snapshot(), saved);
        const miss = await toolkit({
          op: 'restore',
          key: `linux-deps-${service}-nothing`,
          restoreKeys: ['nope-'],
        });
        assert.equal(miss.result, null);
        assert.deepEqual(miss.warnings, []);
      });

      it('restores by a restore-key prefix, picking the newest match', async () => {
        await writeTree('old');
        assert.ok(((await toolkit({ op: 'save', key: `npm-${service}-aaaa` })).result as number) > 0);
        await writeTree('new');
        const newest = await snapshot();
        assert.ok(((await toolkit({ op: 'save', key: `npm-${service}-0000` })).result as number) > 0);
        await wipe();
        // The primary key misses; `npm-<service>-` matches both: the newer one wins (not the
        // one sorting last by name).
        const r = await toolkit({
          op: 'restore',
          key: `npm-${service}-ffff`,
          restoreKeys: [`nothing-${service}-`, `npm-${service}-`],
        });
        assert.equal(r.result, `npm-${service}-0000`, r.stdout);
        assert.deepEqual(await snapshot(), newest);
      });

      if (service === 'v1')
        it('works for a forge runner: token in the cache URL path, the job token in ACTIONS_RUNTIME_TOKEN', async () => {
          await writeTree('forge');
          const saved = await snapshot();
          const forge = {
            url: `${srv.url}/actions-cache/t/${CI}`,
            token: 'a-forge-job-token-hoard-does-not-know',
          };
          const s = await toolkit({ op: 'save', key: 'forge-deps-1', ...forge });
          assert.ok(typeof s.result === 'number' && s.result > 0, s.stdout);
          await wipe();
          assert.equal(
            (await toolkit({ op: 'restore', key: 'forge-deps-2', restoreKeys: ['forge-'], ...forge })).result,
            'forge-deps-1',
          );
          assert.deepEqual(await snapshot(), saved);
        });

      it("keeps one repository's keys from another repository's token", async () => {
        await wipe();
        const r = await toolkit({ op: 'restore', key: `linux-deps-${service}-exact`, token: OTHER });
        assert.equal(r.result, null);
      });

      it('lets one of two concurrent saves of a key win; the other is told another job is creating it', async () => {
        await writeTree('race');
        const key = `race-${service}`;
        const [a, b] = await Promise.all([toolkit({ op: 'save', key }), toolkit({ op: 'save', key })]);
        const ids = [a.result, b.result].sort();
        assert.equal(ids.filter((x) => x === -1).length, 1, `${a.stdout}\n${b.stdout}`);
        const loser = a.result === -1 ? a : b;
        assert.match(
          loser.stdout,
          /Failed to save: Unable to reserve cache with key race-v\d, another job may be creating this cache/,
        );
        await wipe();
        assert.equal((await toolkit({ op: 'restore', key })).result, key);
        assert.equal((await snapshot()).index, 'module.exports = "race";\n');
      });

      it('stores a 200 MiB entry and restores it in parallel ranged segments', async () => {
        await wipe();
        await mkdir(join(ws, 'deps'), { recursive: true });
        await randomFile(join(ws, 'deps', 'big.bin'), BIG);
        const want = await sha256File(join(ws, 'deps', 'big.bin'));
        const putsBefore = await blobPuts();
        const s = await toolkit({ op: 'save', key: `big-${service}`, paths: ['deps'] });
        assert.ok(typeof s.result === 'number' && s.result > 0, s.stdout);
        // v2: over the SDK's 128 MiB single-shot bound, 64 MiB Put Blocks and one Put Block List.
        if (service === 'v2')
          assert.ok((await blobPuts()) - putsBefore >= 5, `${(await blobPuts()) - putsBefore} PUTs`);
        await wipe();
        const before206 = await partials();
        const r = await toolkit({ op: 'restore', key: `big-${service}`, paths: ['deps'], azureAlias: true });
        assert.equal(r.result, `big-${service}`, r.stdout);
        assert.equal(await sha256File(join(ws, 'deps', 'big.bin')), want);
        // 4 MiB segments: ~50 ranged answers for a 200 MiB archive.
        assert.ok(
          (await partials()) - before206 >= 40,
          `ranged downloads: ${(await partials()) - before206}`,
        );
        await wipe();
      });
    });
  }
});
