import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Digest } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { rangedDownload } from '../../src/http/ranged-download.ts';

interface Behaviour {
  body: Buffer;
  etag: string;
  /** Called per request; may answer itself (returns true) to inject faults. */
  hook?: (req: IncomingMessage, res: ServerResponse, n: number) => boolean | Promise<boolean>;
}

function digestOf(buf: Buffer): Digest {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

describe('parallel ranged download', () => {
  let server: Server;
  let base: string;
  let current: Behaviour;
  let requests = 0;
  let active = 0;
  let maxActive = 0;

  before(async () => {
    server = createServer(async (req, res) => {
      const n = ++requests;
      active++;
      maxActive = Math.max(maxActive, active);
      res.on('close', () => active--);
      const b = current;
      if (b.hook && (await b.hook(req, res, n))) return;
      const size = b.body.byteLength;
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const ifRange = req.headers['if-range'];
      res.setHeader('etag', b.etag);
      res.setHeader('accept-ranges', 'bytes');
      if (!m || (ifRange !== undefined && ifRange !== b.etag)) {
        res.writeHead(200, { 'content-length': size });
        res.end(b.body);
        return;
      }
      const start = Number(m[1]);
      const end = Math.min(size - 1, Number(m[2]));
      res.writeHead(206, {
        'content-length': end - start + 1,
        'content-range': `bytes ${start}-${end}/${size}`,
      });
      // Slow the body down a little so ranges overlap.
      await new Promise((r) => setTimeout(r, 5));
      res.end(b.body.subarray(start, end + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  function reset(b: Behaviour) {
    current = b;
    requests = 0;
    maxActive = 0;
  }

  it('downloads in parallel ranges, in order, and verifies the digest', async () => {
    const body = randomBytes(1_000_003);
    reset({ body, etag: '"v1"' });
    const d = rangedDownload({
      url: `${base}/blob`,
      size: body.byteLength,
      expected: digestOf(body),
      etag: '"v1"',
      concurrency: 4,
      rangeBytes: 64 * 1024,
    });
    const got = await collect(d.stream);
    assert.ok(got.equals(body));
    const r = await d.done;
    assert.equal(r.digest, digestOf(body));
    assert.equal(r.requests, Math.ceil(body.byteLength / (64 * 1024)));
    assert.equal(requests, r.requests);
    assert.ok(maxActive > 1, `ranges overlapped (max ${maxActive} at once)`);
    assert.ok(maxActive <= 4, `never more than the concurrency (max ${maxActive})`);
  });

  it('ranges(): the same bytes through a pool of concurrency buffers, each refilled only after it was consumed', async () => {
    const body = randomBytes(1_000_003);
    reset({ body, etag: '"p"' });
    const d = rangedDownload({
      url: `${base}/p`,
      size: body.byteLength,
      expected: digestOf(body),
      etag: '"p"',
      concurrency: 3,
      rangeBytes: 64 * 1024,
    });
    const parts: Buffer[] = [];
    const arrays = new Set<ArrayBufferLike>();
    let pos = 0;
    for await (const buf of d.ranges()) {
      // Compared now, copied for later: a buffer is valid until the next iteration only.
      assert.ok(buf.equals(body.subarray(pos, pos + buf.byteLength)), `range at ${pos}`);
      pos += buf.byteLength;
      parts.push(Buffer.from(buf));
      arrays.add(buf.buffer);
      // A slow consumer: the ranges in flight must not write into this buffer meanwhile.
      // Event-loop turns, not time: each lets received response data be processed.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.ok(buf.equals(body.subarray(pos - buf.byteLength, pos)), `range at ${pos} unchanged while held`);
    }
    assert.ok(Buffer.concat(parts).equals(body));
    assert.equal((await d.done).digest, digestOf(body));
    assert.ok(arrays.size <= 3, `${arrays.size} buffers for ${parts.length} ranges`);
    assert.ok(maxActive <= 3, `never more than the concurrency (max ${maxActive})`);
  });

  it('ranges(): a digest mismatch fails before the iteration ends', async () => {
    const body = randomBytes(200_000);
    reset({ body, etag: '"q"' });
    const d = rangedDownload({
      url: `${base}/q`,
      size: body.byteLength,
      expected: digestOf(Buffer.from('other')),
      rangeBytes: 30_000,
    });
    let seen = 0;
    await assert.rejects(
      (async () => {
        for await (const buf of d.ranges()) seen += buf.byteLength;
      })(),
      (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
    );
    assert.equal(seen, body.byteLength);
    await assert.rejects(d.done, (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'));
  });

  it('handles an empty body and a body smaller than one range', async () => {
    reset({ body: Buffer.alloc(0), etag: '"e"' });
    const empty = rangedDownload({ url: `${base}/e`, size: 0, expected: digestOf(Buffer.alloc(0)) });
    assert.equal((await collect(empty.stream)).byteLength, 0);
    assert.equal(requests, 0);
    const small = Buffer.from('hello');
    reset({ body: small, etag: '"s"' });
    const d = rangedDownload({ url: `${base}/s`, size: 5, expected: digestOf(small), etag: '"s"' });
    assert.equal((await collect(d.stream)).toString(), 'hello');
  });

  it('retries a range that fails or times out', async () => {
    const body = randomBytes(300_000);
    let failed = 0;
    reset({
      body,
      etag: '"r"',
      hook: async (req, res) => {
        const range = req.headers.range ?? '';
        if (range.startsWith('bytes=65536-') && failed === 0) {
          failed++;
          res.writeHead(503);
          res.end('busy');
          return true;
        }
        if (range.startsWith('bytes=131072-') && failed === 1) {
          failed++;
          return true; // never answers: the per-range timeout must fire
        }
        return false;
      },
    });
    const d = rangedDownload({
      url: `${base}/r`,
      size: body.byteLength,
      expected: digestOf(body),
      etag: '"r"',
      concurrency: 3,
      rangeBytes: 65536,
      // Long enough that no answered range times out on a loaded machine (that would be a
      // third, legitimate retry): only the range that never answers does.
      rangeTimeoutMs: 3000,
    });
    assert.ok((await collect(d.stream)).equals(body));
    assert.equal((await d.done).retries, 2);
  });

  it('fails when the content changes in the middle (ETag / If-Range)', async () => {
    const v1 = randomBytes(500_000);
    const v2 = randomBytes(500_000);
    reset({
      body: v1,
      etag: '"one"',
      hook: (_req, _res, n) => {
        if (n === 3) current = { body: v2, etag: '"two"', hook: current.hook };
        return false;
      },
    });
    const d = rangedDownload({
      url: `${base}/c`,
      size: v1.byteLength,
      expected: digestOf(v1),
      etag: '"one"',
      concurrency: 2,
      rangeBytes: 50_000,
    });
    await assert.rejects(
      collect(d.stream),
      (e) => isHoardError(e, 'HOARD_EREMOTE') && /changed/.test(e.message),
    );
    await assert.rejects(d.done);
  });

  it('fails on a digest mismatch before the stream ends', async () => {
    const body = randomBytes(100_000);
    reset({ body, etag: '"m"' });
    const d = rangedDownload({
      url: `${base}/m`,
      size: body.byteLength,
      expected: digestOf(Buffer.from('something else')),
      rangeBytes: 30_000,
    });
    await assert.rejects(collect(d.stream), (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'));
  });

  it('fails after the retries when the server keeps failing', async () => {
    const body = randomBytes(10_000);
    reset({
      body,
      etag: '"f"',
      hook: (_req, res) => {
        res.writeHead(500);
        res.end();
        return true;
      },
    });
    const d = rangedDownload({ url: `${base}/f`, size: body.byteLength, retries: 2, rangeBytes: 5000 });
    await assert.rejects(
      collect(d.stream),
      (e) => isHoardError(e, 'HOARD_EREMOTE') && /HTTP 500/.test(e.message),
    );
    assert.ok(requests <= 6);
  });
});
