// The batched-upload client (HttpBlobStore.uploadBatch) against a fake
// server that records every request: blobs go in requests within the
// digest and byte limits, copied at add() (the caller may reuse its
// buffer), duplicates once, a blob too big for a batch alone by PUT; a
// server without the endpoint (404) gets single PUTs and is not asked again;
// an answer that does not account for the blobs sent, or an error status,
// fails flush().

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { readUploadFrames, UPLOAD_CONTENT_TYPE } from '../../src/core/blob-batch-frame.ts';
import { type Digest, digestFromHex, sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { HttpBlobStore } from '../../src/remote/http-blob-store.ts';
import { HttpBlobUploadBatch } from '../../src/remote/http-blob-upload.ts';
import { HoardHttpClient } from '../../src/remote/http-client.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data) };
};

describe('HttpBlobUploadBatch against a recording server', () => {
  const stored = new Map<Digest, Buffer>();
  /** Per batched request: the digests it carried. */
  const batches: Digest[][] = [];
  let puts = 0;
  let mode: 'honest' | 'no-endpoint' | 'lying' | 'too-large' = 'honest';
  let server: Server;
  let http: HoardHttpClient;
  let store: HttpBlobStore;

  before(async () => {
    server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
      const json = (status: number, v: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      if (req.method === 'POST' && req.url === '/v1/blobs/batch-upload') {
        if (mode === 'no-endpoint') {
          req.resume();
          return json(404, { error: { code: 'HOARD_ENOT_FOUND', message: 'no route' } });
        }
        if (mode === 'too-large') {
          req.resume();
          return json(413, { error: { code: 'HOARD_ETOO_LARGE', message: 'too large' } });
        }
        assert.equal(req.headers['content-type'], UPLOAD_CONTENT_TYPE);
        const got: { digest: Digest; size: number; created: boolean }[] = [];
        await readUploadFrames(req, { recordBytes: 1 << 20, totalBytes: 1 << 26, records: 1000 }, (d, b) => {
          got.push({ digest: d, size: b.length, created: !stored.has(d) });
          stored.set(d, b);
        });
        batches.push(got.map((g) => g.digest));
        return json(200, { blobs: mode === 'lying' ? got.slice(1) : got });
      }
      const m = /^\/v1\/blobs\/sha256\/([0-9a-f]{64})$/.exec(req.url ?? '');
      if (req.method === 'PUT' && m) {
        const parts: Buffer[] = [];
        for await (const c of req) parts.push(c as Buffer);
        const d = digestFromHex(m[1]);
        assert.equal(sha256(Buffer.concat(parts)), d);
        stored.set(d, Buffer.concat(parts));
        puts++;
        return json(201, { digest: d, size: Buffer.concat(parts).length, created: true });
      }
      json(500, { error: { code: 'HOARD_EINTERNAL', message: `unexpected ${req.method} ${req.url}` } });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    http = new HoardHttpClient(new URL(`http://127.0.0.1:${port}/`));
    store = new HttpBlobStore(http);
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    stored.clear();
    batches.length = 0;
    puts = 0;
    mode = 'honest';
  });

  const batchOf = (limits = { digests: 3, bytes: 10_000, concurrency: 2 }) =>
    new HttpBlobUploadBatch(http, store, { unsupported: false }, limits);

  it('cuts blobs into requests within the limits, copies bytes at add, sends duplicates once', async () => {
    const xs = Array.from({ length: 8 }, () => blob(3000));
    const b = batchOf();
    for (const x of xs) {
      const reused = Buffer.from(x.data);
      assert.deepEqual(await b.add(x.digest, reused), { created: true });
      reused.fill(0); // the caller reuses its buffer: what was added must not change
    }
    assert.deepEqual(await b.add(xs[0].digest, xs[0].data), { created: false });
    await b.flush();
    for (const x of xs) assert.deepEqual(stored.get(x.digest), x.data);
    assert.equal(puts, 0);
    assert.ok(batches.length >= 3, `${batches.length} requests`);
    for (const g of batches) {
      assert.ok(g.length <= 3);
      assert.ok(g.length * 3000 <= 10_000);
    }
    assert.equal(batches.flat().length, 8);
  });

  it('a blob bigger than a batch goes alone by PUT', async () => {
    const big = blob(20_000);
    const small = [blob(10), blob(20)];
    const b = batchOf();
    await b.add(big.digest, big.data);
    for (const s of small) await b.add(s.digest, s.data);
    await b.flush();
    assert.equal(puts, 1);
    assert.deepEqual(batches, [small.map((s) => s.digest)]);
    assert.deepEqual(stored.get(big.digest), big.data);
  });

  it('a server without the endpoint (404) gets single PUTs, and is asked once per store', async () => {
    mode = 'no-endpoint';
    const xs = Array.from({ length: 7 }, () => blob(100));
    const b = store.uploadBatch();
    for (const x of xs) await b.add(x.digest, x.data);
    await b.flush();
    for (const x of xs) assert.deepEqual(stored.get(x.digest), x.data);
    assert.equal(puts, 7);
    // The store remembers: the next batch does not try the endpoint again.
    mode = 'honest';
    const ys = [blob(5), blob(6)];
    const c = store.uploadBatch();
    for (const y of ys) await c.add(y.digest, y.data);
    await c.flush();
    assert.equal(batches.length, 0);
    assert.equal(puts, 9);
  });

  it('an answer that does not list every blob sent fails flush()', async () => {
    mode = 'lying';
    const b = batchOf();
    for (const x of [blob(1), blob(2)]) await b.add(x.digest, x.data);
    await assert.rejects(b.flush(), (err) => isHoardError(err, 'HOARD_EREMOTE'));
  });

  it("the server's refusal is flush()'s error", async () => {
    mode = 'too-large';
    const b = batchOf();
    for (const x of [blob(1), blob(2)]) await b.add(x.digest, x.data);
    await assert.rejects(b.flush(), (err) => isHoardError(err, 'HOARD_ETOO_LARGE'));
  });
});
