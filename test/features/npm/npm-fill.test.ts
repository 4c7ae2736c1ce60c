// The tarball fill's streaming and failure rules, with an upstream under the
// test's control (a loopback HTTP server that sends a tarball in two halves
// on the test's signal): concurrent requests cost one upstream request and
// every waiter gets the first half before the upstream has sent the rest;
// an upstream that dies mid-body fails every waiter, stores nothing, and the
// next request starts a fresh upstream request.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { npmFeature } from '../../../src/features/npm/npm-feature.ts';
import { withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { waitUntil } from '../../support/wait.ts';

describe('npm tarball fills (controlled upstream)', () => {
  const tarball = randomBytes(256 * 1024);
  const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
  let upstream: http.Server;
  let base: string;
  let tarballRequests = 0;
  /** The Authorization each upstream request carried. */
  const authorizations: (string | undefined)[] = [];
  /** How the next tarball response ends: sent whole, or cut after the first half. */
  let ending: 'whole' | 'cut' = 'whole';
  let release: () => void = () => {};
  let hangDocuments = false;
  let srv: TestServer;

  before(async () => {
    upstream = http.createServer((req, res) => {
      authorizations.push(req.headers.authorization);
      if (req.url === '/fx-slow' && hangDocuments) return; // never answers: a slow upstream
      if (req.url === '/fx-odd') {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            name: 'fx-odd',
            versions: { '1.0.0': { dist: { tarball: `${base}/download/fx-odd/1.0.0/b1e2`, integrity } } },
          }),
        );
        return;
      }
      if (req.url === '/download/fx-odd/1.0.0/b1e2') {
        res.writeHead(200, { 'content-length': tarball.byteLength }).end(tarball);
        return;
      }
      if (req.url === '/fx-slow') {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            name: 'fx-slow',
            'dist-tags': { latest: '1.0.0' },
            versions: {
              '1.0.0': {
                name: 'fx-slow',
                version: '1.0.0',
                dist: { tarball: `${base}/fx-slow/-/fx-slow-1.0.0.tgz`, integrity },
              },
            },
          }),
        );
        return;
      }
      tarballRequests++;
      res.writeHead(200, {
        'content-length': tarball.byteLength,
        'content-type': 'application/octet-stream',
      });
      res.write(tarball.subarray(0, tarball.byteLength / 2));
      const mode = ending;
      release = () => {
        if (mode === 'cut') res.destroy();
        else res.end(tarball.subarray(tarball.byteLength / 2));
      };
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    srv = await startTestServer({}, { features: [withSettings(npmFeature, { upstream: `${base}/` })] });
  });
  after(async () => {
    await srv?.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  /** Starts a GET and collects its bytes as they come. */
  const start = () => {
    const got: Buffer[] = [];
    let bytes = 0;
    const done = fetch(`${srv.url}/npm/fx-slow/-/fx-slow-1.0.0.tgz`).then(async (res) => {
      assert.equal(res.status, 200);
      for await (const c of res.body as AsyncIterable<Uint8Array>) {
        got.push(Buffer.from(c));
        bytes += c.byteLength;
      }
      return Buffer.concat(got);
    });
    done.catch(() => {});
    return { done, bytes: () => bytes };
  };

  it('an upstream that dies mid-body fails every waiter, stores nothing; the next request retries', async () => {
    ending = 'cut';
    const waiters = [start(), start(), start()];
    await waitUntil(() => waiters.every((w) => w.bytes() > 0), 'every waiter to get the first half');
    assert.equal(tarballRequests, 1);
    release();
    for (const w of waiters) await assert.rejects(w.done);
    ending = 'whole';
    const next = start();
    await waitUntil(() => tarballRequests === 2, 'a fresh upstream request');
    release();
    assert.deepEqual(await next.done, tarball);
  });

  it("sends the upstream token configured server-side, never the client's own", async () => {
    const fresh = await startTestServer(
      {},
      {
        features: [
          withSettings(npmFeature, {
            upstream: `${base}/`,
            upstreamTokens: { [`${base}/`]: 'upstream-secret' },
          }),
        ],
      },
    );
    try {
      authorizations.length = 0;
      const doc = await fetch(`${fresh.url}/npm/fx-slow`, {
        headers: { authorization: 'Bearer client-token' },
      });
      assert.equal(doc.status, 200);
      const text = await doc.text();
      assert.ok(!text.includes('upstream-secret'));
      assert.deepEqual(authorizations, ['Bearer upstream-secret']);
    } finally {
      await fresh.close();
    }
  });

  it('a document revalidation slower than fetch-timeout serves the cached document stale, flagged', async () => {
    const fresh = await startTestServer(
      {},
      {
        features: [
          withSettings(npmFeature, { upstream: `${base}/`, maxStalenessMs: 0, fetchTimeoutMs: 300 }),
        ],
      },
    );
    try {
      assert.equal((await fetch(`${fresh.url}/npm/fx-slow`)).status, 200);
      hangDocuments = true;
      const stale = await fetch(`${fresh.url}/npm/fx-slow`);
      assert.equal(stale.status, 200);
      assert.match(stale.headers.get('warning') ?? '', /^110 /);
      assert.ok(stale.headers.get('x-hoard-stale'));
      const doc = (await stale.json()) as { versions: Record<string, { dist: { tarball: string } }> };
      assert.equal(doc.versions['1.0.0'].dist.tarball, `${fresh.url}/npm/fx-slow/-/fx-slow-1.0.0.tgz`);
      assert.match(await (await fetch(`${fresh.url}/metrics`)).text(), /hoard_npm_stale_serves_total 1/);
    } finally {
      hangDocuments = false;
      await fresh.close();
    }
  });

  it('a tarball URL that is not <name>-<version>.tgz is served as that; the same bytes through another URL are stored once', async () => {
    const doc = (await (await fetch(`${srv.url}/npm/fx-odd`)).json()) as {
      versions: Record<string, { dist: { tarball: string } }>;
    };
    assert.equal(doc.versions['1.0.0'].dist.tarball, `${srv.url}/npm/fx-odd/-/fx-odd-1.0.0.tgz`);
    const version = (await (await fetch(`${srv.url}/npm/fx-odd/1.0.0`)).json()) as {
      dist: { tarball: string };
    };
    assert.equal(version.dist.tarball, `${srv.url}/npm/fx-odd/-/fx-odd-1.0.0.tgz`);
    const res = await fetch(`${srv.url}/npm/fx-odd/-/fx-odd-1.0.0.tgz`);
    // The same bytes as fx-slow's (stored by the first test), reached through another URL: stored once.
    assert.equal(res.headers.get('x-hoard-cache'), 'hit');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), tarball);
  });

  it('concurrent requests share one upstream request and stream the bytes as they arrive', async () => {
    // A fresh server: the first test's one stored the tarball.
    const fresh = await startTestServer(
      {},
      { features: [withSettings(npmFeature, { upstream: `${base}/` })] },
    );
    try {
      const before = tarballRequests;
      const get = () => fetch(`${fresh.url}/npm/fx-slow/-/fx-slow-1.0.0.tgz`);
      const responses = await Promise.all([get(), get(), get(), get(), get()]);
      const readers = responses.map((r) => {
        let bytes = 0;
        const chunks: Buffer[] = [];
        const done = (async () => {
          for await (const c of r.body as AsyncIterable<Uint8Array>) {
            chunks.push(Buffer.from(c));
            bytes += c.byteLength;
          }
          return Buffer.concat(chunks);
        })();
        return { done, bytes: () => bytes };
      });
      await waitUntil(
        () => readers.every((r) => r.bytes() >= tarball.byteLength / 2 - 1),
        'the first half at every waiter',
      );
      assert.equal(tarballRequests - before, 1, 'one upstream request');
      release();
      for (const r of readers) assert.deepEqual(await r.done, tarball);
      const hit = await get();
      assert.equal(hit.headers.get('x-hoard-cache'), 'hit');
      assert.deepEqual(Buffer.from(await hit.arrayBuffer()), tarball);
      assert.equal(tarballRequests - before, 1);
    } finally {
      await fresh.close();
    }
  });
});
