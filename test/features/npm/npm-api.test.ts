// hoard's npm registry cache at the HTTP level, against a real upstream
// (verdaccio, pinned; fixtures published with `npm publish`) behind a
// counting, tampering proxy: tarballs whose bytes do not match their
// integrity are refused and not stored; a document naming a changed
// integrity for a known version is served with the original; scoped names in
// both spellings, the abbreviated form, version documents; the auth matrix
// (no token, read, write, other-scope token, a bad one), writes answered
// 405, and bad input.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { npmFeature } from '../../../src/features/npm/npm-feature.ts';
import { apiFeature } from '../../../src/server/api-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { writeTokensFile } from '../../support/tokens.ts';
import {
  type CountingProxy,
  countingProxy,
  installRegistryClients,
  publish,
  startVerdaccio,
  type Verdaccio,
} from './registry-fixture.ts';

const READ = 'npm-read-secret';
const WRITE = 'npm-write-secret';
const OTHER = 'npm-other-scope-secret';
const ABBREV = 'application/vnd.npm.install-v1+json';

describe('npm registry cache (HTTP) against verdaccio', () => {
  let dir: string;
  let verdaccio: Verdaccio;
  let proxy: CountingProxy;
  let srv: TestServer;
  const get = (path: string, token = READ, headers: Record<string, string> = {}) =>
    fetch(`${srv.url}${path}`, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });
  /** A request with exactly these headers (fetch would add Accept-Encoding and decode): status, headers, raw body. */
  const raw = (path: string, headers: Record<string, string>) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const req = http.get(
        `${srv.url}${path}`,
        { headers: { authorization: `Bearer ${READ}`, ...headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
    });
  const metric = async (name: string) => {
    const text = await (await get('/metrics')).text();
    const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  before(async () => {
    const clients = await installRegistryClients();
    dir = await mkdtemp(join(tmpdir(), 'hoard-npm-api-'));
    verdaccio = await startVerdaccio(clients.verdaccio, join(dir, 'verdaccio'));
    const pkg = (name: string) => ({
      // fx-etag's document is big enough to be worth compressing.
      'package.json': {
        name,
        version: '1.0.0',
        main: 'index.js',
        ...(name === 'fx-etag' ? { description: 'a document to compress '.repeat(80) } : {}),
      },
      'index.js': `module.exports = ${JSON.stringify(name)};\n`,
    });
    for (const name of ['fx-tamper', 'fx-pin', '@fx/scoped', 'fx-etag'])
      await publish(verdaccio, join(dir, 'pub', name), pkg(name));
    proxy = await countingProxy(verdaccio.url);
    const tokens = await writeTokensFile(dir, [
      { name: 'reader', token: READ, scopes: ['read'] },
      { name: 'writer', token: WRITE, scopes: ['read', 'write'] },
      { name: 'turbo-only', token: OTHER, scopes: ['read', 'write'], refs: ['cache/turbo'] },
    ]);
    srv = await startTestServer(
      { tokens },
      {
        features: [
          withSettings(apiFeature),
          withSettings(npmFeature, { upstream: `${proxy.url}/`, maxStalenessMs: 0 }),
        ],
      },
    );
  });
  after(async () => {
    await srv?.close();
    await proxy?.close();
    await verdaccio?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves scoped documents in both spellings, the abbreviated form and version documents, tarballs pointing at hoard', async () => {
    const full = await get('/npm/@fx%2fscoped');
    assert.equal(full.status, 200);
    const doc = (await full.json()) as { versions: Record<string, { dist: { tarball: string } }> };
    assert.equal(doc.versions['1.0.0'].dist.tarball, `${srv.url}/npm/@fx/scoped/-/scoped-1.0.0.tgz`);
    const slash = await get('/npm/@fx/scoped', READ, { accept: ABBREV });
    assert.equal(slash.status, 200);
    assert.match(slash.headers.get('content-type') ?? '', /vnd\.npm\.install-v1\+json/);
    const abbrev = (await slash.json()) as {
      modified?: string;
      versions: Record<string, { dist: { tarball: string } }>;
    };
    assert.equal(abbrev.versions['1.0.0'].dist.tarball, `${srv.url}/npm/@fx/scoped/-/scoped-1.0.0.tgz`);
    const version = await get('/npm/@fx/scoped/latest');
    assert.equal(version.status, 200);
    assert.equal(((await version.json()) as { version: string }).version, '1.0.0');
    assert.equal((await get('/npm/@fx/scoped/9.9.9')).status, 404);
    const tgz = await get('/npm/@fx/scoped/-/scoped-1.0.0.tgz');
    assert.equal(tgz.status, 200);
    assert.equal(tgz.headers.get('x-hoard-cache'), 'miss');
    const bytes = Buffer.from(await tgz.arrayBuffer());
    const again = await get('/npm/@fx/scoped/-/scoped-1.0.0.tgz');
    assert.equal(again.headers.get('x-hoard-cache'), 'hit');
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), bytes);
    assert.equal(proxy.counts.get('/@fx/scoped/-/scoped-1.0.0.tgz'), 1);
    assert.equal((await get('/npm/no-such-package-here')).status, 404);
  });

  it('refuses a tampered tarball (bytes changed, integrity not), stores nothing, and serves the real one after', async () => {
    const failures = await metric('hoard_npm_integrity_failures_total');
    proxy.tamper = (path, body) => {
      if (!path.endsWith('fx-tamper-1.0.0.tgz')) return undefined;
      const b = Buffer.from(body);
      b[b.length - 10] ^= 0xff;
      return b;
    };
    const bad = await get('/npm/fx-tamper/-/fx-tamper-1.0.0.tgz');
    await assert.rejects(bad.arrayBuffer(), 'the response is cut, never complete');
    assert.equal(await metric('hoard_npm_integrity_failures_total'), failures + 1);
    proxy.tamper = undefined;
    const good = await get('/npm/fx-tamper/-/fx-tamper-1.0.0.tgz');
    assert.equal(good.status, 200);
    assert.equal(good.headers.get('x-hoard-cache'), 'miss', 'the tampered bytes were not stored');
    const doc = (await (await get('/npm/fx-tamper')).json()) as {
      versions: Record<string, { dist: { integrity: string } }>;
    };
    const sri = `sha512-${createHash('sha512')
      .update(Buffer.from(await good.arrayBuffer()))
      .digest('base64')}`;
    assert.equal(doc.versions['1.0.0'].dist.integrity, sri);
  });

  it('serves the original integrity when the upstream document changes it for a known version', async () => {
    const first = (await (await get('/npm/fx-pin')).json()) as {
      versions: Record<string, { dist: { integrity: string } }>;
    };
    const original = first.versions['1.0.0'].dist.integrity;
    const changes = await metric('hoard_npm_integrity_changes_total');
    const forged = `sha512-${createHash('sha512').update('other bytes').digest('base64')}`;
    proxy.tamper = (path, body) => {
      if (path !== '/fx-pin') return undefined;
      const d = JSON.parse(body.toString('utf8'));
      d.versions['1.0.0'].dist.integrity = forged;
      return Buffer.from(JSON.stringify(d));
    };
    try {
      const served = (await (await get('/npm/fx-pin')).json()) as {
        versions: Record<string, { dist: { integrity: string } }>;
      };
      assert.equal(served.versions['1.0.0'].dist.integrity, original);
      assert.equal(await metric('hoard_npm_integrity_changes_total'), changes + 1);
    } finally {
      proxy.tamper = undefined;
    }
  });

  it('documents carry an ETag and answer a matching If-None-Match with 304; a new upstream document gets new bytes and a new tag', async () => {
    const first = await raw('/npm/fx-etag', {});
    assert.equal(first.status, 200);
    const etag = first.headers.etag ?? '';
    assert.match(etag, /^W\/"[0-9a-f]{40}"$/);
    assert.match(String(first.headers.vary), /accept-encoding/);
    const same = await raw('/npm/fx-etag', { 'if-none-match': etag });
    assert.equal(same.status, 304);
    assert.equal(same.body.byteLength, 0);
    assert.equal(same.headers.etag, etag);
    assert.equal((await raw('/npm/fx-etag', { 'if-none-match': '"something-else"' })).status, 200);
    // The abbreviated form is other bytes: its own tag.
    const abbrev = await raw('/npm/fx-etag', { accept: ABBREV });
    assert.notEqual(abbrev.headers.etag, etag);
    assert.equal((await raw('/npm/fx-etag', { accept: ABBREV, 'if-none-match': etag })).status, 200);
    // A version published upstream: the document (revalidated: freshness 0 here) changes, so do its bytes.
    await publish(verdaccio, join(dir, 'pub', 'fx-etag-2'), {
      'package.json': { name: 'fx-etag', version: '1.0.1', main: 'index.js' },
      'index.js': 'module.exports = 2;\n',
    });
    const next = await raw('/npm/fx-etag', { 'if-none-match': etag });
    assert.equal(next.status, 200, 'the old tag no longer matches');
    assert.notEqual(next.headers.etag, etag);
    const doc = JSON.parse(next.body.toString('utf8')) as { versions: Record<string, unknown> };
    assert.deepEqual(Object.keys(doc.versions).sort(), ['1.0.0', '1.0.1']);
  });

  it('document links follow the base each request reached (no public URL set): bodies are kept per base', async () => {
    const a = await raw('/npm/fx-etag', {});
    const b = await raw('/npm/fx-etag', { host: 'mirror.example:8080' });
    const tarball = (r: { body: Buffer }) =>
      (JSON.parse(r.body.toString('utf8')) as { versions: Record<string, { dist: { tarball: string } }> })
        .versions['1.0.0'].dist.tarball;
    assert.equal(tarball(a), `${srv.url}/npm/fx-etag/-/fx-etag-1.0.0.tgz`);
    assert.equal(tarball(b), 'http://mirror.example:8080/npm/fx-etag/-/fx-etag-1.0.0.tgz');
    assert.equal(tarball(await raw('/npm/fx-etag', {})), tarball(a), 'and the first base again');
    assert.notEqual(a.headers.etag, b.headers.etag);
  });

  it('sends documents gzip-coded to clients that take gzip (the same JSON), as they are to others', async () => {
    const plain = await raw('/npm/fx-etag', { 'accept-encoding': 'identity' });
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.ok(plain.body.byteLength >= 1024, 'a full document big enough to compress');
    const zipped = await raw('/npm/fx-etag', { 'accept-encoding': 'gzip, deflate' });
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.equal(Number(zipped.headers['content-length']), zipped.body.byteLength);
    assert.ok(zipped.body.byteLength < plain.body.byteLength);
    assert.deepEqual(gunzipSync(zipped.body), plain.body);
    assert.equal(zipped.headers.etag, plain.headers.etag);
    const refused = await raw('/npm/fx-etag', { 'accept-encoding': 'gzip;q=0, *' });
    assert.equal(refused.headers['content-encoding'], undefined);
    const head = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http
        .request(
          `${srv.url}/npm/fx-etag`,
          {
            method: 'HEAD',
            headers: { authorization: `Bearer ${READ}`, 'accept-encoding': 'gzip' },
          },
          resolve,
        )
        .on('error', reject)
        .end(),
    );
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-encoding'], 'gzip');
    assert.equal(Number(head.headers['content-length']), zipped.body.byteLength);
  });

  it('stored tarballs carry their SHA-256 as a strong ETag: a matching If-None-Match is a 304, a Range is honoured', async () => {
    const path = '/npm/fx-etag/-/fx-etag-1.0.0.tgz';
    await raw(path, {}); // fills it
    const hit = await raw(path, {});
    assert.equal(hit.headers['x-hoard-cache'], 'hit');
    const sha = createHash('sha256').update(hit.body).digest('hex');
    assert.equal(hit.headers.etag, `"${sha}"`);
    const again = await raw(path, { 'if-none-match': `"${sha}"` });
    assert.equal(again.status, 304);
    assert.equal(again.body.byteLength, 0);
    const part = await raw(path, { range: 'bytes=0-9' });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, hit.body.subarray(0, 10));
  });

  it('auth: no token 401, a bad token 401, read, write and other-scope tokens read', async () => {
    assert.equal((await get('/npm/fx-pin', '')).status, 401);
    assert.equal((await get('/npm/fx-pin', 'not-a-token')).status, 401);
    for (const t of [READ, WRITE, OTHER]) assert.equal((await get('/npm/fx-pin', t)).status, 200);
    assert.equal((await get('/npm/fx-pin/-/fx-pin-1.0.0.tgz', '')).status, 401);
    // A tag is no pass: a conditional request without a token is refused before any 304.
    const tagged = await get('/npm/fx-pin');
    const etag = tagged.headers.get('etag') ?? '';
    assert.equal((await get('/npm/fx-pin', '', { 'if-none-match': etag })).status, 401);
    assert.equal((await get('/npm/fx-pin', 'not-a-token', { 'if-none-match': etag })).status, 401);
    for (const t of [READ, WRITE, OTHER])
      assert.equal((await get('/npm/fx-pin', t, { 'if-none-match': etag })).status, 304);
  });

  it('writes answer 405 (no forwarding by default); audit 501; other /-/ endpoints 404; ping answers', async () => {
    for (const [method, path] of [
      ['PUT', '/npm/fx-pin'],
      ['DELETE', '/npm/fx-pin/-rev/1-abc'],
      ['PUT', '/npm/-/package/fx-pin/dist-tags/next'],
    ] as const) {
      const res = await fetch(`${srv.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json' },
        body: method === 'PUT' ? '{}' : undefined,
      });
      assert.equal(res.status, 405, `${method} ${path}`);
    }
    const noToken = await fetch(`${srv.url}/npm/fx-pin`, { method: 'PUT', body: '{}' });
    assert.equal(noToken.status, 401);
    const audit = await fetch(`${srv.url}/npm/-/npm/v1/security/advisories/bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${READ}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(audit.status, 501);
    assert.equal((await get('/npm/-/whoami')).status, 404);
    assert.equal((await get('/npm/-/ping')).status, 200);
  });

  it('bad input: names, versions and tarball files that are not npm names are 400s', async () => {
    for (const path of [
      '/npm/..%2f..%2fetc',
      '/npm/@scope',
      '/npm/bad%00name',
      '/npm/UPPER%20case',
      '/npm/fx-pin/-/not-a-tarball.txt',
      '/npm/fx-pin/a/b/c',
      '/npm/%E0%A4%A',
      `/npm/${'a'.repeat(300)}`,
    ]) {
      const res = await get(path);
      assert.equal(res.status, 400, path);
    }
    assert.equal((await get('/npm/fx-pin/-/fx-pin-7.7.7.tgz')).status, 404);
  });
});
