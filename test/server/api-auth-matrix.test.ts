// The auth matrix of the /v1 routes auth.test.ts does not walk (blob DELETE
// and listing, missing, ref DELETE and listing, /metrics, health): no token,
// read, write, a token bound to other ref prefixes, and bad input, each
// refused request checked to have changed nothing.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { type TestToken, writeTokensFile } from '../support/tokens.ts';
import { startTestServer, type TestServer } from './helpers.ts';

const TOKENS: TestToken[] = [
  { name: 'reader', token: 'read-secret', scopes: ['read'] },
  { name: 'writer', token: 'write-secret', scopes: ['read', 'write'] },
  { name: 'team-a', token: 'team-a-secret', scopes: ['read', 'write'], refs: ['team-a'] },
  { name: 'team-a-reader', token: 'team-a-read-secret', scopes: ['read'], refs: ['team-a'] },
  { name: 'all-refs', token: 'all-refs-secret', scopes: ['read', 'write'], refs: [''] },
];

describe('/v1 auth matrix: the routes beside blob GET/PUT and ref GET/PUT', () => {
  let dir: string;
  let srv: TestServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-authm-'));
    srv = await startTestServer({ tokens: await writeTokensFile(dir, TOKENS) });
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const auth = (t?: string): Record<string, string> => (t ? { authorization: `Bearer ${t}` } : {});
  const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
  const blobUrl = (hex: string) => `${srv.url}/v1/blobs/sha256/${hex}`;
  async function storedBlob(): Promise<string> {
    const bytes = randomBytes(100);
    const hex = hexOf(sha256(bytes));
    const put = await fetch(blobUrl(hex), { method: 'PUT', body: bytes, headers: auth('write-secret') });
    assert.equal(put.status, 201);
    await put.arrayBuffer();
    return hex;
  }
  const blobStatus = async (hex: string) => {
    const res = await fetch(blobUrl(hex), { method: 'HEAD', headers: auth('read-secret') });
    return res.status;
  };

  it('DELETE /v1/blobs/sha256/<hex>: 401 without a token, 403 read, 403 for a prefix-bound write token; nothing deleted', async () => {
    const hex = await storedBlob();
    const del = (t?: string) => fetch(blobUrl(hex), { method: 'DELETE', headers: auth(t) });
    const none = await del();
    assert.equal(none.status, 401);
    assert.equal(await code(none), 'HOARD_EUNAUTHORIZED');
    const read = await del('read-secret');
    assert.equal(read.status, 403);
    assert.equal(await code(read), 'HOARD_EFORBIDDEN');
    // Blobs are shared by every namespace: a token confined to team-a must
    // not destroy content that refs outside team-a (or server-owned snapshots) name.
    const bound = await del('team-a-secret');
    assert.equal(bound.status, 403);
    assert.equal(await code(bound), 'HOARD_EFORBIDDEN');
    assert.equal(await blobStatus(hex), 200, 'the refused deletes deleted nothing');
    const w = await del('write-secret');
    assert.equal(w.status, 204);
    assert.equal(await blobStatus(hex), 404);
    assert.equal((await del('write-secret')).status, 404);
    const hex2 = await storedBlob();
    assert.equal(
      (await fetch(blobUrl(hex2), { method: 'DELETE', headers: auth('all-refs-secret') })).status,
      204,
    );
  });

  it('DELETE /v1/blobs/sha256/<bad>: 400, for a write token as for any', async () => {
    for (const bad of ['xyz', 'A'.repeat(64), '0'.repeat(63), `..%2F${'0'.repeat(61)}`]) {
      const res = await fetch(blobUrl(bad), { method: 'DELETE', headers: auth('write-secret') });
      assert.equal(res.status, 400, bad);
      assert.equal(await code(res), 'HOARD_EDIGEST_INVALID');
    }
  });

  it('GET /v1/blobs (the listing): 401 without a token, 200 read, 403 for a prefix-bound token (it would reveal every digest)', async () => {
    const hex = await storedBlob();
    const list = (t?: string, q = '') => fetch(`${srv.url}/v1/blobs${q}`, { headers: auth(t) });
    assert.equal((await list()).status, 401);
    const read = await list('read-secret');
    assert.equal(read.status, 200);
    const digests = ((await read.json()) as { blobs: { digest: string }[] }).blobs.map((b) => b.digest);
    assert.ok(digests.includes(`sha256:${hex}`));
    for (const t of ['team-a-read-secret', 'team-a-secret']) {
      const bound = await list(t);
      assert.equal(bound.status, 403, t);
      assert.equal(await code(bound), 'HOARD_EFORBIDDEN');
    }
    assert.equal((await list('all-refs-secret')).status, 200);
    assert.equal((await list('read-secret', '?after=nope')).status, 400);
  });

  it('POST /v1/blobs/missing: 401 without a token; read, write and bound tokens ask; bad bodies 400', async () => {
    const hex = await storedBlob();
    const absent = `sha256:${hexOf(sha256('absent'))}`;
    const ask = (t: string | undefined, body: string, type = 'application/json') =>
      fetch(`${srv.url}/v1/blobs/missing`, {
        method: 'POST',
        headers: { 'content-type': type, ...auth(t) },
        body,
      });
    const q = JSON.stringify({ digests: [`sha256:${hex}`, absent] });
    assert.equal((await ask(undefined, q)).status, 401);
    for (const t of ['read-secret', 'write-secret', 'team-a-read-secret']) {
      const res = await ask(t, q);
      assert.equal(res.status, 200, t);
      assert.deepEqual(await res.json(), { missing: [absent] });
    }
    for (const bad of ['{', '[]', '{"digests":"x"}', '{"digests":["sha256:../../etc"]}', '\u0000'])
      assert.equal((await ask('read-secret', bad)).status, 400, JSON.stringify(bad));
    assert.equal((await ask('read-secret', q, 'text/plain')).status, 200, 'any content type is JSON here');
  });

  it('DELETE /v1/refs/<name>: 401 without a token, 403 read, 403 outside the prefixes; the ref unchanged', async () => {
    const hex = await storedBlob();
    const name = 'team-b/app';
    const put = await fetch(`${srv.url}/v1/refs/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-none-match': '*', ...auth('write-secret') },
      body: JSON.stringify({ target: `sha256:${hex}` }),
    });
    assert.equal(put.status, 201);
    const etag = put.headers.get('etag') ?? '';
    await put.arrayBuffer();
    const del = (t?: string) =>
      fetch(`${srv.url}/v1/refs/${name}`, { method: 'DELETE', headers: { 'if-match': etag, ...auth(t) } });
    assert.equal((await del()).status, 401);
    assert.equal((await del('read-secret')).status, 403);
    assert.equal((await del('team-a-secret')).status, 403);
    const still = await fetch(`${srv.url}/v1/refs/${name}`, { headers: auth('read-secret') });
    assert.equal(still.status, 200);
    assert.equal(still.headers.get('etag'), etag);
    await still.arrayBuffer();
    // Encoded: fetch would resolve a literal `..` before sending.
    for (const bad of ['a%2F..%2Fb', '..%2Fx', 'a%2F%2Fb', '%00x'])
      assert.equal(
        (
          await fetch(`${srv.url}/v1/refs/${bad}`, {
            method: 'DELETE',
            headers: { 'if-match': etag, ...auth('write-secret') },
          })
        ).status,
        400,
        bad,
      );
    assert.equal((await del('write-secret')).status, 204);
  });

  it('blob GET and PUT by a token bound to other ref prefixes: allowed (content-addressed; a digest is the capability)', async () => {
    const hex = await storedBlob();
    const get = await fetch(blobUrl(hex), { headers: auth('team-a-read-secret') });
    assert.equal(get.status, 200);
    await get.arrayBuffer();
    const bytes = randomBytes(64);
    const put = await fetch(blobUrl(hexOf(sha256(bytes))), {
      method: 'PUT',
      body: bytes,
      headers: auth('team-a-secret'),
    });
    assert.equal(put.status, 201);
    await put.arrayBuffer();
  });

  it('PUT /v1/refs/<name> with a bad body, a bad precondition or an oversized body: 4xx, the ref unchanged', async () => {
    const hex = await storedBlob();
    const other = await storedBlob();
    const name = 'team-c/app';
    const headers = { 'content-type': 'application/json', ...auth('write-secret') };
    const put = await fetch(`${srv.url}/v1/refs/${name}`, {
      method: 'PUT',
      headers: { ...headers, 'if-none-match': '*' },
      body: JSON.stringify({ target: `sha256:${hex}` }),
    });
    assert.equal(put.status, 201);
    const etag = put.headers.get('etag') ?? '';
    await put.arrayBuffer();
    const attempt = (body: string, extra: Record<string, string> = { 'if-match': etag }) =>
      fetch(`${srv.url}/v1/refs/${name}`, { method: 'PUT', headers: { ...headers, ...extra }, body });
    for (const body of ['{', '[]', '"x"', 'null', '{"target":1}', `{"target":"sha256:${'0'.repeat(63)}"}`])
      assert.equal((await attempt(body)).status, 400, body);
    const good = JSON.stringify({ target: `sha256:${other}` });
    assert.equal((await attempt(good, { 'if-match': '"not-a-version"' })).status, 412);
    assert.equal((await attempt(good, {})).status, 428);
    const huge = JSON.stringify({ target: `sha256:${other}`, pad: 'x'.repeat(5 * 1024 * 1024) });
    assert.equal((await attempt(huge)).status, 413);
    const still = await fetch(`${srv.url}/v1/refs/${name}`, { headers: auth('read-secret') });
    assert.equal(still.headers.get('etag'), etag);
    assert.deepEqual(await still.json(), { target: `sha256:${hex}` });
  });

  it('GET /v1/refs (the listing): 401 without a token, 200 read', async () => {
    assert.equal((await fetch(`${srv.url}/v1/refs?prefix=`)).status, 401);
    const res = await fetch(`${srv.url}/v1/refs?prefix=`, { headers: auth('read-secret') });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it('/metrics needs the read scope; /healthz and /readyz need nothing', async () => {
    const m = (t?: string) => fetch(`${srv.url}/metrics`, { headers: auth(t) });
    assert.equal((await m()).status, 401);
    assert.equal((await m('wrong-secret')).status, 401);
    for (const t of ['read-secret', 'write-secret', 'team-a-read-secret']) {
      const res = await m(t);
      assert.equal(res.status, 200, t);
      assert.match(await res.text(), /hoard_/);
    }
    for (const path of ['/healthz', '/readyz'])
      assert.equal((await fetch(`${srv.url}${path}`)).status, 200, path);
  });
});
