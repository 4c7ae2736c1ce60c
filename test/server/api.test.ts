// HTTP API v1 of `hoard serve` (docs/api.md), checked over real HTTP against
// an in-process server: blob GET/HEAD with ranges and conditionals on warm
// (disk/memory) and cold (shared tier only) blobs, verified PUTs that leave
// nothing behind when refused or cut short, missing, refs CAS, JSON errors.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { waitUntil } from '../support/wait.ts';
import { startTestServer, startWithCountingShared, type TestServer } from './helpers.ts';

const blobUrl = (base: string, hex: string) => `${base}/v1/blobs/sha256/${hex}`;

async function put(
  base: string,
  data: Buffer,
  hex = hexOf(sha256(data)),
  headers: Record<string, string> = {},
) {
  return fetch(blobUrl(base, hex), { method: 'PUT', body: new Uint8Array(data), headers });
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(typeof body.error.code, 'string');
  assert.equal(typeof body.error.message, 'string');
  return body.error;
}

async function tmpFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, 'tmp'))).filter((n) => !n.startsWith('.'));
}

async function blobFiles(dataDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await readdir(join(dataDir, 'blobs', 'sha256')).catch(() => [] as string[]))
    out.push(...(await readdir(join(dataDir, 'blobs', 'sha256', shard))));
  return out;
}

describe('blob GET/HEAD', () => {
  let srv: TestServer;
  const data = randomBytes(100_000);
  const hex = hexOf(sha256(data));
  before(async () => {
    srv = await startTestServer();
    assert.equal((await put(srv.url, data)).status, 201);
  });
  after(() => srv.close());

  it('serves the whole blob with the immutable headers', async () => {
    const res = await fetch(blobUrl(srv.url, hex));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('etag'), `"${hex}"`);
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('content-length'), '100000');
    assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });

  it('HEAD gives the headers without a body', async () => {
    const res = await fetch(blobUrl(srv.url, hex), { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), '100000');
    assert.equal(res.headers.get('etag'), `"${hex}"`);
    const missing = await fetch(blobUrl(srv.url, hexOf(sha256('nope'))), { method: 'HEAD' });
    assert.equal(missing.status, 404);
  });

  it('serves a single range, an open range and a suffix range (warm)', async () => {
    for (const [header, start, end] of [
      ['bytes=10-19', 10, 20],
      ['bytes=99990-', 99990, 100000],
      ['bytes=-500', 99500, 100000],
      ['bytes=-200000', 0, 100000],
      ['bytes=99000-200000', 99000, 100000],
    ] as const) {
      const res = await fetch(blobUrl(srv.url, hex), { headers: { range: header } });
      assert.equal(res.status, 206, header);
      assert.equal(res.headers.get('content-range'), `bytes ${start}-${end - 1}/100000`, header);
      assert.equal(res.headers.get('content-length'), String(end - start));
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(start, end), header);
    }
  });

  it('answers 416 for a range past the end, with Content-Range */size', async () => {
    for (const header of ['bytes=100000-', 'bytes=-0']) {
      const res = await fetch(blobUrl(srv.url, hex), { headers: { range: header } });
      assert.equal(res.status, 416, header);
      assert.equal(res.headers.get('content-range'), 'bytes */100000');
      assert.equal((await errorOf(res)).code, 'HOARD_ERANGE_NOT_SATISFIABLE');
    }
  });

  it('ignores multi-range and malformed Range headers (200, whole blob)', async () => {
    for (const header of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-2']) {
      const res = await fetch(blobUrl(srv.url, hex), { headers: { range: header } });
      assert.equal(res.status, 200, header);
      assert.equal((await res.arrayBuffer()).byteLength, 100000);
    }
  });

  it('If-None-Match gives 304; If-Range honours the ETag', async () => {
    const nm = await fetch(blobUrl(srv.url, hex), { headers: { 'if-none-match': `"${hex}"` } });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers.get('etag'), `"${hex}"`);
    const other = await fetch(blobUrl(srv.url, hex), { headers: { 'if-none-match': '"abc"' } });
    assert.equal(other.status, 200);
    await other.arrayBuffer();
    const ok = await fetch(blobUrl(srv.url, hex), {
      headers: { range: 'bytes=0-9', 'if-range': `"${hex}"` },
    });
    assert.equal(ok.status, 206);
    await ok.arrayBuffer();
    const stale = await fetch(blobUrl(srv.url, hex), {
      headers: { range: 'bytes=0-9', 'if-range': '"other"' },
    });
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, 100000);
  });

  it('404 and 400 are JSON errors', async () => {
    const nf = await fetch(blobUrl(srv.url, hexOf(sha256('absent'))));
    assert.equal(nf.status, 404);
    assert.equal((await errorOf(nf)).code, 'HOARD_EBLOB_NOT_FOUND');
    for (const bad of ['xyz', `${'ABCDEF'.repeat(10)}ABCD`, '0'.repeat(63)]) {
      const res = await fetch(blobUrl(srv.url, bad));
      assert.equal(res.status, 400, bad);
      assert.equal((await errorOf(res)).code, 'HOARD_EDIGEST_INVALID');
    }
  });
});

