// Single-flight fills: N concurrent GETs of a blob present only in the shared
// tier cost ONE read of it, every client gets the right bytes, streamed while
// they arrive (not after the fill), and a failed fill reaches every waiting
// client as an error (a cut-short response, never a complete wrong one) and
// is retried by the next request.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { startWithCountingShared } from './helpers.ts';

async function readBody(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

type Srv = Awaited<ReturnType<typeof startWithCountingShared>>;

/** A blob of `size` random bytes held only by the shared tier, and its URL. */
async function seedShared(srv: Srv, size: number): Promise<{ data: Buffer; digest: Digest; url: string }> {
  const data = randomBytes(size);
  const digest = sha256(data);
  await srv.shared.inner.write(digest, Readable.from([data]));
  return { data, digest, url: `${srv.url}/v1/blobs/sha256/${hexOf(digest)}` };
}

/** Holds shared-tier reads after their first chunk; returns the release. */
function holdShared(srv: Srv): () => void {
  let release!: () => void;
  srv.shared.hold = new Promise<void>((r) => {
    release = r;
  });
  return release;
}

/** The rest of a body after its first chunk. */
async function readRest(rd: ReadableStreamDefaultReader<Uint8Array>, first: Uint8Array): Promise<Buffer> {
  const chunks: Uint8Array[] = [first];
  for (;;) {
    const { done, value } = await rd.read();
    if (done) break;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

describe('single-flight fills from the shared tier', () => {
  it('100 concurrent GETs of a cold blob: one shared read, all bytes correct, streamed while arriving', async () => {
    const srv = await startWithCountingShared();
    try {
      const { data, url } = await seedShared(srv, 4 * 1024 * 1024 + 123);
      const release = holdShared(srv);
      const responses = await Promise.all(Array.from({ length: 100 }, () => fetch(url)));
      // Every client has its first bytes while the shared tier is still holding the rest.
      const readers = responses.map((r) => {
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-length'), String(data.length));
        return (r.body as ReadableStream<Uint8Array>).getReader();
      });
      const firsts = await Promise.all(readers.map((rd) => rd.read()));
      for (const f of firsts) assert.ok(!f.done && f.value.byteLength > 0);
      const got = firsts.reduce((n, f) => n + (f.value?.byteLength ?? 0), 0);
      assert.ok(got < 100 * data.length, 'clients got bytes before the fill finished');
      release();
      const bodies = await Promise.all(readers.map((rd, i) => readRest(rd, firsts[i].value as Uint8Array)));
      for (const b of bodies) assert.ok(b.equals(data));
      assert.equal(srv.shared.reads.length, 1, 'one read of the shared tier');
      assert.equal(srv.shared.reads[0].range, undefined);
      assert.equal(srv.server.ctx.blobs.fillsStarted, 1);
      const metrics = await (await fetch(`${srv.url}/metrics`)).text();
      assert.match(metrics, /hoard_singleflight_coalesced_total 99\b/);
      assert.match(metrics, /hoard_fill_duration_seconds_count\{result="ok"\} 1\b/);
      // Now warm: more GETs read nothing more from the shared tier.
      const again = await fetch(url);
      assert.ok((await readBody(again)).equals(data));
      assert.equal(again.headers.get('x-hoard-tier'), 'disk');
      assert.equal(srv.shared.reads.length, 1);
    } finally {
      await srv.close();
    }
  });

  it('a failed fill reaches every waiting client, leaves nothing, and the next request retries', async () => {
    const srv = await startWithCountingShared();
    try {
      const { data, digest, url } = await seedShared(srv, 2 * 1024 * 1024);
      srv.shared.failMidway = true;
      const release = holdShared(srv);
      // All 20 clients are waiting on the fill (headers received) before it breaks.
      const responses = await Promise.all(Array.from({ length: 20 }, () => fetch(url)));
      release();
      srv.shared.hold = undefined;
      const results = await Promise.allSettled(responses.map((r) => readBody(r)));
      for (const r of results) {
        // Either the request failed outright or its body was cut short: never complete wrong bytes.
        if (r.status === 'fulfilled') assert.ok(r.value.length < data.length);
      }
      assert.ok(results.every((r) => r.status === 'rejected' || r.value.length < data.length));
      assert.equal(srv.shared.reads.length, 1, 'all 20 joined one fill');
      // Nothing published, no temp file left.
      const shard = join(srv.dataDir, 'blobs', 'sha256', hexOf(digest).slice(0, 2));
      assert.deepEqual(await readdir(shard).catch(() => []), []);
      assert.deepEqual(await readdir(join(srv.dataDir, 'tmp')), []);
      // The next request starts a fresh fill and succeeds.
      srv.shared.failMidway = false;
      const ok = await fetch(url);
      assert.equal(ok.status, 200);
      assert.ok((await readBody(ok)).equals(data));
      assert.equal(srv.shared.reads.length, 2);
    } finally {
      await srv.close();
    }
  });

  it('a client joining a fill late reads what is already there at once, then follows it', async () => {
    const srv = await startWithCountingShared();
    try {
      const { data, url } = await seedShared(srv, 3 * 1024 * 1024);
      const release = holdShared(srv);
      const first = await fetch(url);
      const r1 = (first.body as ReadableStream<Uint8Array>).getReader();
      const a = await r1.read();
      assert.ok(!a.done);
      // The fill is held after its first chunk; a late client joins it and gets those bytes now.
      const late = await fetch(url, { headers: { range: 'bytes=0-999' } });
      assert.equal(late.status, 206);
      assert.ok(Buffer.from(await late.arrayBuffer()).equals(data.subarray(0, 1000)));
      const second = await fetch(url);
      release();
      assert.ok((await readRest(r1, a.value as Uint8Array)).equals(data));
      assert.ok(Buffer.from(await second.arrayBuffer()).equals(data));
      assert.equal(srv.shared.reads.length, 1);
    } finally {
      await srv.close();
    }
  });

  it('HEAD of a cold blob stats the shared tier without reading it', async () => {
    const srv = await startWithCountingShared();
    try {
      const { url } = await seedShared(srv, 1000);
      const res = await fetch(url, { method: 'HEAD' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), '1000');
      assert.equal(srv.shared.reads.length, 0);
    } finally {
      await srv.close();
    }
  });
});
