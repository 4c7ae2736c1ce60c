// The Nx self-hosted remote cache spec at the HTTP level: PUT then GET, a
// PUT of an existing hash is 409 and leaves the first upload; errors are
// text/plain for the Nx user; the auth matrix (no token 401, a read token
// reads and gets 403 on PUT, a write token writes, a token scoped to another
// namespace is 403); bad input (hash format, over --max-blob-size, a
// truncated body) stores nothing.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nxFeature } from '../../../src/features/nx/nx-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { cutUpload } from '../../support/cut-upload.ts';
import { writeTokensFile } from '../../support/tokens.ts';

const MAX = 64 * 1024;

describe('nx remote cache API', () => {
  let dir: string;
  let srv: TestServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-nx-'));
    const tokens = await writeTokensFile(
      dir,
      [
        { name: 'ci', token: 'ci-secret', scopes: ['read', 'write'], refs: ['cache/nx/'] },
        { name: 'dev', token: 'dev-secret', scopes: ['read'] },
        { name: 'turbo-ci', token: 'turbo-secret', scopes: ['read', 'write'], refs: ['cache/turbo/'] },
      ],
      'json',
    );
    srv = await startTestServer(
      { tokens, maxBlobSize: MAX },
      { features: [withSettings(apiFeature), withSettings(nxFeature)] },
    );
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const auth = (t?: string): Record<string, string> => (t ? { authorization: `Bearer ${t}` } : {});
  const url = (hash: string) => `${srv.url}/nx/v1/cache/${hash}`;
  const put = (hash: string, body: Uint8Array, token?: string) =>
    fetch(url(hash), {
      method: 'PUT',
      body: new Uint8Array(body),
      headers: { 'content-type': 'application/octet-stream', ...auth(token) },
    });
  const get = (hash: string, token?: string) => fetch(url(hash), { headers: auth(token) });
  const stored = async (hash: string) => (await get(hash, 'ci-secret')).status === 200;

  it('stores a task output and answers it back', async () => {
    const body = randomBytes(10_000);
    const res = await put('1234567890123456789', body, 'ci-secret');
    assert.equal(res.status, 200);
    const got = await get('1234567890123456789', 'dev-secret');
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'application/octet-stream');
    assert.equal(got.headers.get('content-length'), String(body.length));
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
  });

  it('a PUT of an existing hash is 409 and the first upload stays', async () => {
    assert.equal((await put('222', Buffer.from('first'), 'ci-secret')).status, 200);
    const again = await put('222', Buffer.from('second'), 'ci-secret');
    assert.equal(again.status, 409);
    assert.match(again.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await (await get('222', 'ci-secret')).text(), 'first');
  });

  it('concurrent PUTs of one hash: exactly one is stored, the others are 409', async () => {
    const bodies = Array.from({ length: 6 }, () => randomBytes(20_000));
    const statuses = await Promise.all(bodies.map((b) => put('555', b, 'ci-secret').then((r) => r.status)));
    assert.equal(statuses.filter((s) => s === 200).length, 1, String(statuses));
    assert.equal(statuses.filter((s) => s === 409).length, bodies.length - 1, String(statuses));
    const winner = bodies[statuses.indexOf(200)];
    assert.deepEqual(Buffer.from(await (await get('555', 'ci-secret')).arrayBuffer()), winner);
  });

  it('a miss is 404', async () => {
    assert.equal((await get('333', 'ci-secret')).status, 404);
  });

  describe('auth matrix', () => {
    const body = Buffer.from('auth matrix output');
    it('no token: 401 to read and to write, with a text/plain message', async () => {
      const r = await get('1234567890123456789');
      assert.equal(r.status, 401);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
      assert.match(await r.text(), /NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN/);
      assert.equal((await put('401401', body)).status, 401);
      assert.equal((await put('401401', body, 'wrong-token')).status, 401);
      assert.equal(await stored('401401'), false);
    });
    it('read token: reads, and a PUT is 403', async () => {
      assert.equal((await get('1234567890123456789', 'dev-secret')).status, 200);
      const r = await put('403403', body, 'dev-secret');
      assert.equal(r.status, 403);
      assert.match(await r.text(), /lacks the write scope/);
      assert.equal(await stored('403403'), false);
    });
    it('write token: writes', async () => {
      assert.equal((await put('200200', body, 'ci-secret')).status, 200);
      assert.ok(await stored('200200'));
    });
    it('a token scoped to another namespace (cache/turbo/) cannot write Nx entries', async () => {
      assert.equal((await put('403404', body, 'turbo-secret')).status, 403);
      assert.equal(await stored('403404'), false);
    });
    it('a token scoped to another namespace (cache/turbo/) cannot read Nx entries either (GET, HEAD)', async () => {
      assert.equal((await put('403405', body, 'ci-secret')).status, 200);
      for (const method of ['GET', 'HEAD']) {
        const r = await fetch(url('403405'), { method, headers: auth('turbo-secret') });
        assert.equal(r.status, 403, method);
        await r.arrayBuffer();
      }
    });
  });

  describe('bad input stores nothing', () => {
    it('a hash that is not alphanumeric is 400', async () => {
      for (const bad of ['a.b', 'a-b', 'x'.repeat(129), '%00']) {
        const r = await put(bad, Buffer.from('x'), 'ci-secret');
        assert.equal(r.status, 400, bad);
      }
    });
    it('a body over --max-blob-size is 413', async () => {
      assert.equal((await put('413413', randomBytes(MAX + 1), 'ci-secret')).status, 413);
      assert.equal(await stored('413413'), false);
    });
    it('a truncated body stores nothing', async () => {
      await cutUpload(srv, '/nx/v1/cache/400400', { tool: 'nx', token: 'ci-secret' });
      assert.equal(await stored('400400'), false);
    });
  });
});