describe('blob ranges on a cold read (shared tier only)', () => {
  it('passes a range down to the shared tier and streams it; later reads are warm', async () => {
    const srv = await startWithCountingShared();
    try {
      const data = randomBytes(3 * 1024 * 1024 + 7);
      const digest = sha256(data);
      await srv.shared.inner.write(digest, Readable.from([data]));
      const hex = hexOf(digest);
      const r1 = await fetch(blobUrl(srv.url, hex), { headers: { range: 'bytes=1000000-1000099' } });
      assert.equal(r1.status, 206);
      assert.equal(r1.headers.get('x-hoard-tier'), 'shared');
      assert.deepEqual(Buffer.from(await r1.arrayBuffer()), data.subarray(1_000_000, 1_000_100));
      const suffix = await fetch(blobUrl(srv.url, hex), { headers: { range: 'bytes=-10' } });
      assert.equal(suffix.status, 206);
      assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), data.subarray(data.length - 10));
      // The first range went down as a range, not as a whole-blob read.
      assert.deepEqual(srv.shared.reads[0].range, { offset: 1_000_000, length: 100 });
      // The background fill warms the disk tier; then ranges are served from disk.
      await waitUntil(async () => (await blobFiles(srv.dataDir)).length > 0, 'the background fill');
      const warm = await fetch(blobUrl(srv.url, hex), { headers: { range: 'bytes=-10' } });
      assert.equal(warm.status, 206);
      assert.equal(warm.headers.get('x-hoard-tier'), 'disk');
      assert.deepEqual(Buffer.from(await warm.arrayBuffer()), data.subarray(data.length - 10));
      const unsat = await fetch(blobUrl(srv.url, hex), { headers: { range: `bytes=${data.length}-` } });
      assert.equal(unsat.status, 416);
    } finally {
      await srv.close();
    }
  });

  it('a whole cold GET streams from the shared tier and fills disk; 404 when absent everywhere', async () => {
    const srv = await startWithCountingShared();
    try {
      const data = randomBytes(500_000);
      const digest = sha256(data);
      await srv.shared.inner.write(digest, Readable.from([data]));
      const res = await fetch(blobUrl(srv.url, hexOf(digest)));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), '500000');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
      assert.deepEqual(await blobFiles(srv.dataDir), [hexOf(digest)]);
      assert.deepEqual(await tmpFiles(srv.dataDir), []);
      const cold = await fetch(blobUrl(srv.url, hexOf(sha256('nowhere'))));
      assert.equal(cold.status, 404);
    } finally {
      await srv.close();
    }
  });
});

