// Gradle's HTTP build cache protocol at the HTTP level (HttpBuildCache docs):
// GET → 200 with the entry or 404, PUT → 2xx, HEAD like GET without a body,
// last writer wins, 413 above --max-blob-size, a bad key is 400, and a bad
// upload (too large, cut short) stores nothing.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { TestServer } from '../../server/helpers.ts';
import { cutUpload } from '../../support/cut-upload.ts';
import { ARTIFACT_V2, blobFiles, getEntry, newKey, putEntry, startGradleServer } from './helpers.ts';

const MAX = 1024 * 1024;

describe('gradle build cache protocol', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startGradleServer({ maxBlobSize: MAX });
  });
  after(() => srv?.close());

  test('a miss is 404; PUT stores (2xx); GET returns the bytes with the Content-Type they came with', async () => {
    const key = newKey();
    const body = randomBytes(5000);
    const miss = await getEntry(srv.url, key);
    assert.equal(miss.status, 404);
    await miss.arrayBuffer();
    const put = await putEntry(srv.url, key, body);
    assert.equal(put.status, 201);
    await put.arrayBuffer();
    const hit = await getEntry(srv.url, key);
    assert.equal(hit.status, 200);
    assert.equal(hit.headers.get('content-type'), ARTIFACT_V2);
    assert.equal(hit.headers.get('content-length'), String(body.length));
    assert.deepEqual(Buffer.from(await hit.arrayBuffer()), body);
  });

  test("Gradle 4's v1 Content-Type is kept too", async () => {
    const key = newKey();
    const v1 = 'application/vnd.gradle.build-cache-artifact.v1';
    await (
      await putEntry(srv.url, key, Buffer.from('v1 entry'), undefined, { 'content-type': v1 })
    ).arrayBuffer();
    const hit = await getEntry(srv.url, key);
    assert.equal(hit.headers.get('content-type'), v1);
    assert.equal(await hit.text(), 'v1 entry');
  });

  test('a PUT without Content-Type (curl -T) is stored and served as application/octet-stream', async () => {
    const key = newKey();
    const put = await fetch(`${srv.url}/gradle/${key}`, { method: 'PUT', body: new Uint8Array([1, 2, 3]) });
    assert.equal(put.status, 201);
    const hit = await getEntry(srv.url, key);
    assert.equal(hit.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual([...new Uint8Array(await hit.arrayBuffer())], [1, 2, 3]);
  });

  test('HEAD: the headers of GET, no body', async () => {
    const key = newKey();
    await (await putEntry(srv.url, key, Buffer.alloc(321, 7))).arrayBuffer();
    const head = await getEntry(srv.url, key, undefined, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '321');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    const miss = await getEntry(srv.url, newKey(), undefined, 'HEAD');
    assert.equal(miss.status, 404);
  });

  test('a second PUT of a key replaces the entry (last writer wins)', async () => {
    const key = newKey();
    await (await putEntry(srv.url, key, Buffer.from('first'))).arrayBuffer();
    const again = await putEntry(srv.url, key, Buffer.from('second'));
    assert.ok(again.status >= 200 && again.status < 300, `status ${again.status}`);
    await again.arrayBuffer();
    assert.equal(await (await getEntry(srv.url, key)).text(), 'second');
  });

  test('concurrent PUTs of one key (two builds storing the same task): all 2xx, one whole body wins', async () => {
    const key = newKey();
    const bodies = Array.from({ length: 8 }, () => randomBytes(50_000));
    const answers = await Promise.all(bodies.map((b) => putEntry(srv.url, key, b)));
    for (const a of answers) {
      assert.ok(a.status >= 200 && a.status < 300, `status ${a.status}`);
      await a.arrayBuffer();
    }
    const got = Buffer.from(await (await getEntry(srv.url, key)).arrayBuffer());
    assert.ok(
      bodies.some((b) => b.equals(got)),
      'the entry is one of the bodies, whole',
    );
  });

  test('Range: a byte range of the entry (206)', async () => {
    const key = newKey();
    await (await putEntry(srv.url, key, Buffer.from('0123456789'))).arrayBuffer();
    const res = await fetch(`${srv.url}/gradle/${key}`, { headers: { range: 'bytes=2-5' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), 'bytes 2-5/10');
    assert.equal(await res.text(), '2345');
  });

  for (const [bad, why] of [
    ['not-a-key', 'not hex'],
    ['0123456789abcdef', 'too short (16 hex)'],
    ['0123456789ABCDEF0123456789ABCDEF', 'upper case'],
    [`${'a'.repeat(129)}`, 'too long'],
    ['0123456789abcdef0123456789abcdef.tmp', 'a suffix'],
  ] as const)
    test(`a bad key (${why}) is 400 and stores nothing`, async () => {
      const before = (await blobFiles(srv.dataDir)).length;
      const put = await putEntry(srv.url, bad, Buffer.from(`bad key ${why}`));
      assert.equal(put.status, 400);
      const err = (await put.json()) as { error: { code: string; message: string } };
      assert.equal(err.error.code, 'HOARD_EBAD_REQUEST');
      assert.match(err.error.message, /not a Gradle build cache key/);
      const get = await getEntry(srv.url, bad);
      assert.equal(get.status, 400);
      await get.arrayBuffer();
      assert.equal((await blobFiles(srv.dataDir)).length, before);
    });

  test('a body over --max-blob-size: 413 (declared or streamed), nothing stored', async () => {
    const before = (await blobFiles(srv.dataDir)).length;
    const key = newKey();
    const declared = await putEntry(srv.url, key, randomBytes(MAX + 1));
    assert.equal(declared.status, 413);
    await declared.arrayBuffer();
    // No Content-Length (chunked): the bound is found while streaming.
    const big = randomBytes(MAX + 1);
    const chunked = await fetch(`${srv.url}/gradle/${key}`, {
      method: 'PUT',
      headers: { 'content-type': ARTIFACT_V2 },
      body: new ReadableStream({
        start(c) {
          for (let off = 0; off < big.length; off += 64 * 1024) c.enqueue(big.subarray(off, off + 64 * 1024));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    await chunked.arrayBuffer();
    assert.equal((await getEntry(srv.url, key)).status, 404);
    assert.equal((await blobFiles(srv.dataDir)).length, before);
  });

  test('exactly --max-blob-size is accepted', async () => {
    const key = newKey();
    const put = await putEntry(srv.url, key, randomBytes(MAX));
    assert.equal(put.status, 201);
    await put.arrayBuffer();
  });

  for (const [what, contentLength, sent] of [
    ['a small body, received in memory', 100_000, 40_000],
    ['a large body, received through a spool file', MAX, 300_000],
  ] as const)
    test(`a body cut short (client gone mid-upload) stores nothing: ${what}`, async () => {
      const key = newKey();
      const before = (await blobFiles(srv.dataDir)).length;
      await cutUpload(srv, `/gradle/${key}`, {
        tool: 'gradle',
        contentType: ARTIFACT_V2,
        contentLength,
        sent,
      });
      assert.equal((await getEntry(srv.url, key)).status, 404);
      assert.equal((await blobFiles(srv.dataDir)).length, before);
    });
});
