// The GitHub Actions cache service over raw HTTP: every endpoint's auth
// matrix (no token, read token, write token, a token scoped to another
// namespace) and bad input (bad JSON, wrong methods, unknown routes, bad keys,
// block ids, block lists, Content-Range, oversize bodies, forged / expired /
// unknown signed URLs, finalize with the wrong size), plus what the toolkit
// relies on: Put Block out of order + Put Block List, ranged and x-ms-range
// downloads, immutable keys, a half-uploaded entry never visible, the bound on
// pending uploads per token, and v1 and v2 sharing entries.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { actionsCacheFeature } from '../../../src/features/actions-cache/actions-cache-feature.ts';
import { UrlSigner } from '../../../src/features/actions-cache/signed-url.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { cutUpload } from '../../support/cut-upload.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import { waitUntil } from '../../support/wait.ts';
import { serveForToolkit } from './toolkit.ts';

const SECRET = 'a-test-secret-of-at-least-32-characters';
const MAX = 1024 * 1024;
const TWIRP = '/twirp/github.actions.results.api.v1.CacheService';
const V = 'a'.repeat(64);

const TOKENS = {
  write: 'w-token',
  read: 'r-token',
  elsewhere: 'turbo-token',
  other: 'other-repo-token',
};

describe('Actions cache service (HTTP)', () => {
  let dir: string;
  let srv: TestServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-actions-api-'));
    const tokens = await writeTokensFile(dir, [
      { name: 'ci', token: TOKENS.write, scopes: ['read', 'write'], refs: ['cache/actions/acme/app'] },
      { name: 'reader', token: TOKENS.read, scopes: ['read'], refs: ['cache/actions/acme/app'] },
      { name: 'turbo', token: TOKENS.elsewhere, scopes: ['read', 'write'], refs: ['cache/turbo/team'] },
      { name: 'other', token: TOKENS.other, scopes: ['read', 'write'], refs: ['cache/actions/acme/other'] },
    ]);
    srv = await startTestServer(
      { tokens, maxBlobSize: MAX },
      { features: [withSettings(actionsCacheFeature, { secret: SECRET, maxPendingUploads: 5 })] },
    );
  });
  after(async () => {
    await srv?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const auth = (token?: string): Record<string, string> =>
    token ? { authorization: `Bearer ${token}` } : {};
  const twirp = async (
    method: string,
    body: unknown,
    token?: string,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(`${srv.url}${TWIRP}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(token), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const put = (url: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob', ...headers },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
  const v1 = (path: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`${srv.url}/_apis/artifactcache/${path}`, {
      ...init,
      headers: { ...auth(init.token), ...(init.headers as Record<string, string>) },
    });
  const v1json = (path: string, method: string, body: unknown, token?: string) =>
    v1(path, { method, token, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const blockId = (i: number) => Buffer.from(`block-${String(i).padStart(6, '0')}`).toString('base64');
  const blockList = (ids: string[]) =>
    `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join('')}</BlockList>`;

  /** Saves `bytes` under `key` through v2 as the toolkit does (two blocks when long enough). */
  const saveV2 = async (key: string, bytes: Buffer, token = TOKENS.write) => {
    const c = await twirp('CreateCacheEntry', { key, version: V }, token);
    assert.equal(c.status, 200, JSON.stringify(c.body));
    const url = c.body.signed_upload_url as string;
    const half = Math.floor(bytes.length / 2);
    // Out of order, as parallel uploads arrive.
    assert.equal(
      (await put(`${url}&comp=block&blockid=${encodeURIComponent(blockId(1))}`, bytes.subarray(half))).status,
      201,
    );
    assert.equal(
      (await put(`${url}&comp=block&blockid=${encodeURIComponent(blockId(0))}`, bytes.subarray(0, half)))
        .status,
      201,
    );
    assert.equal((await put(`${url}&comp=blocklist`, blockList([blockId(0), blockId(1)]))).status, 201);
    const f = await twirp(
      'FinalizeCacheEntryUpload',
      { key, version: V, size_bytes: String(bytes.length) },
      token,
    );
    assert.equal(f.status, 200, JSON.stringify(f.body));
    assert.equal(f.body.ok, true);
  };
  const lookup = (key: string, restore: string[] = [], token = TOKENS.read) =>
    twirp('GetCacheEntryDownloadURL', { key, restore_keys: restore, version: V }, token);

  describe('v2 (Twirp)', () => {
    it('stores blocks out of order, finalizes, and serves ranges (Range and x-ms-range) from the signed URL', async () => {
      const bytes = randomBytes(100_000);
      await saveV2('deps-1', bytes);
      const got = await lookup('deps-1');
      assert.equal(got.body.ok, true);
      assert.equal(got.body.matched_key, 'deps-1');
      const url = got.body.signed_download_url as string;
      const full = await fetch(url);
      assert.equal(full.status, 200);
      assert.ok(full.headers.get('etag'));
      assert.deepEqual(Buffer.from(await full.arrayBuffer()), bytes);
      const head = await fetch(url, { method: 'HEAD' });
      assert.equal(head.headers.get('content-length'), String(bytes.length));
      assert.equal(head.headers.get('x-ms-blob-type'), 'BlockBlob');
      const ranged = await fetch(url, { headers: { range: 'bytes=10-19' } });
      assert.equal(ranged.status, 206);
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(10, 20));
      const azure = await fetch(url, { headers: { 'x-ms-range': 'bytes=99990-' } });
      assert.equal(azure.status, 206);
      assert.deepEqual(Buffer.from(await azure.arrayBuffer()), bytes.subarray(99990));
      const beyond = await fetch(url, { headers: { range: 'bytes=200000-' } });
      assert.equal(beyond.status, 416);
    });

    it('accepts a single-shot Put Blob and lowerCamel field names', async () => {
      const c = await twirp('CreateCacheEntry', { key: 'single-1', version: V }, TOKENS.write);
      assert.equal((await put(c.body.signed_upload_url as string, 'one shot')).status, 201);
      const f = await twirp(
        'FinalizeCacheEntryUpload',
        { key: 'single-1', version: V, sizeBytes: 8 },
        TOKENS.write,
      );
      assert.equal(f.body.ok, true);
      const got = await twirp(
        'GetCacheEntryDownloadURL',
        { key: 'x', restoreKeys: ['single-'], version: V },
        TOKENS.read,
      );
      assert.equal(got.body.matched_key, 'single-1');
      assert.equal(await (await fetch(got.body.signed_download_url as string)).text(), 'one shot');
    });

    it('matches the exact key first, then prefixes of the key, then restore keys in order, newest first', async () => {
      await saveV2('node-linux-b', Buffer.from('b'));
      await saveV2('node-linux-a', Buffer.from('a (newer)'));
      await saveV2('node-linux', Buffer.from('exact'));
      assert.equal((await lookup('node-linux', ['node-'])).body.matched_key, 'node-linux');
      // No exact hit: the key itself as a prefix, newest first.
      assert.equal((await lookup('node-linux-', ['zzz'])).body.matched_key, 'node-linux-a');
      // Restore keys in the order given: the first that matches anything wins.
      assert.equal((await lookup('zzz', ['yyy', 'node-linux-b', 'node-'])).body.matched_key, 'node-linux-b');
      // Another version sees nothing.
      const other = await twirp(
        'GetCacheEntryDownloadURL',
        { key: 'node-linux', version: 'b'.repeat(64) },
        TOKENS.read,
      );
      assert.deepEqual(other.body, { ok: false, signed_download_url: '', matched_key: '' });
      // Keys with characters outside the ref alphabet, and prefixes cutting through them.
      await saveV2('ключ/with spaces.and.dots', Buffer.from('unicode'));
      assert.equal((await lookup('ключ/with')).body.matched_key, 'ключ/with spaces.and.dots');
      assert.equal((await lookup('клю')).body.matched_key, 'ключ/with spaces.and.dots');
    });

    it('keeps keys immutable: a second reservation of a pending or stored key is already_exists', async () => {
      const c = await twirp('CreateCacheEntry', { key: 'imm-1', version: V }, TOKENS.write);
      assert.equal(c.status, 200);
      const again = await twirp('CreateCacheEntry', { key: 'imm-1', version: V }, TOKENS.write);
      assert.equal(again.status, 409);
      assert.equal(again.body.code, 'already_exists');
      await put(c.body.signed_upload_url as string, 'x');
      assert.equal(
        (await twirp('FinalizeCacheEntryUpload', { key: 'imm-1', version: V, size_bytes: '1' }, TOKENS.write))
          .status,
        200,
      );
      const stored = await twirp('CreateCacheEntry', { key: 'imm-1', version: V }, TOKENS.write);
      assert.equal(stored.status, 409);
      assert.equal(stored.body.code, 'already_exists');
    });

    it('never shows a half-uploaded entry, and refuses a finalize of the wrong size (dropping the upload)', async () => {
      const c = await twirp('CreateCacheEntry', { key: 'half-1', version: V }, TOKENS.write);
      const url = c.body.signed_upload_url as string;
      await put(`${url}&comp=block&blockid=${encodeURIComponent(blockId(0))}`, 'abc');
      assert.equal((await lookup('half-1')).body.ok, false);
      await put(`${url}&comp=blocklist`, blockList([blockId(0)]));
      assert.equal((await lookup('half-1')).body.ok, false);
      const wrong = await twirp(
        'FinalizeCacheEntryUpload',
        { key: 'half-1', version: V, size_bytes: '4' },
        TOKENS.write,
      );
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.code, 'invalid_argument');
      assert.equal((await lookup('half-1')).body.ok, false);
      // The upload is gone: its URL and a second finalize find nothing.
      assert.equal((await put(url, 'abc')).status, 404);
      const again = await twirp(
        'FinalizeCacheEntryUpload',
        { key: 'half-1', version: V, size_bytes: '3' },
        TOKENS.write,
      );
      assert.equal(again.status, 404);
      assert.equal(again.body.code, 'not_found');
    });

    it('auth: CreateCacheEntry and FinalizeCacheEntryUpload need a write token for the namespace', async () => {
      const body = { key: 'auth-1', version: V };
      const none = await twirp('CreateCacheEntry', body);
      assert.equal(none.status, 401);
      assert.equal(none.body.code, 'unauthenticated');
      const read = await twirp('CreateCacheEntry', body, TOKENS.read);
      assert.equal(read.status, 403);
      assert.equal(read.body.code, 'permission_denied');
      assert.equal((await twirp('CreateCacheEntry', body, TOKENS.elsewhere)).status, 403);
      const fin = { ...body, size_bytes: '1' };
      assert.equal((await twirp('FinalizeCacheEntryUpload', fin)).status, 401);
      assert.equal((await twirp('FinalizeCacheEntryUpload', fin, TOKENS.read)).status, 403);
      assert.equal((await twirp('FinalizeCacheEntryUpload', fin, TOKENS.elsewhere)).status, 403);
      // The write token of another repository reserves in its own namespace, and cannot
      // finalize this one's upload.
      const c = await twirp('CreateCacheEntry', body, TOKENS.write);
      assert.equal(c.status, 200);
      await put(c.body.signed_upload_url as string, 'x');
      assert.equal((await twirp('FinalizeCacheEntryUpload', fin, TOKENS.other)).status, 404);
      assert.equal((await twirp('FinalizeCacheEntryUpload', fin, TOKENS.write)).status, 200);
    });

    it('auth: GetCacheEntryDownloadURL needs a token and sees its own namespace only', async () => {
      await saveV2('scoped-1', Buffer.from('mine'));
      assert.equal((await lookup('scoped-1', [], '')).status, 401);
      assert.equal((await lookup('scoped-1', [], 'not-a-token')).status, 401);
      assert.equal((await lookup('scoped-1', [], TOKENS.read)).body.ok, true);
      assert.equal((await lookup('scoped-1', [], TOKENS.write)).body.ok, true);
      assert.equal((await lookup('scoped-1', [], TOKENS.elsewhere)).body.ok, false);
      assert.equal((await lookup('scoped-1', [], TOKENS.other)).body.ok, false);
      // Another repository's save of the same key is its own entry.
      await saveV2('scoped-1', Buffer.from('theirs'), TOKENS.other);
      const theirs = await lookup('scoped-1', [], TOKENS.other);
      assert.equal(await (await fetch(theirs.body.signed_download_url as string)).text(), 'theirs');
      const mine = await lookup('scoped-1', [], TOKENS.read);
      assert.equal(await (await fetch(mine.body.signed_download_url as string)).text(), 'mine');
    });

    it('auth: an unknown Twirp route is the same bad_route for every caller (nothing behind it to guard)', async () => {
      for (const token of [undefined, TOKENS.read, TOKENS.write, TOKENS.elsewhere, TOKENS.other]) {
        const r = await twirp('DeleteCacheEntry', {}, token);
        assert.equal(r.status, 404, String(token));
        assert.equal(r.body.code, 'bad_route', String(token));
      }
    });

    it('bad input: JSON, routes, methods, content types, keys, versions, sizes', async () => {
      const malformed = await twirp('CreateCacheEntry', '{"key":', TOKENS.write);
      assert.equal(malformed.status, 400);
      assert.equal(typeof malformed.body.msg, 'string');
      assert.equal((await twirp('CreateCacheEntry', '[1]', TOKENS.write)).status, 400);
      const unknown = await twirp('DeleteCacheEntry', {}, TOKENS.write);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.code, 'bad_route');
      const get = await fetch(`${srv.url}${TWIRP}/CreateCacheEntry`, { headers: auth(TOKENS.write) });
      assert.equal(get.status, 404);
      assert.equal(((await get.json()) as { code: string }).code, 'bad_route');
      const proto = await twirp('CreateCacheEntry', 'x', TOKENS.write, {
        'content-type': 'application/protobuf',
      });
      assert.equal(proto.body.code, 'bad_route');
      for (const body of [
        { version: V },
        { key: '', version: V },
        { key: 'a,b', version: V },
        { key: 'x'.repeat(513), version: V },
        { key: 'ctl\u0001', version: V },
        { key: 'k' },
        { key: 'k', version: 'not/a version' },
      ]) {
        const r = await twirp('CreateCacheEntry', body, TOKENS.write);
        assert.equal(r.status, 400, JSON.stringify(body));
        assert.equal(r.body.code, 'invalid_argument');
      }
      assert.equal(
        (await twirp('GetCacheEntryDownloadURL', { key: 'k', version: V, restore_keys: 'k' }, TOKENS.read))
          .status,
        400,
      );
      const many = Array.from({ length: 10 }, (_, i) => `r${i}`);
      assert.equal(
        (await twirp('GetCacheEntryDownloadURL', { key: 'k', version: V, restore_keys: many }, TOKENS.read))
          .status,
        400,
      );
      for (const size_bytes of ['-1', 'x', 1.5, '99999999999999999'])
        assert.equal(
          (await twirp('FinalizeCacheEntryUpload', { key: 'k', version: V, size_bytes }, TOKENS.write))
            .status,
          400,
          String(size_bytes),
        );
    });

    it('bounds the pending uploads of a token (429, resource_exhausted)', async () => {
      const urls: string[] = [];
      let status = 200;
      let body: Record<string, unknown> = {};
      for (let i = 0; i < 8 && status === 200; i++) {
        const r = await twirp('CreateCacheEntry', { key: `pending-${i}`, version: V }, TOKENS.other);
        ({ status, body } = r);
        if (status === 200) urls.push(r.body.signed_upload_url as string);
      }
      assert.equal(status, 429);
      assert.equal(body.code, 'resource_exhausted');
      assert.equal(urls.length, 5);
      // Finishing one frees a place.
      await put(urls[0], 'x');
      await twirp(
        'FinalizeCacheEntryUpload',
        { key: 'pending-0', version: V, size_bytes: '1' },
        TOKENS.other,
      );
      assert.equal(
        (await twirp('CreateCacheEntry', { key: 'pending-9', version: V }, TOKENS.other)).status,
        200,
      );
    });
  });

  describe('signed URLs (Azure blob)', () => {
    let url: string;
    before(async () => {
      const c = await twirp('CreateCacheEntry', { key: 'blob-bad-1', version: V }, TOKENS.write);
      url = c.body.signed_upload_url as string;
    });

    const azureError = async (res: Response, status: number, code: string) => {
      assert.equal(res.status, status);
      assert.equal(res.headers.get('x-ms-error-code'), code);
      assert.match(await res.text(), new RegExp(`<Code>${code}</Code>`));
    };

    it('refuses forged, altered, expired and unknown URLs (no token is involved)', async () => {
      const u = new URL(url);
      const forged = new URL(url);
      forged.searchParams.set('sig', 'A'.repeat(43));
      await azureError(await put(forged.href, 'x'), 403, 'AuthenticationFailed');
      const later = new URL(url);
      later.searchParams.set('se', String(Number(u.searchParams.get('se')) + 3600));
      await azureError(await put(later.href, 'x'), 403, 'AuthenticationFailed');
      await azureError(await put(`${u.origin}${u.pathname}`, 'x'), 403, 'AuthenticationFailed');
      const signer = new UrlSigner({ secret: SECRET, ttlMs: 1000 });
      const id = u.pathname.split('/').pop() as string;
      const expired = `${u.origin}${u.pathname}?${signer.sign('upload', id, Date.now() - 1000)}`;
      await azureError(await put(expired, 'x'), 403, 'AuthenticationFailed');
      // A download grant does not upload.
      const asDownload = `${u.origin}${u.pathname}?${signer.sign('download', id)}`;
      await azureError(await put(asDownload, 'x'), 403, 'AuthenticationFailed');
      const unknown = 'f'.repeat(32);
      await azureError(
        await put(`${u.origin}/actions-cache/uploads/${unknown}?${signer.sign('upload', unknown)}`, 'x'),
        404,
        'BlobNotFound',
      );
      // Downloads alike: a digest is no capability without its signature.
      const hex = '0'.repeat(64);
      await azureError(await fetch(`${u.origin}/actions-cache/blobs/${hex}`), 403, 'AuthenticationFailed');
      await azureError(
        await fetch(`${u.origin}/actions-cache/blobs/${hex}?${signer.sign('download', hex, Date.now() - 1)}`),
        403,
        'AuthenticationFailed',
      );
      await azureError(
        await fetch(`${u.origin}/actions-cache/blobs/${hex}?${signer.sign('download', hex)}`),
        404,
        'BlobNotFound',
      );
    });

    it('refuses bad block ids, block lists, blob types and operations', async () => {
      for (const id of ['not base64!', 'abc', Buffer.alloc(65).toString('base64')])
        await azureError(
          await put(`${url}&comp=block&blockid=${encodeURIComponent(id)}`, 'x'),
          400,
          'InvalidQueryParameterValue',
        );
      await azureError(await put(`${url}&comp=block`, 'x'), 400, 'MissingRequiredQueryParameter');
      assert.equal(
        (await put(`${url}&comp=block&blockid=${encodeURIComponent(blockId(0))}`, 'x')).status,
        201,
      );
      const longer = Buffer.from('a-longer-block-id-than-before').toString('base64');
      assert.equal((await put(`${url}&comp=block&blockid=${encodeURIComponent(longer)}`, 'x')).status, 400);
      await azureError(await put(`${url}&comp=blocklist`, blockList([blockId(7)])), 400, 'InvalidBlockList');
      await azureError(await put(`${url}&comp=blocklist`, '<BlockList><Latest>'), 400, 'InvalidXmlDocument');
      await azureError(
        await put(`${url}&comp=blocklist`, '<BlockList><Evil>QQ==</Evil></BlockList>'),
        400,
        'InvalidXmlDocument',
      );
      await azureError(await put(`${url}&comp=appendblock`, 'x'), 400, 'UnsupportedQueryParameter');
      await azureError(await put(url, 'x', { 'x-ms-blob-type': 'PageBlob' }), 400, 'InvalidHeaderValue');
      assert.equal((await fetch(url, { method: 'DELETE' })).status, 404);
    });

    it('keeps nothing of a block whose connection is cut midway', async () => {
      const c = await twirp('CreateCacheEntry', { key: 'cut-1', version: V }, TOKENS.write);
      const u = new URL(c.body.signed_upload_url as string);
      const id = u.pathname.split('/').pop() as string;
      const spool = join(srv.dataDir, 'tmp', 'actions-cache', id);
      const parts = async () => (await readdir(spool)).filter((f) => f.endsWith('.part')).length;
      await cutUpload(srv, `${u.pathname}${u.search}&comp=block&blockid=${encodeURIComponent(blockId(0))}`, {
        token: 'unused',
        inFlight: parts,
      });
      await azureError(
        await put(`${u.href}&comp=blocklist`, blockList([blockId(0)])),
        400,
        'InvalidBlockList',
      );
      assert.deepEqual(await readdir(spool), []);
    });

    it('refuses a body over the size bound (413) and keeps nothing of it', async () => {
      const c = await twirp('CreateCacheEntry', { key: 'big-1', version: V }, TOKENS.write);
      const u = c.body.signed_upload_url as string;
      await azureError(await put(u, Buffer.alloc(MAX + 1)), 413, 'RequestBodyTooLarge');
      // Blocks add up: each fits, together they do not.
      assert.equal(
        (await put(`${u}&comp=block&blockid=${encodeURIComponent(blockId(0))}`, Buffer.alloc(MAX / 2 + 10)))
          .status,
        201,
      );
      await azureError(
        await put(`${u}&comp=block&blockid=${encodeURIComponent(blockId(1))}`, Buffer.alloc(MAX / 2 + 10)),
        413,
        'RequestBodyTooLarge',
      );
      assert.equal((await put(`${u}&comp=blocklist`, blockList([blockId(0), blockId(1)]))).status, 400);
    });
  });

  describe('v1 (_apis/artifactcache)', () => {
    const reserve = async (key: string, token = TOKENS.write, cacheSize?: number) =>
      v1json('caches', 'POST', { key, version: V, cacheSize }, token);
    const patch = (id: number, range: string, body: Buffer | string, token = TOKENS.write) =>
      v1(`caches/${id}`, {
        method: 'PATCH',
        token,
        headers: { 'content-type': 'application/octet-stream', 'content-range': range },
        body: typeof body === 'string' ? body : new Uint8Array(body),
      });

    it('reserves, takes chunks in any order, commits, and is found by v2 as by v1 (one entry)', async () => {
      const bytes = randomBytes(50_000);
      const r = await reserve('v1-deps-1', TOKENS.write, bytes.length);
      assert.equal(r.status, 201);
      const { cacheId } = (await r.json()) as { cacheId: number };
      assert.ok(Number.isSafeInteger(cacheId) && cacheId > 0);
      assert.equal((await patch(cacheId, 'bytes 30000-49999/*', bytes.subarray(30000))).status, 204);
      assert.equal((await patch(cacheId, 'bytes 0-29999/*', bytes.subarray(0, 30000))).status, 204);
      assert.equal(
        (await v1json(`caches/${cacheId}`, 'POST', { size: bytes.length }, TOKENS.write)).status,
        204,
      );
      const hit = await v1(`cache?keys=${encodeURIComponent('v1-deps-2,v1-deps-')}&version=${V}`, {
        token: TOKENS.read,
      });
      assert.equal(hit.status, 200);
      const entry = (await hit.json()) as { cacheKey: string; archiveLocation: string; cacheVersion: string };
      assert.equal(entry.cacheKey, 'v1-deps-1');
      assert.equal(entry.cacheVersion, V);
      assert.deepEqual(Buffer.from(await (await fetch(entry.archiveLocation)).arrayBuffer()), bytes);
      assert.equal((await lookup('v1-deps-1')).body.matched_key, 'v1-deps-1');
      const list = await v1(`caches?key=v1-deps-1`, { token: TOKENS.read });
      assert.equal(((await list.json()) as { totalCount: number }).totalCount, 1);
      assert.equal((await v1(`cache?keys=nothing&version=${V}`, { token: TOKENS.read })).status, 204);
      assert.equal((await reserve('v1-deps-1')).status, 409);
    });

    it('auth: every endpoint, and only the reserving token may send chunks and commit', async () => {
      assert.equal((await v1(`cache?keys=k&version=${V}`)).status, 401);
      assert.equal((await v1(`cache?keys=k&version=${V}`, { token: 'nope' })).status, 401);
      assert.equal((await v1(`cache?keys=v1-deps-1&version=${V}`, { token: TOKENS.elsewhere })).status, 204);
      assert.equal((await v1(`cache?keys=v1-deps-1&version=${V}`, { token: TOKENS.other })).status, 204);
      assert.equal((await v1('caches?key=k')).status, 401);
      assert.equal((await reserve('v1-auth', '')).status, 401);
      assert.equal((await reserve('v1-auth', TOKENS.read)).status, 403);
      assert.equal((await reserve('v1-auth', TOKENS.elsewhere)).status, 403);
      const r = await reserve('v1-auth');
      const { cacheId } = (await r.json()) as { cacheId: number };
      assert.equal((await patch(cacheId, 'bytes 0-0/*', 'x', '')).status, 401);
      assert.equal((await patch(cacheId, 'bytes 0-0/*', 'x', TOKENS.read)).status, 403);
      assert.equal((await patch(cacheId, 'bytes 0-0/*', 'x', TOKENS.elsewhere)).status, 403);
      assert.equal((await patch(cacheId, 'bytes 0-0/*', 'x', TOKENS.other)).status, 403);
      assert.equal((await patch(cacheId, 'bytes 0-0/*', 'x')).status, 204);
      assert.equal((await v1json(`caches/${cacheId}`, 'POST', { size: 1 })).status, 401);
      assert.equal((await v1json(`caches/${cacheId}`, 'POST', { size: 1 }, TOKENS.read)).status, 403);
      assert.equal((await v1json(`caches/${cacheId}`, 'POST', { size: 1 }, TOKENS.other)).status, 403);
      assert.equal((await v1json(`caches/${cacheId}`, 'POST', { size: 1 }, TOKENS.write)).status, 204);
    });

    it('takes the token from the path of /actions-cache/t/<token>/ (forge runners), over any Authorization', async () => {
      const at = (token: string, path: string, init: RequestInit = {}) =>
        fetch(`${srv.url}/actions-cache/t/${token}/_apis/artifactcache/${path}`, {
          ...init,
          // What a forge runner sends: its own job token, which hoard does not know.
          headers: { authorization: 'Bearer forge-job-token', ...(init.headers as Record<string, string>) },
        });
      const json = { 'content-type': 'application/json' };
      assert.equal((await at('nope', `cache?keys=v1-deps-1&version=${V}`)).status, 401);
      assert.equal((await at(TOKENS.elsewhere, `cache?keys=v1-deps-1&version=${V}`)).status, 204);
      const hit = await at(TOKENS.read, `cache?keys=v1-deps-1&version=${V}`);
      assert.equal(hit.status, 200);
      assert.equal(((await hit.json()) as { cacheKey: string }).cacheKey, 'v1-deps-1');
      const body = JSON.stringify({ key: 'path-token-1', version: V });
      assert.equal((await at(TOKENS.read, 'caches', { method: 'POST', headers: json, body })).status, 403);
      const r = await at(TOKENS.write, 'caches', { method: 'POST', headers: json, body });
      assert.equal(r.status, 201);
      const { cacheId } = (await r.json()) as { cacheId: number };
      const chunk = { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-1/*' };
      assert.equal(
        (await at(TOKENS.other, `caches/${cacheId}`, { method: 'PATCH', headers: chunk, body: 'ok' })).status,
        403,
      );
      assert.equal(
        (await at(TOKENS.write, `caches/${cacheId}`, { method: 'PATCH', headers: chunk, body: 'ok' })).status,
        204,
      );
      const commit = JSON.stringify({ size: 2 });
      assert.equal(
        (await at(TOKENS.write, `caches/${cacheId}`, { method: 'POST', headers: json, body: commit })).status,
        204,
      );
      // The same entry as through the Authorization header.
      assert.equal((await lookup('path-token-1')).body.matched_key, 'path-token-1');
    });

    it('bad input: JSON, Content-Range, chunk lengths, gaps, sizes, unknown ids', async () => {
      const bad = await v1('caches', {
        method: 'POST',
        token: TOKENS.write,
        headers: { 'content-type': 'application/json' },
        body: '{"key"',
      });
      assert.equal(bad.status, 400);
      assert.equal(typeof ((await bad.json()) as { message: string }).message, 'string');
      assert.equal((await v1json('caches', 'POST', { key: 'a,b', version: V }, TOKENS.write)).status, 400);
      assert.equal(
        (await v1json('caches', 'POST', { key: 'k', version: V, cacheSize: -1 }, TOKENS.write)).status,
        400,
      );
      assert.equal((await reserve('v1-huge', TOKENS.write, MAX + 1)).status, 413);
      assert.equal((await v1(`cache?version=${V}`, { token: TOKENS.read })).status, 400);
      assert.equal((await v1(`cache?keys=k&version=`, { token: TOKENS.read })).status, 400);
      const { cacheId } = (await (await reserve('v1-bad')).json()) as { cacheId: number };
      for (const range of ['bytes 5-1/*', 'bytes=0-1', 'bytes 0-1/1', 'items 0-1/*', ''])
        assert.equal((await patch(cacheId, range, 'ab')).status, 400, range);
      assert.equal((await patch(cacheId, 'bytes 0-9/*', 'short')).status, 400);
      assert.equal((await patch(cacheId, `bytes ${MAX}-${MAX + 1}/*`, 'ab')).status, 413);
      assert.equal((await patch(cacheId, 'bytes 0-1/*', 'ab')).status, 204);
      assert.equal((await patch(cacheId, 'bytes 4-5/*', 'ef')).status, 204);
      // A gap at 2-3: the commit is refused, nothing is published, the upload is gone.
      assert.equal((await v1json(`caches/${cacheId}`, 'POST', { size: 6 }, TOKENS.write)).status, 400);
      assert.equal((await v1(`cache?keys=v1-bad&version=${V}`, { token: TOKENS.read })).status, 204);
      assert.equal((await v1json(`caches/${cacheId}`, 'POST', { size: 6 }, TOKENS.write)).status, 404);
      assert.equal((await patch(cacheId, 'bytes 0-1/*', 'ab')).status, 404);
      assert.equal((await patch(123, 'bytes 0-1/*', 'ab')).status, 404);
      assert.equal((await v1json('caches/abc', 'POST', { size: 1 }, TOKENS.write)).status, 404);
      // A commit of the wrong size.
      const { cacheId: id2 } = (await (await reserve('v1-bad-2')).json()) as { cacheId: number };
      assert.equal((await patch(id2, 'bytes 0-2/*', 'abc')).status, 204);
      assert.equal((await v1json(`caches/${id2}`, 'POST', { size: 2 }, TOKENS.write)).status, 400);
      assert.equal((await v1(`cache?keys=v1-bad-2&version=${V}`, { token: TOKENS.read })).status, 204);
    });
  });

  it('entries are cache refs: --cache-ref-ttl expires an unused one, a restored one lives', async () => {
    const ttlDir = await mkdtemp(join(tmpdir(), 'hoard-actions-ttl-'));
    const tokens = await writeTokensFile(ttlDir, [
      { name: 'ci', token: TOKENS.write, scopes: ['read', 'write'], refs: ['cache/actions/acme/app'] },
    ]);
    const ttl = await startTestServer(
      { tokens, cacheRefTtl: '1500ms' },
      { features: [withSettings(actionsCacheFeature, { secret: SECRET })] },
    );
    try {
      const call = async (method: string, body: unknown) =>
        (await fetch(`${ttl.url}${TWIRP}/${method}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth(TOKENS.write) },
          body: JSON.stringify(body),
        }).then((r) => r.json())) as Record<string, unknown>;
      for (const key of ['ttl-hot', 'ttl-cold']) {
        const c = await call('CreateCacheEntry', { key, version: V });
        assert.equal((await put(c.signed_upload_url as string, key)).status, 201);
        assert.equal(
          (await call('FinalizeCacheEntryUpload', { key, version: V, size_bytes: key.length })).ok,
          true,
        );
      }
      const cold = `cache/actions/acme/app/v${'a'.repeat(64)}/kttl-cold`;
      assert.ok(await ttl.server.ctx.refs.get(cold));
      // Restoring the hot entry (a lookup that hits) is a use; the cold one is never asked for.
      await waitUntil(async () => {
        assert.equal((await call('GetCacheEntryDownloadURL', { key: 'ttl-hot', version: V })).ok, true);
        return (await ttl.server.ctx.refs.get(cold)) === undefined;
      }, 'the unused entry to expire');
      const hot = await call('GetCacheEntryDownloadURL', { key: 'ttl-hot', version: V });
      assert.equal(await (await fetch(hot.signed_download_url as string)).text(), 'ttl-hot');
      assert.equal((await call('GetCacheEntryDownloadURL', { key: 'ttl-cold', version: V })).ok, false);
    } finally {
      await ttl.close();
      await rm(ttlDir, { recursive: true, force: true });
    }
  });

  it('logs signed URLs without their signature', async () => {
    const served = await serveForToolkit(join(dir, 'logged'), { namespace: 'acme/app' });
    try {
      const c = await fetch(`${served.url}${TWIRP}/CreateCacheEntry`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth(served.token) },
        body: JSON.stringify({ key: 'logged-1', version: V }),
      });
      const url = ((await c.json()) as { signed_upload_url: string }).signed_upload_url;
      const sig = new URL(url).searchParams.get('sig') as string;
      assert.equal((await put(url, 'x')).status, 201);
      await waitUntil(async () => served.log().includes('/actions-cache/uploads/'), 'the request log line');
      assert.ok(!served.log().includes(sig), 'the signature reached the log');
      assert.match(served.log(), /sig=\*\*\*/);
    } finally {
      served.child.kill();
      await served.exited;
    }
  });
});
