// npm write-through ([npm] allow-write-through): the auth matrix of a
// forwarded write (no token, read, a write token outside cache/npm/, a
// write token for it) and the bound on where it goes: a path that would
// leave the configured registry (dot segments, another scheme and host) is
// 400 and reaches nothing, so a write token cannot make hoard a proxy to
// other paths of the registry's host or to any other host.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { npmFeature } from '../../../src/features/npm/npm-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';

/** An HTTP server that records every request it gets and answers 201. */
async function recorder(): Promise<{ url: string; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '-'}`);
    req.resume();
    req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

const BODY = '{"name":"pkg"}';

/** A request with the path sent byte for byte (fetch would resolve dot segments first). */
function raw(base: string, method: string, path: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: {
          'content-type': 'application/json',
          // Explicit: Node sends a DELETE's body without a length or chunked framing.
          'content-length': String(BODY.length),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(BODY);
  });
}

describe('npm write-through: auth and where a write may go', () => {
  let dir: string;
  let srv: TestServer;
  let upstream: Awaited<ReturnType<typeof recorder>>;
  let elsewhere: Awaited<ReturnType<typeof recorder>>;
  let scoped: Awaited<ReturnType<typeof recorder>>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-npmwt-'));
    upstream = await recorder();
    elsewhere = await recorder();
    scoped = await recorder();
    const tokens = await writeTokensFile(dir, [
      { name: 'reader', token: 'read-secret', scopes: ['read'] },
      { name: 'publisher', token: 'npm-secret', scopes: ['read', 'write'], refs: ['cache/npm/'] },
      { name: 'turbo', token: 'turbo-secret', scopes: ['read', 'write'], refs: ['cache/turbo/'] },
    ]);
    srv = await startTestServer(
      { tokens },
      {
        features: [
          withSettings(apiFeature),
          withSettings(npmFeature, {
            upstream: `${upstream.url}/registry/`,
            scopeUpstreams: { '@team': `${scoped.url}/` },
            upstreamTokens: {
              [`${upstream.url}/registry/`]: 'upstream-secret',
              [`${scoped.url}/`]: 'scoped-secret',
            },
            allowWriteThrough: true,
          }),
        ],
      },
    );
  });
  after(async () => {
    await srv?.close();
    upstream?.server.close();
    elsewhere?.server.close();
    scoped?.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('no token 401, read 403, a write token outside cache/npm/ 403: nothing reaches the upstream', async () => {
    assert.equal(await raw(srv.url, 'PUT', '/npm/pkg'), 401);
    assert.equal(await raw(srv.url, 'PUT', '/npm/pkg', 'not-a-token'), 401);
    assert.equal(await raw(srv.url, 'PUT', '/npm/pkg', 'read-secret'), 403);
    assert.equal(await raw(srv.url, 'PUT', '/npm/pkg', 'turbo-secret'), 403);
    assert.deepEqual(upstream.seen, []);
  });

  it('a write token for cache/npm/ publishes through, with the upstream token, not its own', async () => {
    assert.equal(await raw(srv.url, 'PUT', '/npm/pkg', 'npm-secret'), 201);
    assert.deepEqual(upstream.seen.splice(0), ['PUT /registry/pkg Bearer upstream-secret']);
  });

  it("every write form goes to its package's upstream; the read before a write (?write=true) and dist-tag reads are passed through", async () => {
    for (const [method, path] of [
      ['PUT', '/npm/@team%2fpkg'],
      ['PUT', '/npm/-/package/@team%2fpkg/dist-tags/beta'],
      ['DELETE', '/npm/@team%2fpkg/-rev/3-abc'],
      ['GET', '/npm/@team%2fpkg?write=true'],
      ['GET', '/npm/-/package/@team%2fpkg/dist-tags'],
    ]) {
      const st = await raw(srv.url, method, path, 'npm-secret');
      assert.ok(st < 300, `${method} ${path} ${st}`);
    }
    assert.deepEqual(upstream.seen, [], 'nothing for @team went to the default upstream');
    assert.deepEqual(scoped.seen.splice(0), [
      'PUT /@team%2fpkg Bearer scoped-secret',
      'PUT /-/package/@team%2fpkg/dist-tags/beta Bearer scoped-secret',
      'DELETE /@team%2fpkg/-rev/3-abc Bearer scoped-secret',
      'GET /@team%2fpkg?write=true Bearer scoped-secret',
      'GET /-/package/@team%2fpkg/dist-tags Bearer scoped-secret',
    ]);
    // The read before a write needs the write scope; dist-tags are a read.
    assert.equal(await raw(srv.url, 'GET', '/npm/@team%2fpkg?write=true', 'read-secret'), 403);
    assert.equal(await raw(srv.url, 'GET', '/npm/-/package/@team%2fpkg/dist-tags', 'read-secret'), 201);
    assert.equal(await raw(srv.url, 'GET', '/npm/-/package/%2e%2e/dist-tags', 'npm-secret'), 400);
    assert.equal(scoped.seen.length, 1);
  });

  it('a path that leaves the registry is 400 and reaches no server', async () => {
    const host = new URL(elsewhere.url).host;
    for (const path of [
      '/npm/%2e%2e/admin',
      '/npm/%2E%2E/%2e%2e/admin',
      '/npm/pkg/%2e%2e/%2e%2e/admin',
      // The registry is http: here, so another scheme is what makes the path an absolute URL.
      `/npm/https:${host}/x`,
      `/npm/https:%2F%2F${host}/x`,
    ]) {
      const status = await raw(srv.url, 'PUT', path, 'npm-secret');
      assert.equal(status, 400, path);
    }
    assert.deepEqual(upstream.seen, [], 'nothing reached the registry host outside its path');
    assert.deepEqual(elsewhere.seen, [], 'nothing reached another host');
  });
});