describe('blob PUT', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ maxBlobSize: 1024 * 1024 });
  });
  after(() => srv.close());

  it('201 when stored, 200 when already present', async () => {
    const data = randomBytes(1000);
    const first = await put(srv.url, data);
    assert.equal(first.status, 201);
    const body = (await first.json()) as { digest: string; size: number };
    assert.equal(body.digest, sha256(data));
    assert.equal(body.size, 1000);
    assert.equal((await put(srv.url, data)).status, 200);
  });

  it('400 when the bytes do not match, and nothing is kept', async () => {
    const data = randomBytes(5000);
    const wrong = hexOf(sha256('other'));
    const res = await put(srv.url, data, wrong);
    assert.equal(res.status, 400);
    assert.equal((await errorOf(res)).code, 'HOARD_EDIGEST_MISMATCH');
    assert.ok(!(await blobFiles(srv.dataDir)).includes(wrong));
    assert.ok(!(await blobFiles(srv.dataDir)).includes(hexOf(sha256(data))));
    assert.deepEqual(await tmpFiles(srv.dataDir), []);
    assert.equal((await fetch(blobUrl(srv.url, wrong), { method: 'HEAD' })).status, 404);
  });

  it('413 above --max-blob-size, by Content-Length and by counting a chunked body', async () => {
    const big = randomBytes(1024 * 1024 + 1);
    const hex = hexOf(sha256(big));
    const declared = await put(srv.url, big);
    assert.equal(declared.status, 413);
    assert.equal((await errorOf(declared)).code, 'HOARD_ETOO_LARGE');
    const chunked = await fetch(blobUrl(srv.url, hex), {
      method: 'PUT',
      body: Readable.toWeb(
        Readable.from([big.subarray(0, 600_000), big.subarray(600_000)]),
      ) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.ok(!(await blobFiles(srv.dataDir)).includes(hex));
    assert.deepEqual(await tmpFiles(srv.dataDir), []);
  });

  it('a body cut short by a disconnect stores nothing', async () => {
    const data = randomBytes(200_000);
    const hex = hexOf(sha256(data));
    const { port } = new URL(srv.url);
    await new Promise<void>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1', () => {
        sock.write(
          `PUT /v1/blobs/sha256/${hex} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\n\r\n`,
        );
        sock.write(data.subarray(0, 100_000), () => setTimeout(() => sock.destroy(), 50));
      });
      sock.on('close', () => resolve());
      sock.on('error', reject);
    });
    // The server notices the cut and cleans up asynchronously.
    await waitUntil(async () => (await tmpFiles(srv.dataDir)).length === 0, 'the temp file to go');
    assert.ok(!(await blobFiles(srv.dataDir)).includes(hex));
    assert.deepEqual(await tmpFiles(srv.dataDir), []);
    assert.equal((await fetch(blobUrl(srv.url, hex), { method: 'HEAD' })).status, 404);
    // The same blob uploads fine afterwards.
    assert.equal((await put(srv.url, data)).status, 201);
  });

  it('the empty blob', async () => {
    const empty = Buffer.alloc(0);
    assert.equal((await put(srv.url, empty)).status, 201);
    const res = await fetch(blobUrl(srv.url, hexOf(sha256(empty))));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), '0');
  });
});

describe('POST /v1/blobs/missing', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  it('answers which digests are missing, in order, deduplicated', async () => {
    const a = randomBytes(10);
    await put(srv.url, a);
    const b = sha256('b');
    const c = sha256('c');
    const res = await fetch(`${srv.url}/v1/blobs/missing`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ digests: [b, sha256(a), c, b] }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { missing: [b, c] });
  });

  it('400 for malformed digests or bodies, and above the batch size', async () => {
    for (const body of [
      '{"digests":["sha256:xyz"]}',
      '{"nope":1}',
      'not json',
      JSON.stringify({ digests: Array(10_001).fill(sha256('x')) }),
    ]) {
      const res = await fetch(`${srv.url}/v1/blobs/missing`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.status, 400, body.slice(0, 40));
      await errorOf(res);
    }
  });
});

