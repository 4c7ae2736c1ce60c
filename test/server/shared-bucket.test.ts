// Two servers with separate disks sharing one bucket (Ceph RGW, s3://): a
// blob or ref written through one is readable through the other, and ref
// compare-and-set stays correct across them (the bucket decides).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { deletePrefix, randomPrefix, s3TestEnv } from '../remote/s3-env.ts';
import { startTestServer, type TestServer } from './helpers.ts';

describe('two servers sharing one bucket', () => {
  const { endpoint, bucket } = s3TestEnv();
  const prefix = randomPrefix('srv');
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    process.env.AWS_ENDPOINT_URL_S3 ??= endpoint;
    process.env.AWS_REGION ??= 'us-east-1';
    a = await startTestServer({ remote: `s3://${bucket}/${prefix}` });
    b = await startTestServer({ remote: `s3://${bucket}/${prefix}` });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    const client = new S3Client({ endpoint, region: process.env.AWS_REGION, forcePathStyle: true });
    await deletePrefix(client, bucket, prefix);
    client.destroy();
  });

  const blobUrl = (s: TestServer, hex: string) => `${s.url}/v1/blobs/sha256/${hex}`;
  const putRef = (s: TestServer, name: string, target: string, headers: Record<string, string>) =>
    fetch(`${s.url}/v1/refs/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ target }),
    });

  it('a blob PUT through A is acknowledged only once in the bucket, and B serves it (whole and ranged)', async () => {
    const data = randomBytes(300_000);
    const hex = hexOf(sha256(data));
    const res = await fetch(blobUrl(a, hex), { method: 'PUT', body: new Uint8Array(data) });
    assert.equal(res.status, 201);
    // Acknowledged means: already in the bucket.
    const bucketView = await openRemote(`s3://${bucket}/${prefix}`);
    assert.deepEqual(await bucketView.blobs.stat(sha256(data)), { digest: sha256(data), size: data.length });
    await bucketView.close();
    // B has never seen it: its first read is a range, passed down to the bucket.
    const ranged = await fetch(blobUrl(b, hex), { headers: { range: 'bytes=-100' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('x-hoard-tier'), 'shared');
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(data.length - 100)));
    const whole = await fetch(blobUrl(b, hex));
    assert.equal(whole.status, 200);
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(data));
    // A second PUT through B: already present.
    assert.equal((await fetch(blobUrl(b, hex), { method: 'PUT', body: new Uint8Array(data) })).status, 200);
    // missing agrees on both.
    for (const s of [a, b]) {
      const m = await fetch(`${s.url}/v1/blobs/missing`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ digests: [`sha256:${hex}`, sha256('absent')] }),
      });
      assert.deepEqual(await m.json(), { missing: [sha256('absent')] });
    }
  });

  it('refs written through one are read through the other; CAS is decided by the bucket', async () => {
    const d1 = randomBytes(100);
    const d2 = randomBytes(100);
    for (const d of [d1, d2])
      assert.equal(
        (await fetch(blobUrl(a, hexOf(sha256(d))), { method: 'PUT', body: new Uint8Array(d) })).status,
        201,
      );
    const t1 = sha256(d1);
    const t2 = sha256(d2);
    const created = await putRef(a, 'team/app/main', t1, { 'if-none-match': '*' });
    assert.equal(created.status, 201);
    const e1 = created.headers.get('etag') as string;
    // B sees it, with the same ETag.
    const viaB = await fetch(`${b.url}/v1/refs/team/app/main`);
    assert.equal(viaB.status, 200);
    assert.equal(viaB.headers.get('etag'), e1);
    assert.deepEqual(await viaB.json(), { target: t1 });
    // B cannot create it again; B updates with A's ETag; A's stale ETag then loses.
    assert.equal((await putRef(b, 'team/app/main', t2, { 'if-none-match': '*' })).status, 412);
    const upd = await putRef(b, 'team/app/main', t2, { 'if-match': e1 });
    assert.equal(upd.status, 200);
    assert.equal((await putRef(a, 'team/app/main', t1, { 'if-match': e1 })).status, 412);
    const viaA = await fetch(`${a.url}/v1/refs/team/app/main`);
    assert.deepEqual(await viaA.json(), { target: t2 });
    // Listing through either server.
    const list = (await (await fetch(`${a.url}/v1/refs?prefix=team/`)).json()) as {
      refs: { name: string }[];
    };
    assert.deepEqual(
      list.refs.map((r) => r.name),
      ['team/app/main'],
    );
  });

  it('concurrent creates through both servers: exactly one wins', async () => {
    const d = randomBytes(50);
    await fetch(blobUrl(a, hexOf(sha256(d))), { method: 'PUT', body: new Uint8Array(d) });
    const t = sha256(d);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => putRef(i % 2 ? a : b, 'race/one', t, { 'if-none-match': '*' })),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.equal(statuses.filter((s) => s === 201).length, 1, String(statuses));
    assert.ok(
      statuses.every((s) => s === 201 || s === 412),
      String(statuses),
    );
  });
});
