// The GCS remote against our GCS emulator (test/support/gcs-emulator), driven
// through the official client. GCS itself is not contacted.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import type { GcsBlobStore } from '../../src/remote/gcs-blob-store.ts';
import { type GcsRemoteOptions, openGcsRemote, parseGcsUrl } from '../../src/remote/gcs-remote.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { blobStoreConformance } from '../store/blob-store-conformance.ts';
import { refStoreConformance } from '../store/ref-store-conformance.ts';
import { type GcsEmulator, startGcsEmulator } from '../support/gcs-emulator/index.ts';
import { readAll } from '../support/streams.ts';
import { bucketStoreCases } from './bucket-cases.ts';
import { startFaultProxy } from './fault-proxy.ts';
import { randomPrefix } from './s3-env.ts';

const BUCKET = 'hoard-test';
const MiB = 1024 * 1024;
let emu: GcsEmulator;

before(async () => {
  emu = await startGcsEmulator({ buckets: [BUCKET] });
});
after(async () => {
  await emu.close();
});

async function open(tag: string, opts: GcsRemoteOptions = {}) {
  const prefix = randomPrefix(tag);
  const remote = await openGcsRemote(new URL(`gs://${BUCKET}/${prefix}`), { apiEndpoint: emu.url, ...opts });
  return { remote, prefix, cleanup: () => remote.close() };
}

blobStoreConformance(
  'gcs (emulator, resumable above 1 MiB)',
  async () => {
    const fx = await open('blob', { multipartThresholdBytes: MiB });
    return { store: fx.remote.blobs, cleanup: fx.cleanup };
  },
  { largeBytes: 3 * MiB },
);

blobStoreConformance('gcs (emulator, default thresholds)', async () => {
  const fx = await open('blobd');
  return { store: fx.remote.blobs, cleanup: fx.cleanup };
});

refStoreConformance('gcs (emulator)', async () => {
  const fx = await open('ref');
  return { store: fx.remote.refs, cleanup: fx.cleanup };
});

