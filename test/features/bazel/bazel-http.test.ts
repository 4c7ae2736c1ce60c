// The Bazel HTTP cache protocol at the HTTP level (the Bazel docs' "Remote
// Caching" page): CAS put/get/head verified by digest, the action cache with
// its integrity rule (a hit only when every referenced blob is present), the
// instance segment, and bad input: keys, bodies, sizes, cut-off uploads.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../../src/core/digest.ts';
import { EMPTY_DIGEST, encodeActionResult, encodeTree } from '../../../src/features/bazel/action-result.ts';
import type { TestServer } from '../../server/helpers.ts';
import { put, putCutShort, startCacheServer, tmpFiles } from './cache-server.ts';

const wire = (d: Digest, size: number) => ({ hash: hexOf(d), sizeBytes: size });

describe('bazel HTTP cache', () => {
  let srv: TestServer;
  let base: string;
  before(async () => {
    srv = await startCacheServer({ maxBlobSize: '1MiB' });
    base = `${srv.url}/bazel`;
  });
  after(() => srv?.close());

  /** Uploads bytes to the CAS; returns their digest. */
  const cas = async (bytes: Uint8Array, prefix = base): Promise<Digest> => {
    const d = sha256(bytes);
    const res = await put(`${prefix}/cas/${hexOf(d)}`, bytes);
    assert.equal(res.status, 200, await res.text());
    return d;
  };

  it('CAS: PUT then GET and HEAD, with and without an instance; a missing blob is 404', async () => {
    const data = randomBytes(5000);
    const d = await cas(data);
    const got = await fetch(`${base}/cas/${hexOf(d)}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), data);
    const head = await fetch(`${base}/cas/${hexOf(d)}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '5000');
    // The CAS is one store: an instance sees the same blobs.
    assert.equal((await fetch(`${base}/main/cas/${hexOf(d)}`)).status, 200);
    const ranged = await fetch(`${base}/cas/${hexOf(d)}`, { headers: { range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20));
    assert.equal((await fetch(`${base}/cas/${hexOf(sha256('absent'))}`)).status, 404);
    assert.equal((await fetch(`${base}/cas/${hexOf(sha256('absent'))}`, { method: 'HEAD' })).status, 404);
    // A CAS blob is an ordinary hoard blob.
    assert.equal((await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(d)}`)).status, 200);
  });

  it('CAS: a body whose SHA-256 is not the key is 400 and stores nothing', async () => {
    const data = randomBytes(3000);
    const wrong = sha256('something else');
    const res = await put(`${base}/cas/${hexOf(wrong)}`, data);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'HOARD_EDIGEST_MISMATCH');
    assert.equal(await srv.server.ctx.blobs.has(wrong), false);
    assert.equal(await srv.server.ctx.blobs.has(sha256(data)), false);
    assert.equal((await fetch(`${base}/cas/${hexOf(wrong)}`)).status, 404);
  });

  it('CAS: the empty blob is always there (Bazel never uploads it)', async () => {
    const res = await fetch(`${base}/cas/${hexOf(EMPTY_DIGEST)}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), '0');
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('AC: a result whose outputs are all present is a hit, byte for byte', async () => {
    const out = await cas(randomBytes(2000));
    const stdout = await cas(Buffer.from('compiling…\n'));
    const file = await cas(randomBytes(100));
    const tree = await cas(encodeTree({ root: { files: [{ name: 'f', digest: wire(file, 100) }] } }));
    const result = encodeActionResult({
      outputFiles: [
        { path: 'bin/out', digest: wire(out, 2000) },
        // Empty outputs are never uploaded: they count as present.
        { path: 'bin/empty', digest: wire(EMPTY_DIGEST, 0) },
      ],
      outputDirectories: [{ path: 'bin/dir', treeDigest: wire(tree, 0) }],
      stdoutDigest: wire(stdout, 11),
      exitCode: 0,
    });
    const action = hexOf(sha256('action-1'));
    assert.equal((await put(`${base}/ac/${action}`, result)).status, 200);
    const got = await fetch(`${base}/ac/${action}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), Buffer.from(result));
    assert.equal((await fetch(`${base}/ac/${action}`, { method: 'HEAD' })).status, 200);
    // Action results are per instance.
    assert.equal((await fetch(`${base}/other/ac/${action}`)).status, 404);
    assert.equal((await fetch(`${base}/ac/${hexOf(sha256('never stored'))}`)).status, 404);
  });

  it('AC: a result whose output blob was evicted is a miss, and a hit again once re-uploaded', async () => {
    const bytes = randomBytes(4000);
    const out = await cas(bytes);
    const action = hexOf(sha256('action-evicted'));
    const result = encodeActionResult({ outputFiles: [{ path: 'o', digest: wire(out, 4000) }] });
    assert.equal((await put(`${base}/ac/${action}`, result)).status, 200);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 200);
    // Evict the output from every tier.
    assert.equal(await srv.server.ctx.blobs.delete(out), true);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 404);
    assert.equal((await fetch(`${base}/ac/${action}`, { method: 'HEAD' })).status, 404);
    const metrics = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(metrics, /hoard_cache_requests_total\{tool="bazel",op="get",result="incomplete"\} [1-9]/);
    await cas(bytes);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 200);
  });

  it('AC: a result whose output directory lost a file (inside its Tree) or its Tree is a miss', async () => {
    const file = await cas(randomBytes(300));
    const tree = await cas(encodeTree({ root: { files: [{ name: 'f', digest: wire(file, 300) }] } }));
    const action = hexOf(sha256('action-tree'));
    const result = encodeActionResult({ outputDirectories: [{ path: 'd', treeDigest: wire(tree, 0) }] });
    assert.equal((await put(`${base}/ac/${action}`, result)).status, 200);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 200);
    await srv.server.ctx.blobs.delete(file);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 404);
    await srv.server.ctx.blobs.delete(tree);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 404);
  });

  it('AC: the last writer wins (a re-run replaces a result)', async () => {
    const a = await cas(Buffer.from('first'));
    const b = await cas(Buffer.from('second'));
    const action = hexOf(sha256('action-rerun'));
    const first = encodeActionResult({ outputFiles: [{ path: 'o', digest: wire(a, 5) }] });
    const second = encodeActionResult({ outputFiles: [{ path: 'o', digest: wire(b, 6) }] });
    assert.equal((await put(`${base}/ac/${action}`, first)).status, 200);
    assert.equal((await put(`${base}/ac/${action}`, second)).status, 200);
    assert.deepEqual(
      Buffer.from(await (await fetch(`${base}/ac/${action}`)).arrayBuffer()),
      Buffer.from(second),
    );
  });

  it('AC: a body that is not an ActionResult is 400 and stores nothing', async () => {
    const action = hexOf(sha256('action-garbage'));
    for (const body of ['not a protobuf', '{"outputFiles": []}']) {
      const res = await put(`${base}/ac/${action}`, Buffer.from(body));
      assert.equal(res.status, 400, body);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /ActionResult/);
    }
    const badDigest = encodeActionResult({
      outputFiles: [{ path: 'o', digest: { hash: 'xyz', sizeBytes: 1 } }],
    });
    assert.equal((await put(`${base}/ac/${action}`, badDigest)).status, 400);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 404);
    assert.equal(await srv.server.ctx.refs.get(`cache/bazel/_/ac/${action}`), undefined);
  });

  it("AC: ccache's bazel-layout keys hold ccache's own bytes (stored as they come)", async () => {
    // ccache: 40 hex digits of its key, then its first 24 again (HttpStorage.cpp).
    const key40 = hexOf(sha256('ccache key')).slice(0, 40);
    const key = key40 + key40.slice(0, 24);
    const value = Buffer.from('cCrS ccache result bytes, not a protobuf');
    assert.equal((await put(`${base}/ac/${key}`, value)).status, 200);
    const got = await fetch(`${base}/ac/${key}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), value);
  });

  it('bad keys are 400, for the CAS and the AC alike', async () => {
    const body = Buffer.from('x');
    for (const key of ['abc', 'A'.repeat(64), `${'0'.repeat(63)}g`, '0'.repeat(65)]) {
      for (const kind of ['cas', 'ac']) {
        assert.equal((await fetch(`${base}/${kind}/${key}`)).status, 400, `GET ${kind}/${key}`);
        assert.equal((await put(`${base}/${kind}/${key}`, body)).status, 400, `PUT ${kind}/${key}`);
      }
    }
    assert.equal((await fetch(`${base}/bad~instance/cas/${hexOf(sha256('x'))}`)).status, 400);
  });

  it('a body over --max-blob-size is 413 (declared or streamed) and stores nothing', async () => {
    const big = randomBytes(1024 * 1024 + 1);
    const d = sha256(big);
    assert.equal((await put(`${base}/cas/${hexOf(d)}`, big)).status, 413);
    const chunked = await fetch(`${base}/cas/${hexOf(d)}`, {
      method: 'PUT',
      body: new ReadableStream({
        start(c) {
          c.enqueue(big.subarray(0, 600_000));
          c.enqueue(big.subarray(600_000));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.equal(await srv.server.ctx.blobs.has(d), false);
    const action = hexOf(sha256('action-big'));
    assert.equal((await put(`${base}/ac/${action}`, big)).status, 413);
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 404);
    assert.deepEqual(await tmpFiles(srv.dataDir), []);
  });

  it('a body cut short stores nothing', async () => {
    const data = randomBytes(200_000);
    const d = sha256(data);
    const status = await putCutShort(srv, `/bazel/cas/${hexOf(d)}`, data.length, data.subarray(0, 90_000));
    assert.match(status, /^HTTP\/1\.1 400 /);
    assert.equal(await srv.server.ctx.blobs.has(d), false);
    const out = await cas(randomBytes(10));
    const result = encodeActionResult({ outputFiles: [{ path: 'o', digest: wire(out, 10) }] });
    const action = hexOf(sha256('action-cut'));
    assert.match(
      await putCutShort(srv, `/bazel/ac/${action}`, result.length + 50, result),
      /^HTTP\/1\.1 400 /,
    );
    assert.equal((await fetch(`${base}/ac/${action}`)).status, 404);
    // The same upload in full works afterwards.
    await cas(data);
  });
});

describe('bazel action cache over a shared tier', () => {
  let srv: TestServer;
  let sharedDir: string;
  before(async () => {
    sharedDir = await mkdtemp(join(tmpdir(), 'hoard-bazel-shared-'));
    srv = await startCacheServer({ remote: `file://${sharedDir}` });
  });
  after(async () => {
    await srv?.close();
    await rm(sharedDir, { recursive: true, force: true });
  });

  it('an output gone from the local disk but in the shared tier still counts; gone from every tier, a miss', async () => {
    const bytes = randomBytes(1000);
    const out = sha256(bytes);
    assert.equal((await put(`${srv.url}/bazel/cas/${hexOf(out)}`, bytes)).status, 200);
    const action = hexOf(sha256('shared action'));
    const result = encodeActionResult({ outputFiles: [{ path: 'o', digest: wire(out, 1000) }] });
    assert.equal((await put(`${srv.url}/bazel/ac/${action}`, result)).status, 200);
    const { blobs } = srv.server.ctx;
    assert.equal((await fetch(`${srv.url}/bazel/ac/${action}`)).status, 200);
    await blobs.memory.delete(out);
    assert.equal(await blobs.disk.delete(out), true);
    assert.equal((await fetch(`${srv.url}/bazel/ac/${action}`)).status, 200);
    await blobs.delete(out);
    assert.equal(await blobs.shared?.has(out), false);
    assert.equal((await fetch(`${srv.url}/bazel/ac/${action}`)).status, 404);
  });
});
