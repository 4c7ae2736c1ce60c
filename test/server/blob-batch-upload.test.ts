// POST /v1/blobs/batch-upload against a real server: blobs stored in every
// tier and reported in order (created or already there, duplicates, empty
// blobs), the disk bound counting them, the shared tier holding them before
// the answer; hostile bodies (bad magic, bad status, lengths over the record
// and request bounds, a digest that lies, a body cut inside a record, too
// many records, none) refused with nothing unverified stored; a client that
// drops the connection mid-record; and the auth matrix.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BatchStatus,
  RECORD_HEAD_BYTES,
  recordHead,
  UPLOAD_CONTENT_TYPE,
  UPLOAD_MAGIC,
  uploadFrames,
} from '../../src/core/blob-batch-frame.ts';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { type TestToken, writeTokensFile } from '../support/tokens.ts';
import { waitUntil } from '../support/wait.ts';
import { startTestServer, startWithCountingShared, type TestServer } from './helpers.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data), bytes: data };
};

const upload = (srv: { url: string }, body: Buffer | Buffer[], headers: Record<string, string> = {}) =>
  fetch(`${srv.url}/v1/blobs/batch-upload`, {
    method: 'POST',
    headers: { 'content-type': UPLOAD_CONTENT_TYPE, ...headers },
    body: new Uint8Array(Array.isArray(body) ? Buffer.concat(body) : body),
  });

async function get(srv: { url: string }, digest: Digest, headers: Record<string, string> = {}) {
  return fetch(`${srv.url}/v1/blobs/sha256/${hexOf(digest)}`, { headers });
}

