// Connection limits of `hoard serve` (issue 11): idle half-sent requests are
// closed within the header timeout and never take every descriptor, so the
// server keeps serving; a request body that stops arriving is cut, one that
// keeps arriving slowly is not.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { resolveMaxConnections } from '../../src/server/connection-limits.ts';
import { type ServeChild, serveChild } from '../support/serve-child.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { waitUntil } from '../support/wait.ts';
import { tempDir } from '../sync/helpers.ts';
import { startTestServer, type TestServer } from './helpers.ts';

const TOKEN = 'conn-limits-secret-token';

/** `hoard serve` as a child process with its descriptor limit set to `nofile` (soft and hard). */
function serveLimited(nofile: number, dataDir: string, ...extra: string[]): Promise<ServeChild> {
  const tokens = join(dataDir, '..', 'tokens.toml');
  return serveChild(
    dataDir,
    ['--tokens', tokens, ...extra],
    ['prlimit', `--nofile=${nofile}:${nofile}`, '--'],
  );
}

interface Attack {
  sockets: Socket[];
  /** Resolves when every socket has closed; rejects after `boundMs`. */
  allClosed(boundMs: number): Promise<number[]>;
  closedCount(): number;
  destroy(): void;
}

/** Opens `n` connections that each send part of a request head and then go silent. */
async function halfSentRequests(url: string, n: number): Promise<Attack> {
  const { hostname, port } = new URL(url);
  const start = Date.now();
  const closedAt: number[] = [];
  const closed: Promise<void>[] = [];
  const connected: Promise<void>[] = [];
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect(Number(port), hostname);
    sockets.push(s);
    s.on('error', () => {}); // the server may reset the ones over its connection limit
    s.on('data', () => {}); // a 408 may come before the close
    connected.push(
      new Promise((resolve) => {
        s.once('connect', () => {
          s.write(`PUT /v1/blobs/sha256/${'0'.repeat(64)} HTTP/1.1\r\nHost: x\r\nAuthoriz`);
          resolve();
        });
        s.once('close', () => resolve());
      }),
    );
    closed.push(
      new Promise((resolve) =>
        s.once('close', () => {
          closedAt.push(Date.now() - start);
          resolve();
        }),
      ),
    );
  }
  await Promise.all(connected);
  return {
    sockets,
    closedCount: () => closedAt.length,
    allClosed(boundMs) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`${n - closedAt.length} of ${n} connections still open after ${boundMs} ms`)),
          boundMs,
        );
      });
      return Promise.race([Promise.all(closed).then(() => closedAt), bound]).finally(() =>
        clearTimeout(timer),
      );
    },
    destroy: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

/** Health check, then an authenticated blob PUT and GET. */
async function serves(url: string): Promise<void> {
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
  const data = randomBytes(64 * 1024);
  const blobUrl = `${url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const put = await fetch(blobUrl, {
    method: 'PUT',
    body: data,
    headers: { ...auth, 'content-type': 'application/octet-stream' },
  });
  assert.ok(put.status === 201 || put.status === 200, `PUT answered ${put.status}`);
  const got = await fetch(blobUrl, { headers: auth });
  assert.equal(got.status, 200);
  assert.ok(Buffer.from(await got.arrayBuffer()).equals(data));
}

describe('hoard serve connection limits (real server, limited descriptors)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await tempDir('hoard-conn-');
    await writeTokensFile(tmp.dir, [{ name: 'ci', token: TOKEN, scopes: ['read', 'write'] }]);
  });
  after(() => tmp.cleanup());

  it('300 idle half-sent requests under a 256-descriptor limit are closed within the header timeout; then the server serves', async () => {
    const headersTimeoutMs = 2_000;
    const p = await serveLimited(256, join(tmp.dir, 'data-256'), '--headers-timeout', '2s');
    const attack = await halfSentRequests(p.url, 300);
    try {
      // Check interval is a quarter of the timeout (500 ms); a generous margin for a loaded machine.
      const closedAt = await attack.allClosed(headersTimeoutMs + 4_000);
      assert.equal(closedAt.length, 300);
      // The automatic connection cap kept a descriptor reserve: 256 - 64.
      // Log lines reach stdout buffered (within half a second): wait for them, not assume them.
      await waitUntil(() => /connection limit reached/.test(p.log()), 'the connection-limit warning');
      const limits = /"maxConnections":(\d+)/.exec(p.log());
      assert.equal(Number(limits?.[1]), resolveMaxConnections(0, 256));
      assert.equal(resolveMaxConnections(0, 256), 192);
      // The 108 over the cap were refused at accept, and the operator is told.
      assert.match(p.log(), /connection limit reached/);
      await serves(p.url);
      assert.equal(p.child.exitCode, null, 'the server is still running');
    } finally {
      attack.destroy();
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });

  it('while 300 half-sent requests are open (cap leaves room), legitimate requests succeed; the idle ones are then closed', async () => {
    // Long enough that the legitimate requests surely finish first, on a loaded machine too.
    const headersTimeoutMs = 8_000;
    const p = await serveLimited(1024, join(tmp.dir, 'data-1024'), '--headers-timeout', '8s');
    const attack = await halfSentRequests(p.url, 300);
    try {
      await serves(p.url);
      assert.equal(attack.closedCount(), 0, 'the half-sent requests are still open while others are served');
      const closedAt = await attack.allClosed(headersTimeoutMs + 4_000);
      assert.equal(closedAt.length, 300);
      await serves(p.url);
    } finally {
      attack.destroy();
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });
});

describe('request body inactivity', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ bodyIdleTimeout: '1500ms' });
  });
  after(() => srv.close());

  /** A PUT whose body goes out in `pieces` chunks, `gapMs` apart; `stopAfter` stops sending (and waits) after that many. */
  function pacedPut(
    data: Buffer,
    pieces: number,
    gapMs: number,
    stopAfter = pieces,
  ): Promise<{ status: number } | { closed: true }> {
    return new Promise((resolve, reject) => {
      const req = request(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`, {
        method: 'PUT',
        headers: { 'content-length': String(data.length), 'content-type': 'application/octet-stream' },
        agent: false,
      });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET' || err.code === 'EPIPE') resolve({ closed: true });
        else reject(err);
      });
      const size = Math.ceil(data.length / pieces);
      let i = 0;
      const next = () => {
        if (i >= stopAfter) {
          if (stopAfter >= pieces) req.end();
          return;
        }
        req.write(data.subarray(i * size, (i + 1) * size));
        i++;
        // The client's own pace, not synchronisation: real time must pass between chunks.
        setTimeout(next, gapMs);
      };
      next();
    });
  }

  it('a slow but steadily progressing upload is not cut (6 chunks, 500 ms apart: 3 s > 1.5 s idle timeout)', async () => {
    const data = randomBytes(600 * 1024);
    const result = await pacedPut(data, 6, 500);
    assert.deepEqual(result, { status: 201 });
    const got = await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`);
    assert.equal(got.status, 200);
  });

  it('an upload that stops sending mid-body is cut after the idle timeout and stores nothing', async () => {
    const data = randomBytes(600 * 1024);
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      pacedPut(data, 6, 100, 2),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('stalled upload was not cut')), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.deepEqual(result, { closed: true });
    assert.ok(Date.now() - started >= 1_400, 'not cut before the idle timeout');
    assert.equal((await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`)).status, 404);
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    const metric = await srv.server.ctx.metrics.registry.getSingleMetricAsString(
      'hoard_connections_cut_total',
    );
    assert.match(metric, /reason="body_idle"\} 1/);
  });
});
