// Read workers (--read-workers, src/server/read-workers.ts, read-worker.ts):
// extra processes on the server's TCP address (SO_REUSEPORT) that answer
// GET/HEAD of disk-tier blobs themselves and hand everything else to the
// primary. The kernel picks the process per connection, so each test first
// finds a connection a worker accepted (a probe answered with
// `x-hoard-worker`) or one the primary accepted, then sends what it tests on
// that same kept-alive connection.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { AuthFailureLimiter } from '../../src/server/auth-failures.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { readWorkerCount } from '../../src/server/read-workers.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { serveChild } from '../support/serve-child.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { waitUntil } from '../support/wait.ts';
import { startTestServer, type TestServer } from './helpers.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(
  url: string,
  opts: { agent?: Agent; method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { agent: opts.agent, method: opts.method ?? 'GET', headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A kept-alive connection the kernel gave to a worker (`worker`) or to the primary. */
async function connection(
  blobUrl: string,
  want: 'worker' | 'primary',
  headers: Record<string, string> = {},
): Promise<Agent> {
  // New connections until one lands where wanted (half of them do; a worker that has just started
  // gets its first connections about a second after it listens, hence a deadline, not a count).
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const r = await send(blobUrl, { agent, headers });
    assert.equal(r.status, 200, 'the probe blob is readable');
    if ((r.headers['x-hoard-worker'] !== undefined) === (want === 'worker')) return agent;
    agent.destroy();
  }
  throw new Error(`no connection reached the ${want}`);
}

const put = (base: string, data: Buffer, headers: Record<string, string> = {}) =>
  send(`${base}/v1/blobs/sha256/${hexOf(sha256(data))}`, { method: 'PUT', body: data, headers });

/** Headers that legitimately differ between two answers of the same content. */
const VARYING = new Set(['date', 'connection', 'keep-alive', 'x-hoard-worker']);
function comparable(a: Answer): { status: number; headers: Record<string, unknown>; body: string } {
  const headers = Object.fromEntries(Object.entries(a.headers).filter(([k]) => !VARYING.has(k)));
  return { status: a.status, headers, body: a.body.toString('hex') };
}

describe('read workers: answers like the primary', () => {
  let srv: TestServer;
  let small: Buffer;
  let large: Buffer;
  let smallUrl: string;
  let largeUrl: string;
  let worker: Agent;
  let primary: Agent;
  before(async () => {
    srv = await startTestServer({ readWorkers: 1, maxMemory: 0 });
    small = randomBytes(4096);
    large = randomBytes(300 * 1024);
    assert.equal((await put(srv.url, small)).status, 201);
    assert.equal((await put(srv.url, large)).status, 201);
    smallUrl = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(small))}`;
    largeUrl = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(large))}`;
    worker = await connection(smallUrl, 'worker');
    primary = await connection(smallUrl, 'primary');
  });
  after(async () => {
    worker?.destroy();
    primary?.destroy();
    await srv?.close();
  });

  it('serves blobs from both processes, the same bytes and headers', async () => {
    assert.equal(srv.server.readWorkers?.pids().length, 1);
    for (const [url, data] of [
      [smallUrl, small],
      [largeUrl, large],
    ] as const) {
      const w = await send(url, { agent: worker });
      const p = await send(url, { agent: primary });
      assert.equal(w.headers['x-hoard-worker'], '1', 'the worker answered');
      assert.equal(p.headers['x-hoard-worker'], undefined, 'the primary answered');
      assert.ok(w.body.equals(data));
      assert.deepEqual(comparable(w), comparable(p));
    }
  });

  it('ranges, conditional requests and HEAD: identical to the primary', async () => {
    const etag = `"${hexOf(sha256(small))}"`;
    const cases: Record<string, string>[] = [
      { range: 'bytes=0-0' },
      { range: 'bytes=100-199' },
      { range: 'bytes=-10' },
      { range: 'bytes=4000-' },
      { range: 'bytes=4096-' }, // unsatisfiable: 416 (the worker leaves it to the primary)
      { range: 'bytes=0-1,5-6' }, // multi-range: ignored, the whole blob
      { range: 'bytes=oops' },
      { 'if-none-match': etag },
      { 'if-none-match': `W/${etag}` },
      { 'if-none-match': '*' },
      { 'if-none-match': '"other"' },
      { range: 'bytes=0-9', 'if-range': etag },
      { range: 'bytes=0-9', 'if-range': '"other"' },
    ];
    for (const url of [smallUrl, largeUrl])
      for (const method of ['GET', 'HEAD'])
        for (const headers of cases) {
          const w = await send(url, { agent: worker, method, headers });
          const p = await send(url, { agent: primary, method, headers });
          assert.deepEqual(comparable(w), comparable(p), `${method} ${JSON.stringify(headers)}`);
        }
    const w = await send(smallUrl, { agent: worker, headers: { range: 'bytes=100-199' } });
    assert.equal(w.status, 206);
    assert.equal(w.headers['x-hoard-worker'], '1');
    assert.ok(w.body.equals(small.subarray(100, 200)));
  });

  it('a miss, a PUT and other routes on a worker connection reach the primary', async () => {
    const other = randomBytes(1000);
    const hex = hexOf(sha256(other));
    const miss = await send(`${srv.url}/v1/blobs/sha256/${hex}`, { agent: worker });
    assert.equal(miss.status, 404);
    assert.equal(miss.headers['x-hoard-worker'], undefined);
    assert.equal(JSON.parse(miss.body.toString()).error.code, 'HOARD_EBLOB_NOT_FOUND');
    // The primary saw the client's loopback address (without it, loopback-only mode would refuse: 403).
    const stored = await put(srv.url, other, {}).then(() =>
      send(`${srv.url}/v1/blobs/sha256/${hex}`, { agent: worker, method: 'PUT', body: other }),
    );
    assert.equal(stored.status, 200, 'stored already: the PUT through the worker reached the primary');
    const fresh = randomBytes(2000);
    const created = await send(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(fresh))}`, {
      agent: worker,
      method: 'PUT',
      body: fresh,
    });
    assert.equal(created.status, 201);
    const back = await send(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(fresh))}`, { agent: worker });
    assert.ok(back.body.equals(fresh));
    const missing = await send(`${srv.url}/v1/blobs/missing`, {
      agent: worker,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ digests: [sha256(fresh), sha256(randomBytes(8))] })),
    });
    assert.equal(missing.status, 200);
    assert.equal(JSON.parse(missing.body.toString()).missing.length, 1);
    assert.equal((await send(`${srv.url}/healthz`, { agent: worker })).status, 200);
  });

  it('bad input on a worker connection gets the primary’s answer', async () => {
    const hex = hexOf(sha256(small));
    for (const path of [
      `/v1/blobs/sha256/${hex.toUpperCase()}`,
      `/v1/blobs/sha256/${hex.slice(1)}`,
      `/v1/blobs/sha256/${hex}/`,
      `/v1/blobs/sha256/../../../etc/passwd`,
      `/v1/blobs/sha256/%2e%2e%2f%2e%2e%2fetc%2fpasswd`,
      `/v1/blobs/sha256/${hex}%00`,
      `/v1/blobs/sha256:${hex}`,
    ]) {
      const w = await send(`${srv.url}${path}`, { agent: worker });
      const p = await send(`${srv.url}${path}`, { agent: primary });
      assert.deepEqual(comparable(w), comparable(p), path);
      assert.ok(w.status >= 400, path);
      assert.equal(w.headers['x-hoard-worker'], undefined, `${path}: not answered by the worker`);
    }
    // A query string does not change what a blob URL names.
    const q = await send(`${smallUrl}?x=1`, { agent: worker });
    assert.ok(q.body.equals(small));
    // Headers past Node's limit: 431 from either process, and the connection is closed.
    const huge = { 'x-filler': 'a'.repeat(20_000) };
    const w = await send(smallUrl, { agent: new Agent(), headers: huge });
    assert.equal(w.status, 431);
    // A GET with a body is the primary's to judge; the worker does not answer it.
    const withBody = await send(smallUrl, {
      agent: worker,
      body: Buffer.from('x'),
      headers: { 'content-length': '1' },
    });
    assert.equal(withBody.headers['x-hoard-worker'], undefined);
    assert.ok(withBody.body.equals(small));
  });

  it('a file changed on disk is never served unverified by a worker', async () => {
    const data = randomBytes(5000);
    assert.equal((await put(srv.url, data)).status, 201);
    const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
    assert.ok((await send(url, { agent: worker })).body.equals(data));
    const file = FsBlobStore.pathIn(srv.dataDir, sha256(data));
    const bad = Buffer.from(data);
    bad[17] ^= 0xff;
    await writeFile(file, bad); // same size, new mtime/ctime: no longer the file the worker hashed
    const r = await send(url, { agent: worker });
    assert.equal(r.status, 404, 'the primary quarantined it');
    assert.notEqual(r.body.toString('hex'), bad.toString('hex'));
  });

  it('a small blob both processes keep hot is not served once its file is gone or replaced', async () => {
    for (const change of ['deleted', 'replaced'] as const) {
      const data = randomBytes(3000);
      assert.equal((await put(srv.url, data)).status, 201);
      const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
      // Read twice on each connection: the second read is the hot copy's (one stat, no read).
      for (const agent of [worker, primary, worker, primary])
        assert.ok((await send(url, { agent })).body.equals(data));
      const file = FsBlobStore.pathIn(srv.dataDir, sha256(data));
      if (change === 'deleted') await rm(file);
      else {
        const bad = Buffer.from(data);
        bad[5] ^= 0xff;
        await writeFile(`${file}.x`, bad);
        await rename(`${file}.x`, file); // same size, a new inode the processes never hashed
      }
      for (const agent of [worker, primary]) {
        const r = await send(url, { agent });
        assert.equal(r.status, 404, `${change}: a miss, not the hot bytes`);
        assert.equal(r.headers['x-hoard-worker'], undefined, `${change}: the primary answered`);
      }
    }
  });

  it('a large file that does not hash to its name: the worker cuts its answer, the primary quarantines it', async () => {
    const data = randomBytes(200 * 1024);
    assert.equal((await put(srv.url, data)).status, 201);
    const url = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
    const file = FsBlobStore.pathIn(srv.dataDir, sha256(data));
    const bad = Buffer.from(data);
    bad[100_000] ^= 0xff;
    await writeFile(file, bad);
    // Whatever arrives, it is never the whole (bad) body: the worker holds its last chunk back until the digest matches.
    const got = await send(url, { agent: new Agent({ keepAlive: false }) }).catch(() => undefined);
    if (got) assert.notEqual(got.body.length === bad.length && got.body.equals(bad), true);
    // Through a worker or not, the file ends up quarantined (the worker reports it; the primary checks it).
    const own = await connection(smallUrl, 'worker'); // its own: a cut answer closes the connection
    const r = await send(url, { agent: own }).catch(() => undefined);
    own.destroy();
    if (r) assert.notEqual(r.body.equals(bad), true);
    // (A read by the primary meanwhile is cut short the same way, until the file is quarantined.)
    await waitUntil(
      async () => (await send(url, { agent: new Agent() }).catch(() => undefined))?.status === 404,
      'the file quarantined',
    );
  });

  it('/metrics on the primary counts what the worker served', async () => {
    const metric = async () => {
      const text = (await send(`${srv.url}/metrics`, { agent: primary })).body.toString();
      const m =
        /hoard_http_requests_total\{method="GET",route="\/v1\/blobs\/sha256\/:hex",status="200"\} (\d+)/.exec(
          text,
        );
      return m ? Number(m[1]) : 0;
    };
    const before = await metric();
    for (let i = 0; i < 20; i++) assert.equal((await send(smallUrl, { agent: worker })).status, 200);
    await waitUntil(async () => (await metric()) >= before + 20, 'worker requests in /metrics');
  });
});