describe('refs', () => {
  let srv: TestServer;
  const data = randomBytes(100);
  const target = sha256(data);
  before(async () => {
    srv = await startTestServer();
    await put(srv.url, data);
  });
  after(() => srv.close());

  const refUrl = (name: string) => `${srv.url}/v1/refs/${name}`;
  const putRef = (name: string, body: unknown, headers: Record<string, string>) =>
    fetch(refUrl(name), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('create, read with ETag, update with If-Match, 412 when stale, delete', async () => {
    const created = await putRef('team/app/main', { target }, { 'if-none-match': '*' });
    assert.equal(created.status, 201);
    const etag1 = created.headers.get('etag');
    assert.ok(etag1);
    const again = await putRef('team/app/main', { target }, { 'if-none-match': '*' });
    assert.equal(again.status, 412);
    assert.equal((await errorOf(again)).code, 'HOARD_EREF_CONFLICT');
    const got = await fetch(refUrl('team/app/main'));
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('etag'), etag1);
    assert.deepEqual(await got.json(), { target });
    const updated = await putRef('team/app/main', { target }, { 'if-match': etag1 });
    assert.equal(updated.status, 200);
    const etag2 = updated.headers.get('etag');
    assert.notEqual(etag2, etag1);
    const stale = await putRef('team/app/main', { target }, { 'if-match': etag1 });
    assert.equal(stale.status, 412);
    const staleDel = await fetch(refUrl('team/app/main'), {
      method: 'DELETE',
      headers: { 'if-match': etag1 },
    });
    assert.equal(staleDel.status, 412);
    const del = await fetch(refUrl('team/app/main'), { method: 'DELETE', headers: { 'if-match': etag2! } });
    assert.equal(del.status, 204);
    const gone = await fetch(refUrl('team/app/main'));
    assert.equal(gone.status, 404);
    assert.equal((await errorOf(gone)).code, 'HOARD_EREF_NOT_FOUND');
  });

  it('409 when the target blob is absent; 428 without a precondition; 400 for bad names and bodies', async () => {
    const absent = await putRef('x/y', { target: sha256('not stored') }, { 'if-none-match': '*' });
    assert.equal(absent.status, 409);
    assert.equal((await errorOf(absent)).code, 'HOARD_EREF_TARGET_MISSING');
    const noPre = await putRef('x/y', { target }, {});
    assert.equal(noPre.status, 428);
    await errorOf(noPre);
    const badName = await putRef('bad..name/x.lock', { target }, { 'if-none-match': '*' });
    assert.equal(badName.status, 400);
    assert.equal((await errorOf(badName)).code, 'HOARD_EREF_NAME_INVALID');
    const badTarget = await putRef('x/z', { target: 'sha256:nope' }, { 'if-none-match': '*' });
    assert.equal(badTarget.status, 400);
    const notJson = await fetch(refUrl('x/z'), {
      method: 'PUT',
      headers: { 'if-none-match': '*' },
      body: '{',
    });
    assert.equal(notJson.status, 400);
    await errorOf(notJson);
  });

  it('lists by prefix', async () => {
    for (const n of ['cache/b', 'cache/a/x', 'team/c'])
      assert.equal((await putRef(n, { target }, { 'if-none-match': '*' })).status, 201);
    const res = await fetch(`${srv.url}/v1/refs?prefix=cache/`);
    const body = (await res.json()) as { refs: { name: string; target: string; etag: string }[] };
    assert.deepEqual(
      body.refs.map((r) => r.name),
      ['cache/a/x', 'cache/b'],
    );
    assert.ok(body.refs.every((r) => r.target === target && r.etag.startsWith('"')));
  });
});

describe('health', () => {
  it('/healthz and /readyz answer; unknown routes are JSON 404s', async () => {
    const srv = await startTestServer();
    try {
      assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
      const nf = await fetch(`${srv.url}/nope`);
      assert.equal(nf.status, 404);
      await errorOf(nf);
    } finally {
      await srv.close();
    }
  });
});
