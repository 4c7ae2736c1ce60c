// The primary's fast path for plain small blob GETs (src/server/blob-fast-path.ts,
// TieredBlobStore.openSync): it answers before fastify routes the request,
// so these tests go over real TCP (fastify's inject would bypass it) and
// compare its answers with the route's — a GET with a non-matching
// If-None-Match is not taken by the fast path and gets the route's 200.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { startTestServer } from './helpers.ts';

const VARYING = new Set(['date', 'connection', 'keep-alive']);
async function answer(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  const h = Object.fromEntries([...res.headers].filter(([k]) => !VARYING.has(k)));
  return { status: res.status, headers: h, body: sha256(body) };
}
const viaRoute = { 'if-none-match': '"not-this-one"' };

async function metric(base: string, re: RegExp): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = re.exec(text);
  return m ? Number(m[1]) : 0;
}

describe('blob fast path', () => {
  for (const maxMemory of ['0', '64MiB'])
    it(`answers as the route does (memory tier ${maxMemory})`, async () => {
      const srv = await startTestServer({ maxMemory });
      try {
        const data = randomBytes(4096);
        const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
        assert.equal((await fetch(url, { method: 'PUT', body: new Uint8Array(data) })).status, 201);
        // The first read brings a small blob into the memory tier (when it has room): then both answer from it.
        const first = await answer(url);
        assert.equal(first.headers['x-hoard-tier'], 'disk');
        const fast = await answer(url);
        const route = await answer(url, viaRoute);
        assert.equal(fast.status, 200);
        assert.equal(fast.body, sha256(data));
        assert.deepEqual(fast, route);
        assert.equal(fast.headers['x-hoard-tier'], maxMemory === '0' ? 'disk' : 'memory');
        // Empty blobs and query strings too.
        const empty = Buffer.alloc(0);
        const eurl = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(empty))}`;
        await fetch(eurl, { method: 'PUT', body: new Uint8Array(empty) });
        await answer(eurl);
        assert.deepEqual(await answer(`${eurl}?a=b`), await answer(eurl, viaRoute));
      } finally {
        await srv.close();
      }
    });

  it('counts its answers in /metrics like the route', async () => {
    const srv = await startTestServer({ maxMemory: '0' });
    try {
      const data = randomBytes(1000);
      const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
      await fetch(url, { method: 'PUT', body: new Uint8Array(data) });
      const reqs =
        /hoard_http_requests_total\{method="GET",route="\/v1\/blobs\/sha256\/:hex",status="200"\} (\d+)/;
      const hits = /hoard_tier_hits_total\{tier="disk"\} (\d+)/;
      const r0 = await metric(srv.url, reqs);
      const h0 = await metric(srv.url, hits);
      for (let i = 0; i < 5; i++) await answer(url);
      assert.equal((await metric(srv.url, reqs)) - r0, 5);
      assert.equal((await metric(srv.url, hits)) - h0, 5);
    } finally {
      await srv.close();
    }
  });

  it('never serves a small file that does not hash to its name: the route quarantines it', async () => {
    const srv = await startTestServer({ maxMemory: '0' });
    try {
      const data = randomBytes(3000);
      const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
      await fetch(url, { method: 'PUT', body: new Uint8Array(data) });
      assert.equal((await answer(url)).body, sha256(data));
      const bad = Buffer.from(data);
      bad[0] ^= 1;
      await writeFile(FsBlobStore.pathIn(srv.dataDir, sha256(data)), bad);
      const r = await answer(url);
      assert.equal(r.status, 404);
      assert.equal(await metric(srv.url, /hoard_blob_corrupt_total\{source="read"\} (\d+)/), 1);
    } finally {
      await srv.close();
    }
  });

  it('auth: no token and a bad token get the route’s 401; read and write tokens are served', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-fast-'));
    const tokens = await writeTokensFile(dir, [
      { name: 'r', token: 'read-secret-000000', scopes: ['read'] },
      { name: 'w', token: 'write-secret-00000', scopes: ['write'] },
      { name: 'b', token: 'team-b-secret-0000', scopes: ['read'], refs: ['team-b/'] },
    ]);
    const srv = await startTestServer({ maxMemory: '0', tokens });
    try {
      const data = randomBytes(500);
      const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
      const w = { authorization: 'Bearer write-secret-00000' };
      assert.equal((await fetch(url, { method: 'PUT', body: new Uint8Array(data), headers: w })).status, 201);
      assert.equal((await answer(url)).status, 401);
      assert.equal((await answer(url, { authorization: 'Bearer wrong' })).status, 401);
      for (const t of ['read-secret-000000', 'write-secret-00000', 'team-b-secret-0000']) {
        const r = await answer(url, { authorization: `Bearer ${t}` });
        assert.equal(r.status, 200, t);
        assert.equal(r.body, sha256(data));
      }
    } finally {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