describe('read workers: auth', () => {
  let srv: TestServer;
  const READ = 'read-token-aaaaaaaaaaaa';
  const WRITE = 'write-token-bbbbbbbbbbb';
  const OTHER = 'other-ns-token-ccccccccc';
  let blobUrl: string;
  let data: Buffer;
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-rw-'));
    const tokens = await writeTokensFile(dir, [
      { name: 'reader', token: READ, scopes: ['read'] },
      { name: 'writer', token: WRITE, scopes: ['write'] },
      { name: 'team-b', token: OTHER, scopes: ['read', 'write'], refs: ['team-b/'] },
    ]);
    srv = await startTestServer({ readWorkers: 1, maxMemory: 0, tokens });
    after(() => rm(dir, { recursive: true, force: true }));
    data = randomBytes(3000);
    assert.equal((await put(srv.url, data, { authorization: `Bearer ${WRITE}` })).status, 201);
    blobUrl = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
  });
  after(() => srv?.close());

  it('no token, bad token, read, write-only and other-namespace tokens: as the primary decides', async () => {
    const worker = await connection(blobUrl, 'worker', { authorization: `Bearer ${READ}` });
    const primary = await connection(blobUrl, 'primary', { authorization: `Bearer ${READ}` });
    const cases: [string, Record<string, string>, number, boolean][] = [
      ['no token', {}, 401, false],
      ['bad token', { authorization: 'Bearer not-a-token' }, 401, false],
      ['malformed header', { authorization: 'Basic !!!' }, 401, false],
      ['read token', { authorization: `Bearer ${READ}` }, 200, true],
      [
        'read token over Basic',
        { authorization: `Basic ${Buffer.from(`ci:${READ}`).toString('base64')}` },
        200,
        true,
      ],
      ['write-only token', { authorization: `Bearer ${WRITE}` }, 200, true],
      ['token scoped to another namespace', { authorization: `Bearer ${OTHER}` }, 200, true],
    ];
    for (const [what, headers, status, byWorker] of cases) {
      const w = await send(blobUrl, { agent: worker, headers });
      const p = await send(blobUrl, { agent: primary, headers });
      assert.equal(w.status, status, what);
      assert.deepEqual(comparable(w), comparable(p), what);
      assert.equal(w.headers['x-hoard-worker'] !== undefined, byWorker, `${what}: answered by the worker`);
      if (status === 401) assert.match(String(w.headers['www-authenticate']), /Bearer/);
    }
    // A read token may not write, through a worker as directly.
    const fresh = randomBytes(10);
    const refused = await send(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(fresh))}`, {
      agent: worker,
      method: 'PUT',
      body: fresh,
      headers: { authorization: `Bearer ${READ}` },
    });
    assert.equal(refused.status, 403);
    worker.destroy();
    primary.destroy();
  });

  it('the worker socket refuses requests without the workers’ secret', async () => {
    const socketPath = join(srv.dataDir, 'run', `workers-${process.pid}.sock`);
    for (const headers of [
      {},
      { 'x-hoard-worker-secret': 'guess', 'x-hoard-worker-client': '203.0.113.7' },
      { 'x-hoard-worker-secret': '0'.repeat(64), 'x-hoard-worker-client': '203.0.113.7' },
    ]) {
      const r = await new Promise<number>((resolve, reject) => {
        const req = request({ socketPath, path: new URL(blobUrl).pathname, headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(r, 403, JSON.stringify(headers));
    }
  });

  it('a forged client address from a client is ignored', async () => {
    // Only the primary's worker socket reads the forwarding headers, and only with the workers' secret.
    const r = await send(blobUrl, {
      headers: { 'x-hoard-worker-client': '203.0.113.7', 'x-hoard-worker-secret': 'guess' },
    });
    assert.equal(r.status, 401);
  });
});

describe('read workers: the disk index learns of worker reads', () => {
  it('a blob read only through a worker becomes the most recently used', async () => {
    const srv = await startTestServer({ readWorkers: 1, maxMemory: 0, maxDisk: 10 * 1024 * 1024 });
    try {
      const a = randomBytes(2000);
      const b = randomBytes(2000);
      assert.equal((await put(srv.url, a)).status, 201);
      assert.equal((await put(srv.url, b)).status, 201);
      const index = srv.server.index;
      assert.ok(index);
      assert.equal(index.order().at(-1), sha256(b));
      const aUrl = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(a))}`;
      // Find a worker connection by reading `b` (keeps b recent), then read `a` on it only.
      const bUrl = `${srv.url}/v1/blobs/sha256/${hexOf(sha256(b))}`;
      const worker = await connection(bUrl, 'worker');
      await waitUntil(() => index.order().at(-1) === sha256(b), 'b reported');
      const r = await send(aUrl, { agent: worker });
      assert.equal(r.headers['x-hoard-worker'], '1');
      await waitUntil(() => index.order().at(-1) === sha256(a), 'the worker read of a in the index');
      worker.destroy();
    } finally {
      await srv.close();
    }
  });
});

