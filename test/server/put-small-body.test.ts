// The PUT handler reads a small declared body (≤ 64 KiB) from the request's
// events into one buffer: a body cut short stores nothing and leaves nothing
// behind, a lying body is refused, a known blob answers 200, a body without
// Content-Length still takes the streamed way; the blobs it stores are in the
// disk tier's journal (one record each), published only once durable there.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { JOURNAL_HEAD_BYTES } from '../../src/store/blob-journal.ts';
import { waitUntil } from '../support/wait.ts';
import { startTestServer, type TestServer } from './helpers.ts';

const blobUrl = (base: string, hex: string) => `${base}/v1/blobs/sha256/${hex}`;
const put = (base: string, data: Buffer, hex = hexOf(sha256(data))) =>
  fetch(blobUrl(base, hex), { method: 'PUT', body: new Uint8Array(data) });

describe('small PUT bodies', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ maxMemory: '0' });
  });
  after(async () => {
    await srv.close();
  });

  it('stores a 4 KiB body through the journal, and answers 200 for it the second time', async () => {
    const data = randomBytes(4096);
    const res = await put(srv.url, data);
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { digest: sha256(data), size: 4096, created: true });
    const journal = join(srv.dataDir, 'journal');
    const segs = (await readdir(journal)).filter((n) => n.endsWith('.log'));
    assert.equal(segs.length, 1);
    const bytes = await readFile(join(journal, segs[0]));
    assert.equal(bytes.byteLength % (JOURNAL_HEAD_BYTES + 4096), 0);
    assert.ok(bytes.includes(data));
    const again = await put(srv.url, data);
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as { created: boolean }).created, false);
    const got = await fetch(blobUrl(srv.url, hexOf(sha256(data))));
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), data);
  });

  it('refuses a small body that does not hash to its name; nothing is stored', async () => {
    const data = randomBytes(3000);
    const other = hexOf(sha256(randomBytes(10)));
    const res = await put(srv.url, data, other);
    assert.equal(res.status, 400);
    assert.equal((await fetch(blobUrl(srv.url, other), { method: 'HEAD' })).status, 404);
  });

  it('a small body cut short by a disconnect stores nothing and leaves no temp file', async () => {
    const data = randomBytes(8192);
    const hex = hexOf(sha256(data));
    const { port } = new URL(srv.url);
    await new Promise<void>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1', () => {
        sock.write(
          `PUT /v1/blobs/sha256/${hex} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\n\r\n`,
        );
        // Destroyed once the bytes are handed over: TCP delivers them before the FIN, so the
        // server always sees a body that stops after 1,000 of its 8,192 bytes.
        sock.write(data.subarray(0, 1000), () => sock.destroy());
      });
      sock.on('close', () => resolve());
      sock.on('error', reject);
    });
    await waitUntil(async () => (await readdir(join(srv.dataDir, 'tmp'))).length === 0, 'no temp file');
    assert.equal((await fetch(blobUrl(srv.url, hex), { method: 'HEAD' })).status, 404);
    // The server is fine and the same blob uploads afterwards.
    assert.equal((await put(srv.url, data)).status, 201);
  });

  it('a small body without Content-Length (chunked) is streamed and stored', async () => {
    const data = randomBytes(5000);
    const res = await fetch(blobUrl(srv.url, hexOf(sha256(data))), {
      method: 'PUT',
      body: Readable.toWeb(Readable.from([data.subarray(0, 2000), data.subarray(2000)])) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 201);
    const got = await fetch(blobUrl(srv.url, hexOf(sha256(data))));
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), data);
  });
});
