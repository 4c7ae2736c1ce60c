// The http(s):// remote's transport: transient failures (503, resets) are
// retried with backoff; 4xx answers are not; a stale CAS is a conflict, not a
// retry; HOARD_TOKEN is sent as a bearer token and never appears in errors.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { openHttpRemote } from '../../src/remote/http-remote.ts';
import { startTestServer } from '../server/helpers.ts';
import { readAll } from '../support/streams.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { startFaultProxy } from './fault-proxy.ts';

describe('http remote transport', () => {
  it('retries 503s and connection resets, then succeeds', async () => {
    const srv = await startTestServer();
    let n = 0;
    const proxy = await startFaultProxy(srv.url, () => {
      n++;
      if (n % 3 === 1) return 503;
      if (n % 3 === 2) return 'reset';
      return undefined;
    });
    try {
      const remote = openHttpRemote(new URL(proxy.url));
      const data = randomBytes(5000);
      const d = sha256(data);
      // Buffer-backed requests are retried (HEAD, GET, POST missing).
      assert.deepEqual(await remote.blobs.missing([d]), [d]);
      assert.equal(await remote.blobs.has(d), false);
      // A streamed upload is retried while nothing was taken from its source.
      const res = await remote.blobs.write(d, Readable.from([data]), { size: data.length });
      assert.equal(res.created, true);
      assert.deepEqual(await readAll(await remote.blobs.read(d)), data);
      assert.ok(proxy.requests.some((r) => r.status === 503));
      assert.ok(proxy.requests.some((r) => r.status === -1));
    } finally {
      await proxy.close();
      await srv.close();
    }
  });

  it('does not retry 4xx answers; a stale CAS is a conflict', async () => {
    const srv = await startTestServer();
    const proxy = await startFaultProxy(srv.url, () => undefined);
    try {
      const remote = openHttpRemote(new URL(proxy.url));
      const data = Buffer.from('x');
      await remote.blobs.write(sha256(data), Readable.from([data]));
      const before = proxy.requests.length;
      await assert.rejects(remote.refs.set('a/b', sha256('absent'), null), (e) =>
        isHoardError(e, 'HOARD_EREF_TARGET_MISSING'),
      );
      assert.equal(proxy.requests.length, before + 1);
      const v = await remote.refs.set('a/b', sha256(data), null);
      await remote.refs.set('a/b', sha256(data), v.version);
      const n = proxy.requests.length;
      await assert.rejects(remote.refs.set('a/b', sha256(data), v.version), (e) =>
        isHoardError(e, 'HOARD_EREF_CONFLICT'),
      );
      assert.equal(proxy.requests.length, n + 1);
    } finally {
      await proxy.close();
      await srv.close();
    }
  });

  it('sends HOARD_TOKEN as a bearer token; errors never show it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-token-'));
    const tokens = await writeTokensFile(dir, [
      { name: 'ci', token: 'sekrit-token-123', scopes: ['read', 'write'] },
    ]);
    const srv = await startTestServer({ tokens });
    try {
      const data = randomBytes(100);
      const good = openHttpRemote(new URL(srv.url), 'sekrit-token-123');
      assert.equal((await good.blobs.write(sha256(data), Readable.from([data]))).created, true);
      const saved = process.env.HOARD_TOKEN;
      process.env.HOARD_TOKEN = 'sekrit-token-123';
      try {
        assert.equal(await openHttpRemote(new URL(srv.url)).blobs.has(sha256(data)), true);
      } finally {
        if (saved === undefined) delete process.env.HOARD_TOKEN;
        else process.env.HOARD_TOKEN = saved;
      }
      const bad = openHttpRemote(new URL(srv.url), 'wrong-token-456');
      await assert.rejects(bad.blobs.has(sha256(data)), (e) => {
        assert.ok(isHoardError(e, 'HOARD_EUNAUTHORIZED'));
        assert.ok(!String((e as Error).message).includes('wrong-token-456'));
        return true;
      });
    } finally {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
