// The Turborepo Remote Caching API v8 at the HTTP level: artifacts round
// trip with their duration and signature tag as they came, overwrite, HEAD,
// Range, the batch query, events and status; the auth matrix (no token,
// read, write, a token scoped to another team); bad input (hash and team
// format, a body over --max-blob-size, a truncated body) stores nothing.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { turboFeature } from '../../../src/features/turbo/turbo-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { cutUpload } from '../../support/cut-upload.ts';
import { writeTokensFile } from '../../support/tokens.ts';

const MAX = 64 * 1024;

describe('turbo remote cache API', () => {
  let dir: string;
  let srv: TestServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-turbo-'));
    const tokens = await writeTokensFile(
      dir,
      [
        { name: 'ci', token: 'ci-secret', scopes: ['read', 'write'], refs: ['cache/turbo/team-a'] },
        { name: 'dev', token: 'dev-secret', scopes: ['read'] },
        {
          name: 'team-b-ci',
          token: 'team-b-secret',
          scopes: ['read', 'write'],
          refs: ['cache/turbo/team-b'],
        },
      ],
      'json',
    );
    srv = await startTestServer(
      { tokens, maxBlobSize: MAX },
      { features: [withSettings(apiFeature), withSettings(turboFeature)] },
    );
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const auth = (t?: string): Record<string, string> => (t ? { authorization: `Bearer ${t}` } : {});
  const url = (hash: string, query = 'slug=team-a') => `${srv.url}/turbo/v8/artifacts/${hash}?${query}`;
  const put = (
    hash: string,
    body: Uint8Array,
    token?: string,
    headers: Record<string, string> = {},
    query?: string,
  ) =>
    fetch(url(hash, query), {
      method: 'PUT',
      body: new Uint8Array(body),
      headers: { 'content-type': 'application/octet-stream', ...auth(token), ...headers },
    });
  const get = (hash: string, token?: string, init: RequestInit = {}, query?: string) =>
    fetch(url(hash, query), {
      ...init,
      headers: { ...auth(token), ...(init.headers as Record<string, string>) },
    });
  const stored = async (hash: string, query?: string) =>
    (await get(hash, 'ci-secret', {}, query)).status === 200;

  it('stores an artifact and answers it with x-artifact-duration and x-artifact-tag as they came', async () => {
    const body = randomBytes(5000);
    const tag = 'Hc3Bu0JG3wXGhbO+4lzAZhBCdd8x2b/VqRjvMTlQoo0=';
    const res = await put('0123abcdef456789', body, 'ci-secret', {
      'x-artifact-duration': '1234',
      'x-artifact-tag': tag,
    });
    assert.equal(res.status, 202);
    assert.ok(Array.isArray((await res.json()).urls));

    const got = await get('0123abcdef456789', 'ci-secret');
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'application/octet-stream');
    assert.equal(got.headers.get('content-length'), String(body.length));
    assert.equal(got.headers.get('x-artifact-duration'), '1234');
    assert.equal(got.headers.get('x-artifact-tag'), tag);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);

    const head = await get('0123abcdef456789', 'dev-secret', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(body.length));
    assert.equal(head.headers.get('x-artifact-tag'), tag);
    assert.equal((await head.arrayBuffer()).byteLength, 0);

    const part = await get('0123abcdef456789', 'dev-secret', { headers: { range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), body.subarray(10, 20));
  });

  it('a miss is 404 for GET and HEAD', async () => {
    assert.equal((await get('fedcba9876543210', 'ci-secret')).status, 404);
    assert.equal((await get('fedcba9876543210', 'ci-secret', { method: 'HEAD' })).status, 404);
  });

  it('PUT of an existing hash overwrites it (last writer wins); an artifact without a tag answers none', async () => {
    assert.equal(
      (await put('aaaa000011112222', Buffer.from('first'), 'ci-secret', { 'x-artifact-tag': 't1' })).status,
      202,
    );
    assert.equal((await put('aaaa000011112222', Buffer.from('second'), 'ci-secret')).status, 202);
    const got = await get('aaaa000011112222', 'ci-secret');
    assert.equal(await got.text(), 'second');
    assert.equal(got.headers.get('x-artifact-tag'), null);
  });

  it('teams are separate namespaces; teamId is used when given, else slug', async () => {
    assert.equal(
      (await put('bbbb000011112222', Buffer.from('x'), 'ci-secret', {}, 'teamId=team-a&slug=ignored')).status,
      202,
    );
    assert.ok(await stored('bbbb000011112222', 'slug=team-a'));
    assert.equal((await get('bbbb000011112222', 'team-b-secret', {}, 'slug=team-b')).status, 404);
  });

  it('POST /v8/artifacts answers size, duration and tag per hash, an error for a miss', async () => {
    await put('cccc000011112222', Buffer.from('12345'), 'ci-secret', {
      'x-artifact-duration': '77',
      'x-artifact-tag': 'sig',
    });
    const res = await fetch(`${srv.url}/turbo/v8/artifacts?slug=team-a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth('dev-secret') },
      body: JSON.stringify({ hashes: ['cccc000011112222', 'dddd000011112222'] }),
    });
    assert.equal(res.status, 200);
    const out = await res.json();
    assert.deepEqual(out.cccc000011112222, { size: 5, taskDurationMs: 77, tag: 'sig' });
    assert.ok(out.dddd000011112222.error.message);

    const bad = await fetch(`${srv.url}/turbo/v8/artifacts?slug=team-a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth('dev-secret') },
      body: JSON.stringify({ hashes: ['cccc000011112222', '../x'] }),
    });
    assert.equal(bad.status, 400);
  });

  it('events are accepted and status is enabled', async () => {
    const ev = await fetch(`${srv.url}/turbo/v8/artifacts/events?slug=team-a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth('dev-secret') },
      body: JSON.stringify([
        { sessionId: 's', source: 'REMOTE', event: 'HIT', hash: 'cccc000011112222', duration: 3 },
      ]),
    });
    assert.equal(ev.status, 200);
    const st = await fetch(`${srv.url}/turbo/v8/artifacts/status?slug=team-a`, {
      headers: auth('dev-secret'),
    });
    assert.equal(st.status, 200);
    assert.deepEqual(await st.json(), { status: 'enabled' });
  });

  describe('auth matrix', () => {
    const body = Buffer.from('auth matrix artifact');
    it('no token: 401 to read and to write', async () => {
      assert.equal((await get('0123abcdef456789')).status, 401);
      assert.equal((await put('eeee000000000001', body)).status, 401);
      assert.equal((await put('eeee000000000001', body, 'not-a-token')).status, 401);
      assert.equal(await stored('eeee000000000001'), false);
    });
    it('read token: reads, and a write is 403 with turbo’s {error:{code,message}} body', async () => {
      assert.equal((await get('0123abcdef456789', 'dev-secret')).status, 200);
      const res = await put('eeee000000000002', body, 'dev-secret');
      assert.equal(res.status, 403);
      const err = await res.json();
      assert.equal(typeof err.error.code, 'string');
      assert.equal(typeof err.error.message, 'string');
      assert.equal(await stored('eeee000000000002'), false);
    });
    it('write token: writes its team', async () => {
      assert.equal((await put('eeee000000000003', body, 'ci-secret')).status, 202);
      assert.ok(await stored('eeee000000000003'));
    });
    it('a token scoped to another team cannot write this one', async () => {
      assert.equal((await put('eeee000000000004', body, 'team-b-secret')).status, 403);
      assert.equal(await stored('eeee000000000004'), false);
      assert.equal((await put('eeee000000000004', body, 'team-b-secret', {}, 'slug=team-b')).status, 202);
      assert.equal(await stored('eeee000000000004'), false);
    });
    it('a token scoped to another team reads nothing of this one: GET, HEAD and the POST query are 403', async () => {
      const hash = 'eeee000000000005';
      assert.equal((await put(hash, body, 'ci-secret')).status, 202);
      for (const method of ['GET', 'HEAD']) {
        const res = await get(hash, 'team-b-secret', { method });
        assert.equal(res.status, 403, method);
        await res.arrayBuffer();
      }
      // The query would tell another team's sizes, durations and tags.
      const query = await fetch(`${srv.url}/turbo/v8/artifacts?slug=team-a`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth('team-b-secret') },
        body: JSON.stringify({ hashes: [hash] }),
      });
      assert.equal(query.status, 403);
      assert.ok(!(await query.text()).includes('"size"'));
    });
    it('no token: the POST query, events and status are 401', async () => {
      const post = (path: string, body: unknown, token?: string) =>
        fetch(`${srv.url}/turbo/v8/artifacts${path}?slug=team-a`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth(token) },
          body: JSON.stringify(body),
        });
      assert.equal((await post('', { hashes: ['eeee000000000003'] })).status, 401);
      assert.equal((await post('/events', [])).status, 401);
      assert.equal((await post('/events', [], 'team-b-secret')).status, 403);
      assert.equal((await fetch(`${srv.url}/turbo/v8/artifacts/status?slug=team-a`)).status, 401);
      assert.equal((await fetch(`${srv.url}/turbo/v8/artifacts/status`)).status, 401);
    });
  });

  describe('bad input stores nothing', () => {
    it('a hash that is not hex is 400', async () => {
      for (const bad of ['not-hex', 'zz', 'a.b', 'a'.repeat(129)]) {
        const res = await put(encodeURIComponent(bad), Buffer.from('x'), 'ci-secret');
        assert.equal(res.status, 400, bad);
      }
    });
    it('a missing or invalid team is 400', async () => {
      assert.equal((await put('ffff000000000001', Buffer.from('x'), 'ci-secret', {}, '')).status, 400);
      assert.equal(
        (await put('ffff000000000001', Buffer.from('x'), 'ci-secret', {}, 'slug=a%2Fb')).status,
        400,
      );
      assert.equal((await put('ffff000000000001', Buffer.from('x'), 'ci-secret', {}, 'slug=..')).status, 400);
    });
    it('a malformed x-artifact-duration is 400', async () => {
      const res = await put('ffff000000000002', Buffer.from('x'), 'ci-secret', {
        'x-artifact-duration': 'soon',
      });
      assert.equal(res.status, 400);
      assert.equal(await stored('ffff000000000002'), false);
    });
    it('a body over --max-blob-size is 413', async () => {
      const res = await put('ffff000000000003', randomBytes(MAX + 1), 'ci-secret');
      assert.equal(res.status, 413);
      assert.equal(await stored('ffff000000000003'), false);
    });
    it('a body over the limit without a Content-Length is 413', async () => {
      const chunks = [randomBytes(MAX / 2), randomBytes(MAX / 2), randomBytes(10)];
      const res = await fetch(url('ffff000000000004'), {
        method: 'PUT',
        headers: auth('ci-secret'),
        body: new ReadableStream({
          pull(c) {
            const next = chunks.shift();
            if (next) c.enqueue(next);
            else c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      assert.equal(res.status, 413);
      assert.equal(await stored('ffff000000000004'), false);
    });
    it('the POST query and events refuse bad JSON bodies with 400, an oversized one with 413', async () => {
      const post = (path: string, body: string) =>
        fetch(`${srv.url}/turbo/v8/artifacts${path}?slug=team-a`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth('dev-secret') },
          body,
        });
      for (const bad of ['{', '[]', '{"hashes":"x"}', '{"hashes":[1]}', '{"hashes":["a/../b"]}'])
        assert.equal((await post('', bad)).status, 400, bad);
      const many = JSON.stringify({ hashes: Array.from({ length: 10_001 }, (_, i) => i.toString(16)) });
      assert.equal((await post('', many)).status, 400, 'more hashes than a batch');
      for (const bad of ['{', '{}', '"x"']) assert.equal((await post('/events', bad)).status, 400, bad);
      const huge = JSON.stringify({ hashes: ['a'.repeat(5 * 1024 * 1024)] });
      assert.equal((await post('', huge)).status, 413);
    });
    it('a truncated body (connection cut before Content-Length bytes) stores nothing', async () => {
      await cutUpload(srv, '/turbo/v8/artifacts/ffff000000000005?slug=team-a', {
        tool: 'turbo',
        token: 'ci-secret',
      });
      assert.equal(await stored('ffff000000000005'), false);
    });
  });
});
