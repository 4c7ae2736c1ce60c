// Delta upload (the deploy-CLI use case): push a 2,000-file source tree to a
// server ref, change 3 files, push again: the second push uploads exactly
// those 3 files' bytes (from `hoard push --json`, and counted on the server),
// and `hoard pull` from the server into another directory reproduces the
// tree byte for byte.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeDir, hoard, tempDir } from '../sync/helpers.ts';
import { startTestServer, type TestServer } from './helpers.ts';

/**
 * Blobs the server's disk tier holds: what was stored, whichever route the
 * client used (single PUTs or POST /v1/blobs/batch-upload).
 */
async function storedBlobs(srv: TestServer): Promise<number> {
  const root = join(srv.dataDir, 'blobs', 'sha256');
  let n = 0;
  for (const shard of await readdir(root).catch(() => [] as string[]))
    for (const name of await readdir(join(root, shard))) if (/^[0-9a-f]{64}$/.test(name)) n++;
  return n;
}

describe('delta upload to a hoard server', () => {
  let srv: TestServer;
  let work: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    srv = await startTestServer();
    work = await tempDir('hoard-delta-');
  });
  after(async () => {
    await srv?.close();
    await work?.cleanup();
  });

  it('second push of a 2,000-file tree with 3 changed files uploads exactly those bytes; pull reproduces it', async () => {
    const src = join(work.dir, 'src');
    for (let i = 0; i < 2000; i++) {
      const dir = join(src, `pkg${i % 40}`, `mod${i % 7}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `file${i}.ts`), randomBytes(100 + ((i * 37) % 4000)).toString('base64'));
    }
    const first = await hoard(['push', src, srv.url, '--ref', 'deploy/app', '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json?.filesUploaded, 2000, JSON.stringify(first.json));
    const storedAfterFirst = await storedBlobs(srv);
    // 2,000 file blobs (random contents), the tree and the snapshot record.
    assert.equal(storedAfterFirst, 2002);

    const changed = {
      'pkg3/mod3/file3.ts': randomBytes(1234),
      'pkg10/mod0/file1050.ts': randomBytes(77),
      'pkg39/mod4/file1999.ts': randomBytes(4096),
    };
    for (const [rel, data] of Object.entries(changed)) await writeFile(join(src, rel), data);
    const expectedBytes = Object.values(changed).reduce((n, b) => n + b.length, 0);

    const second = await hoard(['push', src, srv.url, '--ref', 'deploy/app', '--json']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.json?.filesUploaded, 3);
    assert.equal(second.json?.bytesUploaded, expectedBytes);
    assert.equal(second.json?.filesTotal, 2000, JSON.stringify(second.json));
    // On the server: 3 file blobs + the new tree + the new snapshot record were created.
    assert.equal((await storedBlobs(srv)) - storedAfterFirst, 5);

    const dst = join(work.dir, 'dst');
    const pulled = await hoard(['pull', srv.url, dst, '--ref', 'deploy/app', '--json']);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.deepEqual(await describeDir(dst), await describeDir(src));
  });
});
