// The S3 remote against a real S3 server (Ceph RGW, started by scripts/test.sh).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import type { Remote } from '../../src/remote/remote.ts';
import { openRemote } from '../../src/remote/remote.ts';
import type { S3BlobStore } from '../../src/remote/s3-blob-store.ts';
import { isMultipartEtag, normalizeEtag } from '../../src/remote/s3-common.ts';
import { makeS3Client, openS3Remote, parseS3Url, type S3RemoteOptions } from '../../src/remote/s3-remote.ts';
import { blobStoreConformance } from '../store/blob-store-conformance.ts';
import { refStoreConformance } from '../store/ref-store-conformance.ts';
import { readAll } from '../support/streams.ts';
import { bucketStoreCases } from './bucket-cases.ts';
import { startFaultProxy } from './fault-proxy.ts';
import { deletePrefix, randomPrefix, s3TestEnv } from './s3-env.ts';

const MiB = 1024 * 1024;
// RGW, like S3, wants parts of at least 5 MiB (except the last).
const SMALL_MULTIPART = {
  multipartThresholdBytes: 5 * MiB,
  multipartPartBytes: 5 * MiB,
  multipartConcurrency: 2,
};

async function open(tag: string, opts: S3RemoteOptions = {}) {
  const { env, bucket } = s3TestEnv();
  const prefix = randomPrefix(tag);
  const remote = await openS3Remote(new URL(`s3://${bucket}/${prefix}`), { env, ...opts });
  const client = (remote.blobs as S3BlobStore).loc.client;
  return {
    remote,
    prefix,
    bucket,
    client,
    cleanup: async () => {
      await deletePrefix(client, bucket, `${prefix}/`);
      await remote.close();
    },
  };
}

blobStoreConformance(
  's3 (rgw, multipart above 5 MiB)',
  async () => {
    const fx = await open('blob', SMALL_MULTIPART);
    return { store: fx.remote.blobs, cleanup: fx.cleanup };
  },
  { largeBytes: 12 * MiB },
);

blobStoreConformance('s3 (rgw, default thresholds)', async () => {
  const fx = await open('blobd');
  return { store: fx.remote.blobs, cleanup: fx.cleanup };
});

refStoreConformance('s3 (rgw)', async () => {
  const fx = await open('ref');
  return { store: fx.remote.refs, cleanup: fx.cleanup };
});

