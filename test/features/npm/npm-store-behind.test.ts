// Documents and tarballs are answered before they are stored. With the
// store held back: a fetched document is returned, served again from memory
// (no second upstream request) and pinned against, and lands once the store
// runs, stores of one document one after another (an older never lands over
// a newer); a verified tarball reaches its client whole, a request after it
// waits for the store instead of asking the upstream again, and a tarball
// that fails its integrity is never handed to the store.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { NpmDocuments } from '../../../src/features/npm/npm-documents.ts';
import { npmMetrics } from '../../../src/features/npm/npm-metrics.ts';
import { expectedOf, NpmTarballs } from '../../../src/features/npm/npm-tarballs.ts';
import { NpmUpstreams } from '../../../src/features/npm/npm-upstreams.ts';
import { CacheEntries, type PutOptions, type PutResult } from '../../../src/server/cache-entries.ts';
import { defineFeature, type FeatureContext, withSettings } from '../../../src/server/feature.ts';
import { startTestServer, type TestServer } from '../../server/helpers.ts';
import { waitUntil } from '../../support/wait.ts';

/** Cache entries whose puts wait until the test lets each one go. */
class HeldEntries extends CacheEntries {
  readonly held: { ref: string; go: () => void }[] = [];
  /** The next put, once let go, fails (a full disk). */
  failNext = false;
  override async put(name: string, body: Readable, opts: PutOptions): Promise<PutResult> {
    await new Promise<void>((go) => this.held.push({ ref: name, go }));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('no space left (test)');
    }
    return super.put(name, body, opts);
  }
}