async function code(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

const onDisk = (srv: TestServer, d: Digest) => existsSync(FsBlobStore.pathIn(srv.dataDir, d));

describe('POST /v1/blobs/batch-upload', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ maxBatchBytes: '200KiB' });
  });
  after(() => srv?.close());

  it('stores every blob, answers them in order with created, and each is served afterwards', async () => {
    const known = blob(500);
    const put = await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(known.digest)}`, {
      method: 'PUT',
      body: new Uint8Array(known.data),
    });
    assert.equal(put.status, 201);
    const a = blob(1000);
    const b = blob(64 * 1024);
    const empty = blob(0);
    const sent = [a, known, b, empty, a];
    const res = await upload(srv, uploadFrames(sent));
    assert.equal(res.status, 200);
    const body = (await res.json()) as { blobs: { digest: Digest; size: number; created: boolean }[] };
    assert.deepEqual(body.blobs, [
      { digest: a.digest, size: 1000, created: true },
      { digest: known.digest, size: 500, created: false },
      { digest: b.digest, size: 64 * 1024, created: true },
      { digest: empty.digest, size: 0, created: true },
      { digest: a.digest, size: 1000, created: false },
    ]);
    for (const x of [a, b, empty, known]) {
      const g = await get(srv, x.digest);
      assert.equal(g.status, 200);
      assert.deepEqual(Buffer.from(await g.arrayBuffer()), x.data);
    }
    const missing = await fetch(`${srv.url}/v1/blobs/missing`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ digests: sent.map((x) => x.digest) }),
    });
    assert.deepEqual(await missing.json(), { missing: [] });
    assert.deepEqual(readdirSync(join(srv.dataDir, 'tmp')), [], 'no temp file left behind');
  });

  const bad: [string, () => Buffer, number, string][] = [
    [
      'bad magic',
      () => Buffer.concat([Buffer.from('HOARDBB1'), ...uploadFrames([blob(10)]).slice(1)]),
      400,
      'HOARD_EBAD_REQUEST',
    ],
    [
      'a status other than present',
      () => {
        const x = blob(10);
        return Buffer.concat([UPLOAD_MAGIC, recordHead(x.digest, BatchStatus.missing, 0)]);
      },
      400,
      'HOARD_EBAD_REQUEST',
    ],
    [
      'a record over the per-blob bound',
      () =>
        Buffer.concat([UPLOAD_MAGIC, recordHead(blob(1).digest, 0, DEFAULTS.blobUploadRecordMaxBytes + 1)]),
      413,
      'HOARD_ETOO_LARGE',
    ],
    [
      'more bytes than --max-batch-bytes',
      () => Buffer.concat(uploadFrames([blob(150 * 1024), blob(60 * 1024)])),
      413,
      'HOARD_ETOO_LARGE',
    ],
    [
      'bytes that are not their digest',
      () => {
        const x = blob(100);
        return Buffer.concat([UPLOAD_MAGIC, recordHead(blob(100).digest, 0, 100), x.data]);
      },
      400,
      'HOARD_EDIGEST_MISMATCH',
    ],
    [
      'a body cut inside a record',
      () => {
        const x = blob(100);
        return Buffer.concat([UPLOAD_MAGIC, recordHead(x.digest, 0, 100), x.data.subarray(0, 60)]);
      },
      400,
      'HOARD_ETRUNCATED',
    ],
    [
      'a body cut inside a head',
      () => Buffer.concat([UPLOAD_MAGIC, recordHead(blob(3).digest, 0, 3).subarray(0, 20)]),
      400,
      'HOARD_ETRUNCATED',
    ],
    ['no records', () => UPLOAD_MAGIC, 400, 'HOARD_EBAD_REQUEST'],
    ['an empty body', () => Buffer.alloc(0), 400, 'HOARD_ETRUNCATED'],
    [
      'too many records',
      () => {
        const empty = sha256(Buffer.alloc(0));
        return Buffer.concat([
          UPLOAD_MAGIC,
          ...Array.from({ length: DEFAULTS.blobBatchMaxDigests + 1 }, () => recordHead(empty, 0, 0)),
        ]);
      },
      400,
      'HOARD_EBAD_REQUEST',
    ],
  ];
  for (const [what, make, status, errCode] of bad) {
    it(`refuses ${what} (${status} ${errCode}); a good record before it is stored, nothing unverified`, async () => {
      const good = blob(200);
      const body = make();
      // The good record goes first (after the magic) when the body has one.
      const framed =
        body.length >= UPLOAD_MAGIC.length && body.subarray(0, 8).equals(UPLOAD_MAGIC)
          ? Buffer.concat([UPLOAD_MAGIC, recordHead(good.digest, 0, 200), good.data, body.subarray(8)])
          : body;
      const withGood = framed !== body;
      // "no records" with a good record first is a valid upload: keep it bare.
      const sent = what === 'no records' ? body : framed;
      const res = await upload(srv, sent);
      assert.equal(res.status, status, what);
      assert.equal(await code(res), errCode, what);
      if (withGood && what !== 'no records')
        assert.equal(onDisk(srv, good.digest), true, `${what}: verified record kept`);
      if (what === 'bytes that are not their digest') {
        // The lying record's digest names other bytes: it must not be there.
        const lied = sent
          .subarray(8 + RECORD_HEAD_BYTES + 200, 8 + RECORD_HEAD_BYTES + 200 + 32)
          .toString('hex');
        assert.equal(onDisk(srv, `sha256:${lied}` as Digest), false);
      }
      if (what === 'a body cut inside a record') {
        const cut = sent
          .subarray(8 + RECORD_HEAD_BYTES + 200, 8 + RECORD_HEAD_BYTES + 200 + 32)
          .toString('hex');
        assert.equal(onDisk(srv, `sha256:${cut}` as Digest), false);
      }
      // The server still answers.
      assert.equal((await get(srv, good.digest)).status, withGood && what !== 'no records' ? 200 : 404);
    });
  }

  it('a client that drops the connection inside a record: nothing of that record is stored, the server goes on', async () => {
    const whole = blob(3000);
    const partial = blob(500_000);
    const u = new URL(`${srv.url}/v1/blobs/batch-upload`);
    await new Promise<void>((resolve) => {
      const req = request({
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': UPLOAD_CONTENT_TYPE, 'content-length': String(1_000_000) },
      });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.write(Buffer.concat([UPLOAD_MAGIC, recordHead(whole.digest, 0, 3000), whole.data]));
      req.write(
        Buffer.concat([recordHead(partial.digest, 0, 500_000), partial.data.subarray(0, 100_000)]),
        () => {
          req.destroy();
        },
      );
    });
    await waitUntil(() => onDisk(srv, whole.digest), 'the whole record published');
    assert.equal(onDisk(srv, partial.digest), false);
    const again = blob(10);
    assert.equal((await upload(srv, uploadFrames([again]))).status, 200);
  });

  it('with --max-disk: blobs counted in the disk bound', async () => {
    const bounded = await startTestServer({ maxDisk: '10MiB' });
    try {
      const xs = Array.from({ length: 20 }, () => blob(4096));
      assert.equal((await upload(bounded, uploadFrames(xs))).status, 200);
      assert.equal(bounded.server.index?.count, 20);
      assert.equal(bounded.server.index?.bytes, 20 * 4096);
    } finally {
      await bounded.close();
    }
  });
});

describe('POST /v1/blobs/batch-upload with a shared tier', () => {
  it('answers only once the shared (authoritative) tier has every blob; created says what it lacked', async () => {
    const srv = await startWithCountingShared();
    try {
      const first = blob(100);
      await srv.shared.write(first.digest, [first.data], { size: 100 });
      const xs = [first, blob(2000), blob(0)];
      const res = await upload(srv, uploadFrames(xs));
      assert.equal(res.status, 200);
      const body = (await res.json()) as { blobs: { created: boolean }[] };
      assert.deepEqual(
        body.blobs.map((b) => b.created),
        [false, true, true],
      );
      for (const x of xs) assert.equal(await srv.shared.has(x.digest), true);
    } finally {
      await srv.close();
    }
  });
});

describe('POST /v1/blobs/batch-upload auth', () => {
  const TOKENS: TestToken[] = [
    { name: 'reader', token: 'read-secret', scopes: ['read'] },
    { name: 'writer', token: 'write-secret', scopes: ['read', 'write'] },
    { name: 'deployer', token: 'deploy-secret', scopes: ['write'], refs: ['deploy/'] },
  ];
  let dir: string;
  let srv: TestServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-upload-auth-'));
    srv = await startTestServer({ tokens: await writeTokensFile(dir, TOKENS), publicRead: true });
  });
  after(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  it('no token or a wrong one: 401; a read token: 403; nothing stored', async () => {
    for (const [h, status, c] of [
      [{}, 401, 'HOARD_EUNAUTHORIZED'],
      [bearer('nope'), 401, 'HOARD_EUNAUTHORIZED'],
      [bearer('read-secret'), 403, 'HOARD_EFORBIDDEN'],
    ] as const) {
      const x = blob(50);
      const res = await upload(srv, uploadFrames([x]), h);
      assert.equal(res.status, status);
      assert.equal(await code(res), c);
      assert.equal(onDisk(srv, x.digest), false);
    }
  });

  it('a write token, and one whose refs are limited to another namespace, may upload blobs (as PUT allows)', async () => {
    for (const t of ['write-secret', 'deploy-secret']) {
      const x = blob(50);
      const single = blob(50);
      const put = await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(single.digest)}`, {
        method: 'PUT',
        body: new Uint8Array(single.data),
        headers: bearer(t),
      });
      const res = await upload(srv, uploadFrames([x]), bearer(t));
      assert.equal(res.status, 200, t);
      assert.equal(put.status, 201, t);
      assert.equal(onDisk(srv, x.digest), true, t);
    }
  });
});