describe('read workers: life cycle', () => {
  it('a crashed worker is restarted, and closing the server stops it', async () => {
    const srv = await startTestServer({ readWorkers: 1 });
    try {
      const workers = srv.server.readWorkers;
      assert.ok(workers);
      const [first] = workers.pids();
      process.kill(first, 'SIGKILL');
      await waitUntil(() => workers.pids().length === 1 && workers.pids()[0] !== first, 'a new worker');
      const data = randomBytes(100);
      assert.equal((await put(srv.url, data)).status, 201);
      // The new worker serves.
      await connection(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`, 'worker').then((a) =>
        a.destroy(),
      );
      const [second] = workers.pids();
      await srv.close();
      assert.equal(alive(second), false, 'closed with the server');
    } finally {
      await srv.close();
    }
  });

  it('SIGKILL of the primary leaves no worker behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-rw-'));
    try {
      const s = await serveChild(join(dir, 'data'), ['--read-workers', '1']);
      await waitUntil(() => /"msg":"read worker listening"/.test(s.log()), 'the worker line');
      const pid = Number(/"workerPid":(\d+)/.exec(s.log())?.[1]);
      assert.ok(pid > 0 && alive(pid));
      s.child.kill('SIGKILL');
      await s.exited;
      await waitUntil(() => !alive(pid), 'the worker to exit after its primary');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a worker logs its requests in the primary’s request-line shape', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-rw-'));
    const s = await serveChild(join(dir, 'data'), ['--read-workers', '1', '--max-memory', '0']);
    try {
      const data = randomBytes(700);
      assert.equal((await put(s.url, data)).status, 201);
      const url = `${s.url}/v1/blobs/sha256/${hexOf(sha256(data))}`;
      (await connection(url, 'worker')).destroy();
      (await connection(url, 'primary')).destroy();
      s.child.kill('SIGTERM');
      await s.exited;
      const lines = s
        .log()
        .split('\n')
        .filter((l) => l.includes('"msg":"request"') && l.includes('"method":"GET"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const w = lines.find((l) => l.worker === 1);
      const p = lines.find((l) => l.worker === undefined);
      assert.ok(w && p, 'request lines from both processes');
      const shape = (l: Record<string, unknown>) =>
        Object.keys(l)
          .filter((k) => k !== 'worker')
          .sort();
      assert.deepEqual(shape(w), shape(p));
      for (const k of ['method', 'url', 'status', 'bytesIn', 'bytesOut', 'tier', 'client', 'level', 'msg'])
        assert.deepEqual(w[k], p[k], k);
    } finally {
      if (s.child.exitCode === null) s.child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('read workers: lockouts reach them', () => {
  it('a lockout key handed over locks the same addresses in the worker’s limiter', () => {
    const primary = new AuthFailureLimiter({ limit: 1, windowMs: 60_000 });
    const keys: string[] = [];
    const p = new AuthFailureLimiter({ limit: 1, windowMs: 60_000, onLockout: (k) => keys.push(k) });
    p.failed('2001:db8::1');
    p.failed('2001:db8::1');
    assert.deepEqual(keys, ['2001:db8:0:0::/64']);
    assert.deepEqual(p.lockedKeys(), keys);
    const worker = new AuthFailureLimiter({ limit: 1, windowMs: 60_000 });
    for (const k of keys) worker.lock(k);
    assert.ok(worker.lockedFor('2001:db8::2') > 0, 'the whole /64, as on the primary');
    assert.equal(worker.lockedFor('2001:db9::1'), 0);
    assert.equal(worker.lockedFor('127.0.0.1'), 0, 'loopback is exempt');
    assert.equal(primary.lockedKeys().length, 0);
  });
});

describe('read workers: the setting', () => {
  it('`auto` is cores − 1; a number is itself', () => {
    const auto = resolveConfig({ readWorkers: 'auto' }).readWorkers;
    assert.equal(auto, -1);
    assert.ok(readWorkerCount(auto) >= 0);
    assert.equal(readWorkerCount(resolveConfig({ readWorkers: '3' }).readWorkers), 3);
    assert.equal(readWorkerCount(resolveConfig({}).readWorkers), 0);
    assert.throws(() => resolveConfig({ readWorkers: '-1' }), /out of range/);
    assert.throws(() => resolveConfig({ readWorkers: '65' }), /out of range/);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