describe('npm documents and tarballs: answered before stored', () => {
  let srv: TestServer;
  let ctx!: FeatureContext;
  let upstream: http.Server;
  let url: string;
  let requests = 0;
  /** What the upstream answers: version → integrity. */
  let versions: Record<string, string> = {};
  let tarballRequests = 0;
  const tarball = randomBytes(100 * 1024);
  const sri = (text: string) => `sha512-${Buffer.from(text).toString('base64')}`;

  before(async () => {
    upstream = http.createServer((req, res) => {
      if (req.url?.endsWith('.tgz')) {
        tarballRequests++;
        res.writeHead(200, { 'content-length': tarball.byteLength }).end(tarball);
        return;
      }
      requests++;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          name: 'fx',
          versions: Object.fromEntries(
            Object.entries(versions).map(([v, integrity]) => [
              v,
              { dist: { tarball: `${url}/fx/-/fx-${v}.tgz`, integrity } },
            ]),
          ),
        }),
      );
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const probe = defineFeature({
      name: 'probe',
      create: (c) => {
        ctx = c;
        return {};
      },
    });
    srv = await startTestServer({}, { features: [withSettings(probe)] });
  });
  after(async () => {
    await srv?.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  const documents = (entries: CacheEntries, maxPendingStoreBytes?: number) =>
    new NpmDocuments({
      maxPendingStoreBytes,
      entries,
      upstreams: new NpmUpstreams(`${url}/`, {}, {}),
      metrics: npmMetrics(ctx.metrics.registry),
      log: ctx.log,
      maxStalenessMs: 60_000,
      fetchTimeoutMs: 10_000,
    });

  it('a fetched document is answered, served from memory and pinned against before its store lands; stores land in order', async () => {
    const entries = new HeldEntries(ctx, 'npm-held');
    const docs = documents(entries);
    const ref = docs.refName('fx', 'full');
    const real = sri('bytes of 1.0.0');
    versions = { '1.0.0': real };
    const first = await docs.get('fx', 'full');
    assert.deepEqual(Object.keys(first.doc.versions ?? {}), ['1.0.0']);
    assert.equal(requests, 1);
    assert.equal(await entries.get(ref), undefined, 'not stored yet');
    const again = await docs.get('fx', 'full');
    assert.equal(again.doc, first.doc, 'served from memory');
    assert.equal(again.digest, first.digest);
    assert.equal(requests, 1, 'no second upstream request');
    // A revalidation that meets a changed integrity pins against the unstored document.
    versions = { '1.0.0': sri('forged'), '1.0.1': sri('bytes of 1.0.1') };
    const refreshed = await docs.get('fx', 'full', true);
    assert.equal(requests, 2);
    assert.equal(refreshed.doc.versions?.['1.0.0']?.dist?.integrity, real, 'the original integrity');
    assert.notEqual(refreshed.digest, first.digest);
    assert.equal(entries.held.length, 1, 'the second store waits for the first');
    entries.held[0].go();
    await waitUntil(() => entries.held.length === 2, 'the second store to start');
    entries.held[1].go();
    await docs.flushed();
    const stored = await entries.get(ref);
    assert.ok(stored, 'stored once let go');
    assert.equal(stored.digest, refreshed.digest, 'the newer landed last');
    assert.ok(Number(stored.meta.fetchedAt) > 0);
    // Another instance, reading the store alone, gets the pinned newer document without asking upstream.
    const read = await documents(entries).get('fx', 'full');
    assert.equal(requests, 2);
    assert.deepEqual(Object.keys(read.doc.versions ?? {}).sort(), ['1.0.0', '1.0.1']);
    assert.equal(read.doc.versions?.['1.0.0']?.dist?.integrity, real);
  });

  it('a store that fails costs a later upstream request, nothing else', async () => {
    const entries = new HeldEntries(ctx, 'npm-held-fail');
    const docs = documents(entries);
    versions = { '2.0.0': sri('two') };
    requests = 0;
    await docs.get('fx', 'full');
    // The store's body is cut: put fails, nothing is stored, the document is forgotten.
    const put = entries.held[0];
    entries.failNext = true;
    put.go();
    await docs.flushed();
    assert.equal(await entries.get(docs.refName('fx', 'full')), undefined);
    const next = docs.get('fx', 'full');
    await waitUntil(() => entries.held.length === 2, 'the next store');
    assert.equal(requests, 2, 'asked the upstream again');
    assert.deepEqual(Object.keys((await next).doc.versions ?? {}), ['2.0.0']);
    entries.held[1].go();
    await docs.flushed();
    assert.ok(await entries.get(docs.refName('fx', 'full')));
  });

  it('a verified tarball reaches its client before it is stored; a request meanwhile waits for the store, not the upstream', async () => {
    const spool = await mkdtemp(join(tmpdir(), 'hoard-npm-spool-'));
    try {
      const entries = new HeldEntries(ctx, 'npm-held-tgz');
      const tarballs = new NpmTarballs({
        entries,
        upstreams: new NpmUpstreams(`${url}/`, {}, {}),
        metrics: npmMetrics(ctx.metrics.registry),
        log: ctx.log,
        spoolDir: spool,
        maxBytes: 1 << 30,
      });
      const expected = expectedOf({
        integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
      });
      assert.ok(expected);
      const at = new URL(`${url}/fx/-/fx-1.0.0.tgz`);
      tarballRequests = 0;
      const first = await tarballs.open('fx', expected, at);
      assert.equal(first.hit, false);
      assert.ok(!first.hit);
      const chunks: Buffer[] = [];
      for await (const c of first.body) chunks.push(c as Buffer);
      assert.deepEqual(Buffer.concat(chunks), tarball, 'whole, while the store is held');
      await waitUntil(() => entries.held.length === 1, 'the store to start');
      const ref = entries.refName('tarball', `sha512-${expected.hex}`);
      assert.equal(await entries.get(ref), undefined, 'not stored yet');
      let settled = false;
      const second = tarballs.open('fx', expected, at).finally(() => {
        settled = true;
      });
      await new Promise((r) => setImmediate(r));
      assert.equal(settled, false, 'waits for the store');
      entries.held[0].go();
      const got = await second;
      assert.equal(got.hit, true, 'from the store');
      if (got.hit) got.opened.handle.close();
      assert.equal(tarballRequests, 1, 'the upstream was asked once');
      await tarballs.flushed();
      assert.deepEqual(await readdir(spool), [], 'the spool file is gone once stored');

      // Bytes that do not match: the client's response is cut, nothing reaches the store.
      const wrong = expectedOf({
        integrity: `sha512-${createHash('sha512').update('other').digest('base64')}`,
      });
      assert.ok(wrong);
      const bad = await tarballs.open('fx', wrong, at);
      assert.ok(!bad.hit);
      await assert.rejects(async () => {
        for await (const _ of bad.body);
      });
      await tarballs.flushed();
      assert.equal(entries.held.length, 1, 'never handed to the store');
      assert.deepEqual(await readdir(spool), []);
    } finally {
      await rm(spool, { recursive: true, force: true });
    }
  });
  it('past the bound of documents waiting for their stores, an answer waits for its own store', async () => {
    const entries = new HeldEntries(ctx, 'npm-held-bound');
    const docs = documents(entries, 1);
    versions = { '2.0.0': sri('bytes of 2.0.0') };
    let answered = false;
    const got = docs.get('fx', 'full').then((r) => {
      answered = true;
      return r;
    });
    await waitUntil(() => entries.held.length === 1, 'the store to start');
    // Let the event loop run: the answer must still be waiting for the held store.
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false, 'held until its store lands');
    entries.held[0].go();
    const r = await got;
    assert.deepEqual(Object.keys(r.doc.versions ?? {}), ['2.0.0']);
    assert.ok(await entries.get(docs.refName('fx', 'full')), 'stored before the answer');
  });
});
