// diskStream (src/server/disk-stream.ts): piped into an HTTP response it
// writes with two reused buffers, so these tests look for what buffer reuse
// could break — bytes overwritten before the socket sent them (concurrent
// responses, buffers shared between streams), a pump that runs ahead of a
// client that stopped reading, descriptors and buffers left behind by a
// client that went away — and check that any other consumer (a PassThrough,
// async iteration) still gets chunks of its own to keep.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { diskStream, freeServeBuffers } from '../../src/server/disk-stream.ts';
import { SyncReadGuard } from '../../src/server/sync-read-guard.ts';
import { waitUntil } from '../support/wait.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

interface Served {
  /** Bytes read from the file, over all requests. */
  readBytes: number;
  /** done(complete) calls, in order. */
  done: boolean[];
  responses: import('node:http').ServerResponse[];
}

let dir: string;
const files = new Map<string, Buffer>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoard-disk-stream-'));
  // Odd sizes: the last chunk is short, so a reused buffer's stale tail would show.
  for (const [name, size] of [
    ['a', 3 * MiB + 17],
    ['b', 2 * MiB + 12345],
    ['c', CHUNK + 1],
    ['big', 48 * MiB],
  ] as const) {
    const data = randomBytes(size);
    files.set(name, data);
    await writeFile(join(dir, name), data);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A server answering GET /<name> with diskStream, by pipe or by pipeline (?pipeline), ?verify to hash, ?sync for synchronous reads. */
async function serve(): Promise<{ server: Server; url: string; s: Served }> {
  const s: Served = { readBytes: 0, done: [], responses: [] };
  const guard = new SyncReadGuard();
  const server = createServer(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const name = u.pathname.slice(1);
    const data = files.get(name);
    if (!data) return void res.writeHead(404).end();
    const fh = await open(join(dir, name), 'r');
    // Counts what the stream reads from the file: how far it ran ahead of the client.
    const counting = new Proxy(fh, {
      get(target, prop) {
        if (prop === 'fd') {
          // Synchronous reads use the descriptor number: counted here, a chunk at a time.
          s.readBytes += CHUNK;
          return target.fd;
        }
        if (prop === 'read')
          return async (...args: Parameters<typeof fh.read>) => {
            const r = await target.read(...(args as unknown as [Buffer, number, number, number]));
            s.readBytes += r.bytesRead;
            return r;
          };
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const stream = diskStream({
      fh: counting,
      start: 0,
      end: data.length,
      chunkBytes: CHUNK,
      sync: u.searchParams.has('sync') ? guard : undefined,
      verify: u.searchParams.has('verify')
        ? { digest: sha256(data), verified() {}, mismatch: async () => {} }
        : undefined,
      done: (complete) => {
        s.done.push(complete);
        fh.close().catch(() => {});
      },
    });
    s.responses.push(res);
    res.writeHead(200, { 'content-length': String(data.length) });
    if (u.searchParams.has('pipeline')) await pipeline(stream, res).catch(() => {});
    else stream.pipe(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, s };
}

function request(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, resolve).on('error', reject));
}

async function bodyDigest(res: IncomingMessage): Promise<{ hex: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    h.update(c);
    bytes += c.length;
  }
  return { hex: h.digest('hex'), bytes };
}

const hexOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('diskStream into an HTTP response (reused buffers)', () => {
  it('concurrent responses of several files, twice (buffers shared between streams), arrive intact', async () => {
    const { server, url, s } = await serve();
    try {
      for (let round = 0; round < 2; round++) {
        const names = ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b'];
        const got = await Promise.all(
          names.map(async (n, i) => {
            const q = new URLSearchParams();
            if (i % 2) q.set('pipeline', '');
            if (i % 3 === 0) q.set('verify', '');
            if (i % 4 < 2) q.set('sync', '');
            return bodyDigest(await request(`${url}/${n}?${q}`));
          }),
        );
        got.forEach((g, i) => {
          const data = files.get(names[i]) as Buffer;
          assert.equal(g.bytes, data.length);
          assert.equal(g.hex, hexOf(data), `${names[i]} (request ${i}, round ${round})`);
        });
        await waitUntil(() => s.done.length === (round + 1) * names.length, 'every stream closed');
      }
      assert.ok(
        s.done.every((c) => c),
        'every stream complete',
      );
      assert.ok(freeServeBuffers() > 0, 'finished streams gave their buffers back');
    } finally {
      server.close();
    }
  });

  for (const sync of [false, true])
    it(`does not run ahead of a client that stopped reading, and finishes when it reads again${sync ? ' (synchronous reads)' : ''}`, async () => {
      const { server, url, s } = await serve();
      try {
        const data = files.get('big') as Buffer;
        const res = await request(`${url}/big${sync ? '?sync' : ''}`);
        res.pause();
        // The server is blocked once the socket holds an unsent chunk of ours.
        await waitUntil(() => (s.responses[0]?.writableLength ?? 0) > 0, 'the response to back up');
        const ahead = s.readBytes;
        // Kernel socket buffers on loopback hold a few MiB; the pump itself holds two chunks.
        assert.ok(ahead < 24 * MiB, `read ${ahead} bytes of ${data.length} for a client that reads nothing`);
        const g = await bodyDigest(res);
        assert.equal(g.hex, hexOf(data));
        await waitUntil(() => s.done.length === 1, 'the stream closed');
        assert.deepEqual(s.done, [true]);
      } finally {
        server.close();
      }
    });

  it('a client that goes away mid-body closes the stream (incomplete); the next response is intact', async () => {
    const { server, url, s } = await serve();
    try {
      const res = await request(`${url}/big`);
      let got = 0;
      for await (const c of res as AsyncIterable<Buffer>) {
        got += c.length;
        if (got > 2 * MiB) break; // destroys the response: the connection closes
      }
      await waitUntil(() => s.done.length === 1, 'the abandoned stream closed');
      assert.deepEqual(s.done, [false]);
      const g = await bodyDigest(await request(`${url}/a`));
      assert.equal(g.hex, hexOf(files.get('a') as Buffer));
    } finally {
      server.close();
    }
  });
});

describe('diskStream for any other consumer (chunks of its own)', () => {
  async function streamOf(name: string) {
    const data = files.get(name) as Buffer;
    const fh = await open(join(dir, name), 'r');
    return {
      data,
      stream: diskStream({
        fh,
        start: 0,
        end: data.length,
        chunkBytes: CHUNK,
        done: () => {
          fh.close().catch(() => {});
        },
      }),
    };
  }

  it('piped into a PassThrough, every chunk kept until the end is still intact', async () => {
    const { data, stream } = await streamOf('a');
    const pass = new PassThrough();
    // Kept by reference as they arrive: a buffer reused behind the consumer's back would change them.
    const kept: Buffer[] = [];
    pass.on('data', (c: Buffer) => kept.push(c));
    stream.pipe(pass);
    await once(pass, 'end');
    assert.ok(kept.length > 2);
    assert.equal(hexOf(Buffer.concat(kept)), hexOf(data));
  });

  it('async iteration keeps its chunks too', async () => {
    const { data, stream } = await streamOf('b');
    const kept: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) kept.push(c);
    assert.equal(hexOf(Buffer.concat(kept)), hexOf(data));
  });
});
