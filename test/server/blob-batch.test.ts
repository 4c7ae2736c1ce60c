// POST /v1/blobs/batch against a real server: the framing byte for byte
// (present, missing, not sent past the byte budget, request order), the
// tiers behind it (memory, disk), bad input (400 and nothing streamed), the
// auth matrix, and a client that stops reading mid-response.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BATCH_CONTENT_TYPE,
  BATCH_MAGIC,
  type BatchRecord,
  RECORD_HEAD_BYTES,
  readBatchFrames,
} from '../../src/core/blob-batch-frame.ts';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { type TestToken, writeTokensFile } from '../support/tokens.ts';
import { startTestServer, type TestServer } from './helpers.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data) };
};

async function put(srv: TestServer, data: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`, {
    method: 'PUT',
    body: new Uint8Array(data),
    headers,
  });
  assert.ok(res.status === 201 || res.status === 200, `PUT ${res.status}`);
}

const batch = (srv: TestServer, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${srv.url}/v1/blobs/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

async function records(res: Response, wants: { digest: Digest; size: number }[]): Promise<BatchRecord[]> {
  const out: BatchRecord[] = [];
  const body = Buffer.from(await res.arrayBuffer());
  await readBatchFrames([body], wants, (r) => {
    out.push(r);
  });
  return out;
}

describe('POST /v1/blobs/batch', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ maxBatchBytes: '100KiB' });
  });
  after(() => srv?.close());

  it('answers one record per digest in request order: present, missing, empty, and not sent past the byte budget', async () => {
    const a = blob(1000);
    const b = blob(70 * 1024);
    const c = blob(40 * 1024); // a + b + c pass the 100 KiB budget: c is not sent
    const empty = blob(0);
    const d = blob(10); // still fits after c was skipped
    const absent = blob(5);
    for (const x of [a, b, c, empty, d]) await put(srv, x.data);
    const wants = [a, absent, b, c, empty, d].map((x) => ({ digest: x.digest, size: x.data.length }));
    const res = await batch(srv, { digests: wants.map((w) => w.digest) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), BATCH_CONTENT_TYPE);
    const raw = Buffer.from(await res.clone().arrayBuffer());
    assert.deepEqual(raw.subarray(0, 8), BATCH_MAGIC);
    // The first record's head, byte for byte: raw digest, status 0, uint32 BE length.
    assert.equal(raw.subarray(8, 40).toString('hex'), hexOf(a.digest));
    assert.equal(raw[40], 0);
    assert.equal(raw.readUInt32BE(41), 1000);
    assert.equal(
      raw.length,
      8 + 6 * RECORD_HEAD_BYTES + a.data.length + b.data.length + d.data.length,
      'c is announced but not sent; absent has no bytes',
    );
    const got = await records(res, wants);
    assert.deepEqual(
      got.map((r) => r.status),
      ['present', 'missing', 'present', 'not-sent', 'present', 'present'],
    );
    assert.deepEqual((got[0] as { bytes: Buffer }).bytes, a.data);
    assert.deepEqual((got[2] as { bytes: Buffer }).bytes, b.data);
    assert.equal((got[4] as { bytes: Buffer }).bytes.length, 0);
    assert.deepEqual((got[5] as { bytes: Buffer }).bytes, d.data);
  });

  it('serves from the disk tier as from memory (a new server over the same data)', async () => {
    const x = blob(300 * 1024); // larger than the budget: alone it is never sent
    const y = blob(2000);
    await put(srv, y.data);
    await put(srv, x.data);
    const cold = await startTestServer({ data: srv.dataDir, maxBatchBytes: '1MiB' });
    try {
      const wants = [y, x].map((v) => ({ digest: v.digest, size: v.data.length }));
      const got = await records(await batch(cold, { digests: wants.map((w) => w.digest) }), wants);
      assert.deepEqual((got[0] as { bytes: Buffer }).bytes, y.data);
      assert.deepEqual((got[1] as { bytes: Buffer }).bytes, x.data);
      const big = await records(await batch(srv, { digests: [x.digest] }), [wants[1]]);
      assert.equal(big[0].status, 'not-sent');
    } finally {
      await cold.server.close();
    }
  });

  it('refuses bad input with 400 before streaming anything', async () => {
    const d = blob(3).digest;
    const cases: [string, unknown][] = [
      ['not JSON', '{"digests":['],
      ['no list', { digest: d }],
      ['empty list', { digests: [] }],
      ['not a digest', { digests: ['sha256:zz'] }],
      ['a number', { digests: [42] }],
      ['duplicates', { digests: [d, d] }],
      ['too many', { digests: Array.from({ length: 1001 }, (_, i) => sha256(Buffer.from(String(i)))) }],
    ];
    for (const [what, body] of cases) {
      const res = await batch(srv, body);
      assert.equal(res.status, 400, what);
      assert.match(res.headers.get('content-type') ?? '', /json/, what);
      const err = (await res.json()) as { error: { code: string; message: string } };
      assert.match(err.error.code, /^HOARD_E/, what);
      if (what === 'too many') assert.match(err.error.message, /at most 1000 digests per request/);
    }
  });

  it('a client that stops reading mid-response frees the server (next requests are served)', async () => {
    const many = Array.from({ length: 40 }, () => blob(64 * 1024));
    const big = await startTestServer({ maxBatchBytes: '64MiB' });
    try {
      for (const m of many) await put(big, m.data);
      const u = new URL(`${big.url}/v1/blobs/batch`);
      await new Promise<void>((resolve, reject) => {
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: 'POST',
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            res.once('data', () => {
              res.destroy();
              resolve();
            });
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ digests: many.map((m) => m.digest) }));
      });
      const wants = many.slice(0, 3).map((m) => ({ digest: m.digest, size: m.data.length }));
      const got = await records(await batch(big, { digests: wants.map((w) => w.digest) }), wants);
      assert.equal(got.length, 3);
    } finally {
      await big.close();
    }
  });
});

describe('POST /v1/blobs/batch auth', () => {
  const TOKENS: TestToken[] = [
    { name: 'reader', token: 'read-secret', scopes: ['read'] },
    { name: 'writer', token: 'write-secret', scopes: ['read', 'write'] },
    { name: 'deployer', token: 'deploy-secret', scopes: ['write'], refs: ['deploy/'] },
  ];
  let dir: string;
  let srv: TestServer;
  let pub: TestServer;
  const x = blob(100);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-batch-auth-'));
    const tokens = await writeTokensFile(dir, TOKENS);
    srv = await startTestServer({ tokens });
    pub = await startTestServer({ tokens, publicRead: true });
    await put(srv, x.data, { authorization: 'Bearer write-secret' });
    await put(pub, x.data, { authorization: 'Bearer write-secret' });
  });
  after(async () => {
    await srv?.close();
    await pub?.close();
    await rm(dir, { recursive: true, force: true });
  });
  const body = () => ({ digests: [x.digest] });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  it('no token or a wrong one: 401, nothing streamed', async () => {
    for (const h of [{}, bearer('nope')]) {
      const res = await batch(srv, body(), h);
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'HOARD_EUNAUTHORIZED');
    }
  });

  it('read, write and a token limited to another ref namespace may read blobs (as GET does)', async () => {
    for (const t of ['read-secret', 'write-secret', 'deploy-secret']) {
      const res = await batch(srv, body(), bearer(t));
      assert.equal(res.status, 200, t);
      const got = await records(res, [{ digest: x.digest, size: 100 }]);
      assert.deepEqual((got[0] as { bytes: Buffer }).bytes, x.data, t);
      // The same answer as the single GET for that token.
      const get = await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(x.digest)}`, { headers: bearer(t) });
      assert.equal(get.status, 200, t);
    }
  });

  it('--public-read: anonymous batches are served', async () => {
    const res = await batch(pub, body());
    assert.equal(res.status, 200);
    assert.equal((await records(res, [{ digest: x.digest, size: 100 }]))[0].status, 'present');
  });
});

