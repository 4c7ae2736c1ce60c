// ccache's HTTP storage protocol at the HTTP level: both path layouts name
// one entry, PUT overwrites, DELETE removes, and bad input (keys, sizes,
// cut-off bodies) stores nothing. One blob for the same bytes under two tools.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../../src/core/digest.ts';
import type { TestServer } from '../../server/helpers.ts';
import { put, putCutShort, startCacheServer, tmpFiles } from '../bazel/cache-server.ts';

/** A key of ccache 4.x's shape: 4 hex digits and 29 base32hex digits. */
const key = (seed: string) => {
  const alphabet = '0123456789abcdefghijklmnopqrstuv';
  const h = Buffer.from(hexOf(sha256(seed)), 'hex');
  let out = h.subarray(0, 2).toString('hex');
  for (let i = 0; i < 29; i++) out += alphabet[h[2 + (i % 30)] % 32];
  return out;
};
const subdirs = (k: string) => `${k.slice(0, 2)}/${k.slice(2)}`;

describe('ccache HTTP storage', () => {
  let srv: TestServer;
  let base: string;
  before(async () => {
    srv = await startCacheServer({ maxBlobSize: '1MiB' });
    base = `${srv.url}/ccache`;
  });
  after(() => srv?.close());

  it('subdirs and flat paths are one entry; GET, HEAD, Range; a miss is 404', async () => {
    const k = key('one');
    const value = randomBytes(3000);
    assert.equal((await put(`${base}/${subdirs(k)}`, value)).status, 201);
    for (const path of [subdirs(k), k]) {
      const got = await fetch(`${base}/${path}`);
      assert.equal(got.status, 200, path);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), value);
      const head = await fetch(`${base}/${path}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), '3000');
    }
    const ranged = await fetch(`${base}/${k}`, { headers: { range: 'bytes=-5' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), value.subarray(-5));
    assert.equal((await fetch(`${base}/${subdirs(key('absent'))}`)).status, 404);
    assert.ok(await srv.server.ctx.refs.get(`cache/ccache/${k}`));
  });

  it('PUT overwrites (last writer wins); DELETE removes', async () => {
    const k = key('two');
    assert.equal((await put(`${base}/${k}`, Buffer.from('first'))).status, 201);
    assert.equal((await put(`${base}/${subdirs(k)}`, Buffer.from('second'))).status, 201);
    assert.equal(await (await fetch(`${base}/${k}`)).text(), 'second');
    assert.equal((await fetch(`${base}/${subdirs(k)}`, { method: 'DELETE' })).status, 204);
    assert.equal((await fetch(`${base}/${k}`)).status, 404);
    assert.equal((await fetch(`${base}/${k}`, { method: 'DELETE' })).status, 404);
  });

  it('the same bytes stored by ccache and by Bazel are one blob on disk', async () => {
    const value = randomBytes(20_000);
    const hex = hexOf(sha256(value));
    assert.equal((await put(`${base}/${key('shared')}`, value)).status, 201);
    assert.equal((await put(`${srv.url}/bazel/cas/${hex}`, value)).status, 200);
    const files = await readdir(join(srv.dataDir, 'blobs', 'sha256', hex.slice(0, 2)));
    assert.deepEqual(
      files.filter((f) => f.startsWith(hex)),
      [hex],
    );
  });

  it('bad keys are 400', async () => {
    const body = Buffer.from('x');
    for (const path of [
      'short',
      'UPPERCASE0123456789',
      'a/bcdefghijklmnop',
      'abc/defghijklmnop',
      `${'a'.repeat(129)}`,
    ]) {
      assert.equal((await fetch(`${base}/${path}`)).status, 400, `GET ${path}`);
      assert.equal((await put(`${base}/${path}`, body)).status, 400, `PUT ${path}`);
    }
  });

  it('a body over --max-blob-size is 413 and stores nothing; so does a body cut short', async () => {
    const big = randomBytes(1024 * 1024 + 1);
    const k = key('big');
    assert.equal((await put(`${base}/${k}`, big)).status, 413);
    assert.equal((await fetch(`${base}/${k}`)).status, 404);
    const cut = key('cut');
    const status = await putCutShort(srv, `/ccache/${subdirs(cut)}`, 100_000, randomBytes(40_000));
    assert.match(status, /^HTTP\/1\.1 400 /);
    assert.equal((await fetch(`${base}/${cut}`)).status, 404);
    assert.deepEqual(await tmpFiles(srv.dataDir), []);
  });
});