describe('gcs remote', () => {
  it('parses URLs', () => {
    assert.deepEqual(parseGcsUrl(new URL('gs://my-bucket/a/b')), { bucket: 'my-bucket', prefix: 'a/b/' });
    assert.deepEqual(parseGcsUrl(new URL('gs://my-bucket')), { bucket: 'my-bucket', prefix: '' });
    assert.throws(
      () => parseGcsUrl(new URL('gs://u:pw@b-b/x')),
      (e) => isHoardError(e, 'HOARD_EREMOTE_URL'),
    );
    assert.throws(
      () => parseGcsUrl(new URL('gs://bb/a/../c')),
      (e) => isHoardError(e, 'HOARD_EREMOTE_URL'),
    );
  });

  it('honours STORAGE_EMULATOR_HOST through openRemote', async () => {
    const saved = process.env.STORAGE_EMULATOR_HOST;
    process.env.STORAGE_EMULATOR_HOST = emu.url;
    try {
      const remote = await openRemote(`gs://${BUCKET}/${randomPrefix('env')}`);
      const data = Buffer.from('via env');
      assert.equal((await remote.blobs.write(sha256(data), Readable.from([data]))).created, true);
      assert.deepEqual(await readAll(await remote.blobs.read(sha256(data))), data);
      await remote.close();
    } finally {
      if (saved === undefined) delete process.env.STORAGE_EMULATOR_HOST;
      else process.env.STORAGE_EMULATOR_HOST = saved;
    }
  });

  it('a missing bucket is a clear error naming it', async () => {
    await assert.rejects(
      openGcsRemote(new URL('gs://no-such-bucket-here/p'), { apiEndpoint: emu.url }),
      (e) => {
        assert.ok(isHoardError(e, 'HOARD_EREMOTE'), String(e));
        assert.match((e as Error).message, /bucket "no-such-bucket-here" does not exist/);
        return true;
      },
    );
  });

  it('a resumable body with a wrong digest leaves nothing', async () => {
    const fx = await open('wrong', { multipartThresholdBytes: MiB });
    try {
      const data = randomBytes(3 * MiB);
      const wrong = sha256('not these bytes');
      const chunks = Array.from({ length: 12 }, (_, i) =>
        data.subarray(i * 256 * 1024, (i + 1) * 256 * 1024),
      );
      await assert.rejects(fx.remote.blobs.write(wrong, Readable.from(chunks)), (e) =>
        isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
      );
      // And with the declared size right: the uploader never gets the last chunk.
      await assert.rejects(fx.remote.blobs.write(wrong, Readable.from(chunks), { size: data.length }), (e) =>
        isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
      );
      assert.equal(await fx.remote.blobs.has(wrong), false);
      const listed = [];
      for await (const b of fx.remote.blobs.list()) listed.push(b);
      assert.deepEqual(listed, []);
    } finally {
      await fx.cleanup();
    }
  });

  bucketStoreCases(open, (prefix) =>
    openGcsRemote(new URL(`gs://${BUCKET}/${prefix}`), { apiEndpoint: emu.url }),
  );

  it('retries 503 and then succeeds; a lost CAS is not retried', async () => {
    let fail = 2;
    const proxy = await startFaultProxy(emu.url, (req) => {
      if (req.method === 'GET' && req.url?.includes('/o/') && !req.url.includes('alt=media') && fail > 0) {
        fail--;
        return 503;
      }
      return undefined;
    });
    try {
      const prefix = randomPrefix('retry');
      const remote = await openGcsRemote(new URL(`gs://${BUCKET}/${prefix}`), { apiEndpoint: proxy.url });
      const d = sha256('x');
      assert.equal(await remote.blobs.has(d), false);
      assert.deepEqual(
        proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/o/')).map((r) => r.status),
        [503, 503, 404],
      );
      await remote.refs.set('r', d, null);
      const before = proxy.requests.length;
      await assert.rejects(remote.refs.set('r', sha256('y'), null), (e) =>
        isHoardError(e, 'HOARD_EREF_CONFLICT'),
      );
      assert.deepEqual(
        proxy.requests.slice(before).map((r) => r.status),
        [412],
      );
    } finally {
      await proxy.close();
    }
  });

  it('a ref write whose answer was lost is recognised as ours on retry', async () => {
    const { createServer, request } = await import('node:http');
    const t = new URL(emu.url);
    let dropNextUploadAnswer = false;
    // Forwards everything, but answers one upload with a 503 after the emulator stored it.
    const server = createServer((req, res) => {
      const drop = req.method === 'POST' && req.url?.startsWith('/upload/') && dropNextUploadAnswer;
      if (drop) dropNextUploadAnswer = false;
      const up = request(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
        (u) => {
          if (drop) {
            u.resume();
            res.writeHead(503, { 'content-type': 'application/json' });
            res.end('{"error":{"code":503,"message":"injected"}}');
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
    try {
      const remote = await openGcsRemote(new URL(`gs://${BUCKET}/${randomPrefix('lost')}`), {
        apiEndpoint: `http://127.0.0.1:${port}`,
      });
      const v1 = await remote.refs.set('x', sha256('1'), null);
      dropNextUploadAnswer = true;
      const v2 = await remote.refs.set('x', sha256('2'), v1.version);
      assert.equal(dropNextUploadAnswer, false, 'the answer was dropped');
      assert.deepEqual(await remote.refs.get('x'), v2);
      dropNextUploadAnswer = true;
      const v3 = await remote.refs.set('y', sha256('3'), null);
      assert.deepEqual(await remote.refs.get('y'), v3);
    } finally {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    }
  });

  it('an AbortSignal cancels a retrying operation', async () => {
    const proxy = await startFaultProxy(emu.url, (req) =>
      /blobs(%2f|\/)/i.test(req.url ?? '') ? 503 : undefined,
    );
    try {
      const remote = await openGcsRemote(new URL(`gs://${BUCKET}/${randomPrefix('abort')}`), {
        apiEndpoint: proxy.url,
      });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 50);
      const t0 = Date.now();
      await assert.rejects(remote.blobs.has(sha256('x'), ac.signal), (e) =>
        isHoardError(e, 'HOARD_EABORTED'),
      );
      assert.ok(Date.now() - t0 < 2000);
    } finally {
      await proxy.close();
    }
  });

  it('versions are generations, never 0', async () => {
    const fx = await open('gen');
    try {
      const v = await fx.remote.refs.set('a', sha256('1'), null);
      assert.match(v.version, /^[1-9][0-9]*$/);
      await assert.rejects(fx.remote.refs.set('a', sha256('2'), '0'), (e) =>
        isHoardError(e, 'HOARD_EREF_CONFLICT'),
      );
      await assert.rejects(fx.remote.refs.delete('a', '0'), (e) => isHoardError(e, 'HOARD_EREF_CONFLICT'));
      assert.equal((await fx.remote.refs.get('a'))?.target, sha256('1'));
      const store = fx.remote.blobs as GcsBlobStore;
      assert.equal(store.loc.name, BUCKET);
    } finally {
      await fx.cleanup();
    }
  });
});