describe('batchBody', () => {
  it('gathers small records at hand into few chunks; large, streamed, missing and not-sent records keep their place', async () => {
    const { batchBody } = await import('../../src/server/routes/blobs.ts');
    const { bufferHandle } = await import('../../src/store/blob-handle.ts');
    const { Readable } = await import('node:stream');
    const small = Array.from({ length: 300 }, (_, i) => blob(1 + ((i * 37) % 1500)));
    const big = blob(20 * 1024); // at hand, past the gathering size: sent as it is
    const streamed = blob(5000); // a disk stream
    const tooBig = blob(1); // answered "not sent" below (its size says it would pass the budget)
    const absent = blob(7);
    const at = new Map<Digest, Buffer>(small.map((x) => [x.digest, x.data]));
    at.set(big.digest, big.data);
    const store = {
      async open(digest: Digest) {
        if (digest === streamed.digest)
          return {
            size: streamed.data.length,
            tier: 'disk',
            stream: (s: number, e: number) => Readable.from([streamed.data.subarray(s, e)]),
            close() {},
          };
        if (digest === tooBig.digest)
          return { size: 2 ** 31, tier: 'disk', stream: () => Readable.from([]), close() {} };
        const data = at.get(digest);
        return data ? bufferHandle(data, 'memory') : undefined;
      },
    };
    const order = [...small.slice(0, 150), big, absent, streamed, tooBig, ...small.slice(150)];
    const chunks: Buffer[] = [];
    for await (const c of batchBody(
      store as never,
      order.map((x) => x.digest),
      2 ** 30,
    ))
      chunks.push(Buffer.from(c));
    const wants = order.map((x) => ({ digest: x.digest, size: x === tooBig ? 1 : x.data.length }));
    const got: BatchRecord[] = [];
    await readBatchFrames([Buffer.concat(chunks)], wants, (r) => {
      got.push(r.status === 'present' ? { ...r, bytes: Buffer.from(r.bytes) } : r);
    });
    assert.deepEqual(
      got.map((r) => r.status),
      order.map((x) => (x === absent ? 'missing' : x === tooBig ? 'not-sent' : 'present')),
    );
    for (const [i, r] of got.entries()) if (r.status === 'present') assert.ok(r.bytes.equals(order[i].data));
    // ~230 KiB of 305 records: a handful of chunks, not two per record.
    assert.ok(chunks.length <= 12, `${chunks.length} chunks`);
  });
});
