// The batched-read client (HttpBlobStore.readMany) against a hostile
// server: every malformed answer — cut short, wrong bytes, a record for a
// digest not asked for, lengths that lie, bad magic, trailing bytes — is a
// clear error, and no record's bytes reach the consumer unless whole and
// verified. Also: batches stay within the client's limits, blobs the
// server did not send are fetched alone, and a server without the endpoint
// (404) is read blob by blob.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  BATCH_CONTENT_TYPE,
  BATCH_MAGIC,
  BatchStatus,
  type BlobWant,
  recordHead,
} from '../../src/core/blob-batch-frame.ts';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { HttpBlobStore } from '../../src/remote/http-blob-store.ts';
import { HoardHttpClient } from '../../src/remote/http-client.ts';
import type { ReadManyRecord } from '../../src/store/blob-store.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data) };
};

/** How the fake server answers one batch: the digests asked, the raw response. */
type Answer = (digests: Digest[], res: ServerResponse) => void;

describe('HttpBlobStore.readMany against a hostile server', () => {
  const blobs = new Map<Digest, Buffer>();
  let answer: Answer | 'no-endpoint' = () => {};
  const asked: Digest[][] = [];
  let gets = 0;
  let server: Server;
  let store: HttpBlobStore;

  /** The honest framing of what the fake holds. */
  const honest = (digests: Digest[], res: ServerResponse) => {
    res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE });
    res.write(BATCH_MAGIC);
    for (const d of digests) {
      const b = blobs.get(d);
      if (!b) res.write(recordHead(d, BatchStatus.missing, 0));
      else {
        res.write(recordHead(d, BatchStatus.present, b.length));
        res.write(b);
      }
    }
    res.end();
  };

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/v1/blobs/batch') {
          if (answer === 'no-endpoint') {
            res.writeHead(404, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { code: 'HOARD_EBAD_REQUEST', message: 'no route' } }));
            return;
          }
          const digests = (JSON.parse(Buffer.concat(chunks).toString()) as { digests: Digest[] }).digests;
          asked.push(digests);
          answer(digests, res);
          return;
        }
        const m = /^\/v1\/blobs\/sha256\/([0-9a-f]{64})$/.exec(req.url ?? '');
        if (req.method === 'GET' && m) {
          gets++;
          const b = blobs.get(`sha256:${m[1]}`);
          if (!b) {
            res.writeHead(404, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { code: 'HOARD_EBLOB_NOT_FOUND', message: 'not found' } }));
          } else {
            res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.length });
            res.end(b);
          }
          return;
        }
        res.writeHead(500).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    store = new HttpBlobStore(new HoardHttpClient(url, undefined));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const put = (n: number) => {
    const b = blob(n);
    blobs.set(b.digest, b.data);
    return { digest: b.digest, size: n } satisfies BlobWant;
  };
  const collect = async (wants: BlobWant[]) => {
    const got: ReadManyRecord[] = [];
    let error: unknown;
    try {
      await store.readMany(wants, (r) => {
        got.push(r);
      });
    } catch (err) {
      error = err;
    }
    return { got, error };
  };
  /** Every record handed over is a requested digest with exactly its bytes. */
  const allVerified = (got: ReadManyRecord[]) => {
    for (const r of got) if (r.status === 'present') assert.equal(sha256(r.bytes), r.digest);
  };

  it('an honest answer: every record once, verified; missing said as such', async () => {
    answer = honest;
    const wants = [put(10), put(0), put(5000)];
    const absent = { digest: sha256(Buffer.from('absent')), size: 6 };
    const { got, error } = await collect([...wants, absent]);
    assert.equal(error, undefined);
    assert.equal(got.length, 4);
    allVerified(got);
    assert.deepEqual(got.at(-1), { digest: absent.digest, status: 'missing' });
  });

  it("the consumer's own failure comes out as itself, not as a response cut short", async () => {
    answer = honest;
    const mine = Object.assign(new RangeError('the consumer broke'), { marker: 1 });
    let calls = 0;
    await assert.rejects(
      store.readMany([put(10), put(20)], () => {
        calls++;
        throw mine;
      }),
      (err) => err === mine,
    );
    assert.equal(calls, 1);
  });

  it('batches stay within the digest and byte limits; several go at once', async () => {
    answer = honest;
    asked.length = 0;
    const wants = Array.from({ length: DEFAULTS.blobBatchDigests * 2 + 7 }, () => put(100));
    const big = Array.from({ length: 3 }, () => put(DEFAULTS.blobBatchBytes / 2 + 1));
    const { got, error } = await collect([...wants, ...big]);
    assert.equal(error, undefined);
    assert.equal(got.length, wants.length + big.length);
    allVerified(got);
    assert.ok(asked.every((d) => d.length <= DEFAULTS.blobBatchDigests));
    for (const d of asked) {
      const bytes = d.reduce((n, x) => n + blobs.get(x)!.length, 0);
      assert.ok(bytes <= DEFAULTS.blobBatchBytes, `${bytes} bytes in one batch`);
    }
    assert.equal(new Set(asked.flat()).size, asked.flat().length, 'no digest asked twice');
  });

  it('blobs the server did not send are fetched alone; a want too big for a batch too', async () => {
    const a = put(100);
    const b = put(200);
    const huge = put(DEFAULTS.blobBatchBytes + 1);
    answer = (digests, res) => {
      res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE });
      res.write(BATCH_MAGIC);
      res.write(recordHead(digests[0], BatchStatus.present, 100));
      res.write(blobs.get(digests[0]));
      res.end(recordHead(digests[1], BatchStatus.notSent, 0));
    };
    asked.length = 0;
    gets = 0;
    const { got, error } = await collect([a, b, huge]);
    assert.equal(error, undefined);
    assert.deepEqual(asked, [[a.digest, b.digest]]);
    assert.equal(gets, 2);
    assert.deepEqual(new Set(got.map((r) => r.digest)), new Set([a.digest, b.digest, huge.digest]));
    allVerified(got);
  });

  it('a server without the endpoint (404) is read blob by blob', async () => {
    answer = 'no-endpoint';
    gets = 0;
    const wants = [put(1), put(2), put(3)];
    const { got, error } = await collect(wants);
    assert.equal(error, undefined);
    assert.equal(got.length, 3);
    assert.equal(gets, 3);
    allVerified(got);
    // Remembered: the next readMany does not ask again.
    const { error: again } = await collect([put(4)]);
    assert.equal(again, undefined);
    assert.equal(gets, 4);
    store = new HttpBlobStore(
      new HoardHttpClient(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`), undefined),
    );
  });

  /** The head of a well-formed answer: status, type, magic. */
  const begin = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE });
    res.write(BATCH_MAGIC);
  };
  const hostile: [string, string, (w: BlobWant[], res: ServerResponse) => void][] = [
    [
      'cut short in the middle of a body',
      'HOARD_ETRUNCATED',
      ([a, b], res) => {
        begin(res);
        res.write(recordHead(a.digest, BatchStatus.present, a.size));
        res.write(blobs.get(a.digest));
        res.write(recordHead(b.digest, BatchStatus.present, b.size));
        res.end(blobs.get(b.digest)!.subarray(0, 10));
      },
    ],
    [
      'cut short between records (fewer records than asked)',
      'HOARD_ETRUNCATED',
      ([a], res) => {
        begin(res);
        res.write(recordHead(a.digest, BatchStatus.present, a.size));
        res.end(blobs.get(a.digest));
      },
    ],
    [
      'the connection reset mid-body',
      'HOARD_ETRUNCATED',
      ([a, b], res) => {
        begin(res);
        res.write(recordHead(a.digest, BatchStatus.present, a.size));
        res.write(blobs.get(a.digest));
        res.write(recordHead(b.digest, BatchStatus.present, b.size), () => res.socket?.destroy());
      },
    ],
    [
      'wrong bytes for a digest',
      'HOARD_EDIGEST_MISMATCH',
      ([a, b], res) => {
        begin(res);
        res.write(recordHead(a.digest, BatchStatus.present, a.size));
        res.write(blobs.get(a.digest));
        res.write(recordHead(b.digest, BatchStatus.present, b.size));
        res.end(randomBytes(b.size));
      },
    ],
    [
      'a record for a digest not asked for',
      'HOARD_EREMOTE',
      ([a], res) => {
        const other = blob(a.size);
        begin(res);
        res.write(recordHead(other.digest, BatchStatus.present, a.size));
        res.end(other.data);
      },
    ],
    [
      'the records out of order',
      'HOARD_EREMOTE',
      ([a, b], res) => {
        begin(res);
        res.write(recordHead(b.digest, BatchStatus.present, b.size));
        res.write(blobs.get(b.digest));
        res.write(recordHead(a.digest, BatchStatus.present, a.size));
        res.end(blobs.get(a.digest));
      },
    ],
    [
      'an oversized length (4 GiB - 1), never allocated',
      'HOARD_EREMOTE',
      ([a], res) => {
        begin(res);
        res.end(recordHead(a.digest, BatchStatus.present, 0xffff_ffff));
      },
    ],
    [
      'a length one byte longer than the blob',
      'HOARD_EREMOTE',
      ([a], res) => {
        begin(res);
        res.write(recordHead(a.digest, BatchStatus.present, a.size + 1));
        res.end(Buffer.concat([blobs.get(a.digest)!, Buffer.from('x')]));
      },
    ],
    [
      'a "missing" record carrying bytes',
      'HOARD_EREMOTE',
      ([a], res) => {
        begin(res);
        res.end(recordHead(a.digest, BatchStatus.missing, 5));
      },
    ],
    [
      'an unknown status',
      'HOARD_EREMOTE',
      ([a], res) => {
        begin(res);
        const head = recordHead(a.digest, BatchStatus.present, 0);
        head[32] = 7;
        res.end(head);
      },
    ],
    [
      'bytes after the last record',
      'HOARD_EREMOTE',
      (wants, res) => {
        honestFor(wants, res, false);
        res.end(Buffer.from('trailing'));
      },
    ],
    [
      'no magic (some other body with the right type)',
      'HOARD_EREMOTE',
      (_w, res) => {
        res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE });
        res.end('<html>proxy error</html>');
      },
    ],
    [
      'another content type',
      'HOARD_EREMOTE',
      (_w, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>captive portal</html>');
      },
    ],
    [
      'an empty body',
      'HOARD_ETRUNCATED',
      (_w, res) => {
        res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE });
        res.end();
      },
    ],
  ];
  const honestFor = (wants: BlobWant[], res: ServerResponse, end = true) => {
    res.writeHead(200, { 'content-type': BATCH_CONTENT_TYPE });
    res.write(BATCH_MAGIC);
    for (const w of wants) {
      res.write(recordHead(w.digest, BatchStatus.present, w.size));
      res.write(blobs.get(w.digest));
    }
    if (end) res.end();
  };

  for (const [what, code, respond] of hostile)
    it(`${what}: ${code}, and nothing unverified handed over`, async () => {
      const wants = [put(3000), put(5000)];
      answer = (_digests, res) => respond(wants, res);
      const { got, error } = await collect(wants);
      assert.ok(isHoardError(error, code as never), `${what}: got ${String(error)}`);
      assert.ok((error as Error).message.length > 10);
      allVerified(got);
      // Only the trailing-bytes case had every record whole (and verified) before the fault.
      if (!what.startsWith('bytes after')) assert.ok(got.length < wants.length);
      for (const r of got) assert.equal(r.digest, wants[got.indexOf(r)].digest);
    });

  it('a wanted size that is not a size, or a digest wanted twice, is refused before any request', async () => {
    const { readMany } = await import('../../src/store/read-many.ts');
    const a = put(10);
    asked.length = 0;
    for (const wants of [[a, a], [{ digest: a.digest, size: -1 }], [{ digest: a.digest, size: 1.5 }]])
      await assert.rejects(
        readMany(store, wants, () => {}, { concurrency: 2 }),
        (e) => isHoardError(e, 'HOARD_EBAD_REQUEST'),
      );
    assert.equal(asked.length, 0);
  });
});
