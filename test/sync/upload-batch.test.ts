// uploadMissing (push's and cache save's upload step) against a real hoard
// server: small files go through POST /v1/blobs/batch-upload (a few requests
// for hundreds of files), larger ones by PUT, every blob stored; a file
// changed since it was hashed is refused as such and not sent.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { openHttpRemote } from '../../src/remote/http-remote.ts';
import { noProgress, uploadMissing } from '../../src/sync/transfer.ts';
import { startTestServer, type TestServer } from '../server/helpers.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data) };
};

describe('uploadMissing to a hoard server', () => {
  let srv: TestServer;
  let dir: string;
  before(async () => {
    srv = await startTestServer();
    dir = await mkdtemp(join(tmpdir(), 'hoard-upload-'));
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const requests = async (route: string): Promise<number> => {
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    let n = 0;
    for (const line of text.split('\n'))
      if (line.startsWith('hoard_http_requests_total{') && line.includes(`route="${route}"`))
        n += Number(line.split(' ').pop());
    return n;
  };

  it('small files go in batched requests, larger ones by PUT; every blob is stored', async () => {
    const items = [];
    for (let i = 0; i < 300; i++) {
      const x = blob(100 + i);
      await writeFile(join(dir, `f${i}`), x.data);
      items.push({ digest: x.digest, size: x.data.length, path: `f${i}` });
    }
    const big = blob(300 * 1024);
    await writeFile(join(dir, 'big'), big.data);
    items.push({ digest: big.digest, size: big.data.length, path: 'big' });
    const remote = openHttpRemote(new URL(srv.url));
    const batchedBefore = await requests('/v1/blobs/batch-upload');
    const putsBefore = await requests('/v1/blobs/sha256/:hex');
    const up = await uploadMissing(remote, dir, items, noProgress);
    assert.equal(up.blobs, 301);
    assert.deepEqual(await remote.blobs.missing(items.map((i) => i.digest)), []);
    const batched = (await requests('/v1/blobs/batch-upload')) - batchedBefore;
    assert.ok(batched >= 1 && batched <= 2, `${batched} batched requests for 300 small files`);
    // The big file's PUT, plus the metric scrapes' own route is not this one.
    assert.equal((await requests('/v1/blobs/sha256/:hex')) - putsBefore, 1);
  });

  it('a file changed since it was hashed is refused as changing, not sent', async () => {
    const x = blob(500);
    await writeFile(join(dir, 'moving'), randomBytes(500));
    const remote = openHttpRemote(new URL(srv.url));
    await assert.rejects(
      uploadMissing(remote, dir, [{ digest: x.digest, size: 500, path: 'moving' }], noProgress),
      (err) => isHoardError(err, 'HOARD_EFILE_CHANGING'),
    );
    assert.deepEqual(await remote.blobs.missing([x.digest]), [x.digest]);
  });
});