describe('s3 remote', () => {
  it('parses URLs', () => {
    assert.deepEqual(parseS3Url(new URL('s3://my-bucket/a/b/')), { bucket: 'my-bucket', prefix: 'a/b/' });
    assert.deepEqual(parseS3Url(new URL('s3://my-bucket')), { bucket: 'my-bucket', prefix: '' });
    assert.throws(
      () => parseS3Url(new URL('s3://key:secret@bucket/x')),
      (e) => {
        assert.ok(isHoardError(e, 'HOARD_EREMOTE_URL'));
        assert.ok(!String(e.message).includes('secret'));
        return true;
      },
    );
    assert.throws(
      () => parseS3Url(new URL('s3://b/a/../c')),
      (e) => isHoardError(e, 'HOARD_EREMOTE_URL'),
    );
    assert.throws(
      () => parseS3Url(new URL('s3://x/')),
      (e) => isHoardError(e, 'HOARD_EREMOTE_URL'),
    );
  });

  it('path-style addressing: on with a custom endpoint, HOARD_S3_PATH_STYLE overrides', async () => {
    const style = (env: NodeJS.ProcessEnv) => {
      const c = makeS3Client({ AWS_REGION: 'us-east-1', ...env });
      const v = c.config.forcePathStyle;
      c.destroy();
      return v;
    };
    assert.equal(style({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' }), true);
    assert.equal(style({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9000' }), true);
    assert.equal(style({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', HOARD_S3_PATH_STYLE: '0' }), false);
    assert.equal(style({}), false);
    assert.equal(style({ HOARD_S3_PATH_STYLE: '1' }), true);
    assert.throws(
      () => style({ HOARD_S3_PATH_STYLE: 'yes' }),
      (e) => isHoardError(e, 'HOARD_ECONFIG'),
    );
  });

  it('normalises ETags and never takes a multipart ETag as a version', () => {
    assert.equal(normalizeEtag('"5d41402abc4b2a76b9719d911017c592"'), '5d41402abc4b2a76b9719d911017c592');
    assert.equal(normalizeEtag('W/"abc"'), 'abc');
    assert.equal(normalizeEtag('abc'), 'abc');
    assert.equal(normalizeEtag(' "abc" '), 'abc');
    assert.equal(normalizeEtag('"d41d8cd98f00b204e9800998ecf8427e-3"'), undefined);
    assert.equal(normalizeEtag(''), undefined);
    assert.equal(normalizeEtag('""'), undefined);
    assert.equal(normalizeEtag(undefined), undefined);
    assert.ok(isMultipartEtag('"abc-12"'));
    assert.ok(!isMultipartEtag('"abc"'));
  });

  it('opens through openRemote (s3:// scheme registered lazily)', async () => {
    const { env, bucket } = s3TestEnv();
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const remote = await openRemote(`s3://${bucket}/${randomPrefix('open')}`);
      assert.match(remote.url, /^s3:\/\//);
      await remote.close();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it('a missing bucket is a clear error naming it', async () => {
    const { env } = s3TestEnv();
    const name = `hoard-no-such-${randomBytes(4).toString('hex')}`;
    await assert.rejects(openS3Remote(new URL(`s3://${name}/p`), { env }), (e) => {
      assert.ok(isHoardError(e, 'HOARD_EREMOTE'), String(e));
      assert.match((e as Error).message, new RegExp(`bucket "${name}" does not exist`));
      assert.ok(!(e as Error).message.includes(env.AWS_SECRET_ACCESS_KEY ?? 'hoardtestsecret'));
      return true;
    });
  });

  it('wrong credentials give a clear error without the secret', async () => {
    const { env, bucket } = s3TestEnv();
    const bad = { ...env, AWS_ACCESS_KEY_ID: 'nobody', AWS_SECRET_ACCESS_KEY: 'topsecret-do-not-print' };
    await assert.rejects(openS3Remote(new URL(`s3://${bucket}/p`), { env: bad }), (e) => {
      assert.ok(isHoardError(e), String(e));
      assert.match((e as Error).message, new RegExp(bucket));
      assert.ok(!(e as Error).message.includes('topsecret'));
      return true;
    });
  });

  it('a multipart body with a wrong digest leaves nothing: no object, no pending upload', async () => {
    const fx = await open('wrongmp', SMALL_MULTIPART);
    try {
      const data = randomBytes(11 * MiB);
      const wrong = sha256('not these bytes');
      const chunks = Array.from({ length: 11 }, (_, i) => data.subarray(i * MiB, (i + 1) * MiB));
      await assert.rejects(fx.remote.blobs.write(wrong, Readable.from(chunks)), (e) =>
        isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
      );
      assert.equal(await fx.remote.blobs.has(wrong), false);
      const listed = await fx.client.send(
        new ListObjectsV2Command({ Bucket: fx.bucket, Prefix: `${fx.prefix}/` }),
      );
      assert.equal(listed.KeyCount ?? 0, 0);
      const uploads = await fx.client.send(
        new ListMultipartUploadsCommand({ Bucket: fx.bucket, Prefix: `${fx.prefix}/` }),
      );
      assert.equal((uploads.Uploads ?? []).length, 0);
      // A short multipart body is refused too.
      const right = sha256(data);
      await assert.rejects(
        fx.remote.blobs.write(right, Readable.from(chunks.slice(0, 8)), { size: data.length }),
      );
      assert.equal(await fx.remote.blobs.has(right), false);
    } finally {
      await fx.cleanup();
    }
  });

  it('a full read of a corrupted object fails at the end; a ranged read is served as stored', async () => {
    const fx = await open('corrupt');
    try {
      const data = randomBytes(5000);
      const digest = sha256(data);
      // Put other bytes at the blob's key behind the store's back.
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      const key = (fx.remote.blobs as S3BlobStore).layout.blobKey(digest);
      await fx.client.send(new PutObjectCommand({ Bucket: fx.bucket, Key: key, Body: randomBytes(5000) }));
      await assert.rejects(
        async () => readAll(await fx.remote.blobs.read(digest)),
        (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
      );
      assert.equal(
        (await readAll(await fx.remote.blobs.read(digest, { offset: 10, length: 10 }))).length,
        10,
      );
    } finally {
      await fx.cleanup();
    }
  });

  bucketStoreCases(open, (prefix) =>
    openS3Remote(new URL(`s3://${s3TestEnv().bucket}/${prefix}`), { env: s3TestEnv().env }),
  );

  it('retries 503 with backoff and then succeeds; never retries 412', async () => {
    const { env, endpoint, bucket } = s3TestEnv();
    let failPuts = 2;
    const proxy = await startFaultProxy(endpoint, (req) => {
      if (req.method === 'PUT' && failPuts > 0) {
        failPuts--;
        return 503;
      }
      return undefined;
    });
    const prefix = randomPrefix('retry');
    const remote = await openS3Remote(new URL(`s3://${bucket}/${prefix}`), {
      env: { ...env, AWS_ENDPOINT_URL_S3: proxy.url },
    });
    try {
      const data = Buffer.from('retry me');
      const res = await remote.blobs.write(sha256(data), Readable.from([data]));
      assert.equal(res.created, true);
      const puts = proxy.requests.filter((r) => r.method === 'PUT');
      assert.deepEqual(
        puts.map((r) => r.status),
        [503, 503, 200],
      );
      // A lost compare-and-set is an answer: exactly one PUT, no retry.
      const v = await remote.refs.set('r', sha256('a'), null);
      const before = proxy.requests.filter((r) => r.method === 'PUT').length;
      await assert.rejects(remote.refs.set('r', sha256('b'), null), (e) =>
        isHoardError(e, 'HOARD_EREF_CONFLICT'),
      );
      const putsAfter = proxy.requests.filter((r) => r.method === 'PUT').slice(before);
      assert.deepEqual(
        putsAfter.map((r) => r.status),
        [412],
      );
      await remote.refs.delete('r', v.version);
    } finally {
      await deletePrefix((remote.blobs as S3BlobStore).loc.client, bucket, `${prefix}/`);
      await remote.close();
      await proxy.close();
    }
  });

  it('a multipart upload that fails midway is aborted: no object, no pending upload', async () => {
    const { env, endpoint, bucket } = s3TestEnv();
    let parts = 0;
    const proxy = await startFaultProxy(endpoint, (req) => {
      if (req.method === 'PUT' && req.url?.includes('partNumber=') && ++parts === 2) return 403;
      return undefined;
    });
    const prefix = randomPrefix('mpfail');
    const remote = await openS3Remote(new URL(`s3://${bucket}/${prefix}`), {
      env: { ...env, AWS_ENDPOINT_URL_S3: proxy.url },
      ...SMALL_MULTIPART,
    });
    const client = (remote.blobs as S3BlobStore).loc.client;
    try {
      const data = randomBytes(16 * MiB);
      await assert.rejects(
        remote.blobs.write(sha256(data), Readable.from([data]), { size: data.length }),
        (e) => isHoardError(e, 'HOARD_EFORBIDDEN'),
      );
      assert.equal(await remote.blobs.has(sha256(data)), false);
      const uploads = await client.send(
        new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/` }),
      );
      assert.equal((uploads.Uploads ?? []).length, 0);
    } finally {
      await deletePrefix(client, bucket, `${prefix}/`);
      await remote.close();
      await proxy.close();
    }
  });

  it('a ref write whose answer was lost is recognised as ours on retry', async () => {
    const { env, endpoint, bucket } = s3TestEnv();
    let dropNextPutAnswer = false;
    // Forward the PUT, but answer the client with a 500 instead of RGW's 200.
    const { request } = await import('node:http');
    const { createServer } = await import('node:http');
    const t = new URL(endpoint);
    const server = createServer((req, res) => {
      const drop = req.method === 'PUT' && dropNextPutAnswer;
      if (drop) dropNextPutAnswer = false;
      const up = request(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
        (u) => {
          if (drop) {
            u.resume();
            res.writeHead(500);
            res.end('<Error><Code>InternalError</Code></Error>');
            return;
          }
          res.writeHead(u.statusCode ?? 502, u.headers);
          u.pipe(res);
        },
      );
      req.pipe(up);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const prefix = randomPrefix('lost');
    const remote = await openS3Remote(new URL(`s3://${bucket}/${prefix}`), {
      env: { ...env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}` },
    });
    try {
      const v1 = await remote.refs.set('x', sha256('1'), null);
      dropNextPutAnswer = true;
      const v2 = await remote.refs.set('x', sha256('2'), v1.version);
      assert.deepEqual(await remote.refs.get('x'), v2);
      dropNextPutAnswer = true;
      const v3 = await remote.refs.set('y', sha256('3'), null);
      assert.deepEqual(await remote.refs.get('y'), v3);
    } finally {
      await deletePrefix((remote.blobs as S3BlobStore).loc.client, bucket, `${prefix}/`);
      await remote.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    }
  });

  it('an AbortSignal cancels a retrying operation', async () => {
    const { env, endpoint, bucket } = s3TestEnv();
    const proxy = await startFaultProxy(endpoint, (req) =>
      req.method === 'HEAD' && req.url?.includes('/blobs/') ? 503 : undefined,
    );
    const remote = await openS3Remote(new URL(`s3://${bucket}/${randomPrefix('abort')}`), {
      env: { ...env, AWS_ENDPOINT_URL_S3: proxy.url },
    });
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      const t0 = Date.now();
      await assert.rejects(remote.blobs.has(sha256('x'), ac.signal), (e) =>
        isHoardError(e, 'HOARD_EABORTED'),
      );
      assert.ok(Date.now() - t0 < 2000);
    } finally {
      await remote.close();
      await proxy.close();
    }
  });

  it('gives up after the retries with an error naming bucket and key', async () => {
    const { env, endpoint, bucket } = s3TestEnv();
    const proxy = await startFaultProxy(endpoint, (req) =>
      req.method === 'GET' && req.url?.includes('/refs/') ? 503 : undefined,
    );
    const remote: Remote = await openS3Remote(new URL(`s3://${bucket}/${randomPrefix('giveup')}`), {
      env: { ...env, AWS_ENDPOINT_URL_S3: proxy.url },
      retries: 2,
    });
    try {
      await assert.rejects(remote.refs.get('some/ref'), (e) => {
        assert.ok(isHoardError(e, 'HOARD_EUNAVAILABLE'), String(e));
        assert.match((e as Error).message, new RegExp(`s3://${bucket}/.*refs/some/ref`));
        return true;
      });
      assert.equal(proxy.requests.filter((r) => r.method === 'GET').length, 3);
    } finally {
      await remote.close();
      await proxy.close();
    }
  });
});
