// Tests of the GCS emulator test fixture, driven through the official
// @google-cloud/storage client: if the client is happy with the emulator, the
// GCS backend tests built on it exercise the client's real request paths.
// A few raw-HTTP tests pin protocol details the client does not expose.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { CRC32C, type GetFilesOptions, Storage } from '@google-cloud/storage';
import { type GcsEmulator, startGcsEmulator } from './gcs-emulator/index.ts';

const BUCKET = 'hoard-test';
let emu: GcsEmulator;
let storage: Storage;

before(async () => {
  emu = await startGcsEmulator({ buckets: [BUCKET] });
  storage = new Storage({ apiEndpoint: emu.url, projectId: 'test' });
});

after(async () => {
  await emu.close();
});

const bucket = () => storage.bucket(BUCKET);

/** HTTP status of an error from the client: ApiError has `code`, GaxiosError `status`. */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: number } };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.status === 'number') return e.status;
  return e.response?.status;
}

async function rejectsWithStatus(p: Promise<unknown>, status: number): Promise<void> {
  await assert.rejects(p, (err) => {
    assert.equal(statusOf(err), status, `expected HTTP ${status}, got: ${String(err)}`);
    return true;
  });
}

/** Deterministic pseudo-random bytes (xorshift), streamed in chunks. */
function* pseudoRandomChunks(total: number, chunkSize: number, seed = 1): Generator<Buffer> {
  let x = seed >>> 0 || 1;
  for (let sent = 0; sent < total; sent += chunkSize) {
    const chunk = Buffer.allocUnsafe(Math.min(chunkSize, total - sent));
    for (let i = 0; i < chunk.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chunk[i] = x & 0xff;
    }
    yield chunk;
  }
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

test('bucket exists, missing bucket does not, buckets can be created', async () => {
  assert.deepEqual(await bucket().exists(), [true]);
  assert.deepEqual(await storage.bucket('no-such-bucket').exists(), [false]);
  await rejectsWithStatus(storage.bucket('no-such-bucket').file('x').save('x'), 404);

  await storage.createBucket('created-bucket');
  assert.deepEqual(await storage.bucket('created-bucket').exists(), [true]);
  await rejectsWithStatus(storage.createBucket('created-bucket'), 409);
});

test('save with ifGenerationMatch=0 creates once, then fails with 412', async () => {
  for (const resumable of [true, false]) {
    const file = bucket().file(`create-once-${resumable}`);
    await file.save('first', { resumable, preconditionOpts: { ifGenerationMatch: 0 } });
    await rejectsWithStatus(
      file.save('second', { resumable, preconditionOpts: { ifGenerationMatch: 0 } }),
      412,
    );
    assert.equal((await file.download())[0].toString(), 'first');
  }
});

test('resumable upload of ~20 MB from a streamed source, downloaded with validation', async () => {
  const size = 20 * 1024 * 1024 + 12345;
  const hash = createHash('md5');
  const source = Readable.from(
    (function* () {
      for (const chunk of pseudoRandomChunks(size, 64 * 1024)) {
        hash.update(chunk);
        yield chunk;
      }
    })(),
  );
  const file = bucket().file('big/object.bin');
  const uploadsBefore = emu.stats.uploads;
  await pipeline(source, file.createWriteStream({ preconditionOpts: { ifGenerationMatch: 0 } }));
  assert.equal(emu.stats.uploads, uploadsBefore + 1);

  const [meta] = await file.getMetadata();
  assert.equal(meta.size, String(size));
  assert.equal(meta.md5Hash, hash.digest('base64'));

  for (const validation of ['crc32c', 'md5'] as const) {
    const [data] = await file.download({ validation });
    assert.equal(data.length, size);
    assert.equal(md5(data), meta.md5Hash);
  }
});

test('chunked resumable upload (308 + Range between chunks)', async () => {
  const data = Buffer.concat([...pseudoRandomChunks(2.5 * 1024 * 1024, 100_000, 7)]);
  const file = bucket().file('chunked.bin');
  await pipeline(Readable.from([data]), file.createWriteStream({ chunkSize: 1024 * 1024 }));
  const [back] = await file.download();
  assert.ok(back.equals(data));
});

test('range reads: download({start,end}), createReadStream, suffix, 416', async () => {
  const file = bucket().file('range.txt');
  const text = '0123456789abcdefghij';
  await file.save(text);

  assert.equal((await file.download({ start: 3, end: 7 }))[0].toString(), '34567');
  assert.equal((await file.download({ start: 15 }))[0].toString(), 'fghij');
  assert.equal((await file.download({ start: 18, end: 100 }))[0].toString(), 'ij');

  const chunks: Buffer[] = [];
  for await (const chunk of file.createReadStream({ start: 10, end: 12 })) chunks.push(chunk);
  assert.equal(Buffer.concat(chunks).toString(), 'abc');

  // end < 0 is the client's tail request: `Range: bytes=-4`.
  assert.equal((await file.download({ end: -4 }))[0].toString(), 'ghij');

  const res = await fetch(`${emu.url}/storage/v1/b/${BUCKET}/o/range.txt?alt=media`, {
    headers: { Range: 'bytes=20-' },
  });
  assert.equal(res.status, 416);
  assert.equal(res.headers.get('content-range'), 'bytes */20');
  await res.body?.cancel();

  const partial = await fetch(`${emu.url}/download/storage/v1/b/${BUCKET}/o/range.txt?alt=media`, {
    headers: { Range: 'bytes=2-4' },
  });
  assert.equal(partial.status, 206);
  assert.equal(partial.headers.get('content-range'), 'bytes 2-4/20');
  assert.equal(await partial.text(), '234');
});

test('generation and metageneration', async () => {
  const file = bucket().file('gen.txt');
  await file.save('v1');
  const [m1] = await file.getMetadata();
  assert.match(String(m1.generation), /^\d+$/);
  assert.equal(m1.metageneration, '1');
  assert.equal(m1.size, '2');

  await file.setMetadata({ metadata: { owner: 'hoard' }, contentType: 'text/x-test' });
  const [m2] = await file.getMetadata();
  assert.equal(m2.generation, m1.generation, 'metadata changes keep the generation');
  assert.equal(m2.metageneration, '2');
  assert.equal(m2.contentType, 'text/x-test');
  assert.deepEqual(m2.metadata, { owner: 'hoard' });

  await file.save('v2');
  const [m3] = await file.getMetadata();
  assert.ok(
    BigInt(String(m3.generation)) > BigInt(String(m1.generation)),
    'a rewrite gets a newer generation',
  );
  assert.equal(m3.metageneration, '1');

  // Reading a generation that is no longer live is a 404 (no versioning).
  await rejectsWithStatus(
    bucket()
      .file('gen.txt', { generation: Number(m1.generation) })
      .download(),
    404,
  );
  const [live] = await bucket()
    .file('gen.txt', { generation: Number(m3.generation) })
    .download();
  assert.equal(live.toString(), 'v2');
});

test('conditional overwrite: current generation succeeds, stale fails with 412', async () => {
  for (const resumable of [true, false]) {
    const file = bucket().file(`cas-${resumable}`);
    await file.save('a', { resumable });
    const [{ generation: g1 }] = await file.getMetadata();
    await file.save('b', { resumable, preconditionOpts: { ifGenerationMatch: Number(g1) } });
    await rejectsWithStatus(
      file.save('c', { resumable, preconditionOpts: { ifGenerationMatch: Number(g1) } }),
      412,
    );
    assert.equal((await file.download())[0].toString(), 'b');
  }
  const file = bucket().file('cas-true');
  const [{ metageneration }] = await file.getMetadata();
  await rejectsWithStatus(file.setMetadata({ metadata: { k: 'v' } }, { ifMetagenerationMatch: 99 }), 412);
  await file.setMetadata({ metadata: { k: 'v' } }, { ifMetagenerationMatch: Number(metageneration) });
});

test('delete, with and without preconditions; missing objects are 404', async () => {
  const file = bucket().file('to-delete');
  await file.save('x');
  const [{ generation }] = await file.getMetadata();
  await rejectsWithStatus(file.delete({ ifGenerationMatch: Number(generation) + 1 }), 412);
  await file.delete({ ifGenerationMatch: Number(generation) });
  assert.deepEqual(await file.exists(), [false]);
  await rejectsWithStatus(file.delete(), 404);
  await rejectsWithStatus(file.getMetadata(), 404);
  await rejectsWithStatus(file.download(), 404);
});

test('getFiles: prefix, maxResults paging, autoPaginate, delimiter', async () => {
  const names = ['page/a', 'page/b', 'page/c/1', 'page/c/2', 'page/d', 'pagex', 'other'];
  await Promise.all(names.map((n) => bucket().file(n).save(n)));

  const pages: string[][] = [];
  let query: GetFilesOptions | null = { prefix: 'page/', maxResults: 2, autoPaginate: false };
  while (query) {
    const [files, next] = await bucket().getFiles(query);
    pages.push(files.map((f) => f.name));
    query = next as GetFilesOptions | null; // set while the response had a nextPageToken
  }
  assert.deepEqual(pages, [['page/a', 'page/b'], ['page/c/1', 'page/c/2'], ['page/d']]);

  const [all] = await bucket().getFiles({ prefix: 'page/' });
  assert.deepEqual(
    all.map((f) => f.name),
    ['page/a', 'page/b', 'page/c/1', 'page/c/2', 'page/d'],
  );
  assert.equal(all[0].metadata.size, '6');

  const [top, , resp] = await bucket().getFiles({ prefix: 'page/', delimiter: '/', autoPaginate: false });
  assert.deepEqual(
    top.map((f) => f.name),
    ['page/a', 'page/b', 'page/d'],
  );
  assert.deepEqual((resp as { prefixes?: string[] }).prefixes, ['page/c/']);
});

test('checksums: crc32c (Castagnoli) and md5 match independent implementations', async () => {
  // The standard CRC-32C check value: crc32c("123456789") = 0xE3069283.
  const vector = bucket().file('crc-vector');
  await vector.save('123456789', { resumable: false });
  const [vm] = await vector.getMetadata();
  assert.equal(vm.crc32c, Buffer.from([0xe3, 0x06, 0x92, 0x83]).toString('base64'));

  const data = Buffer.concat([...pseudoRandomChunks(1_000_003, 65_536, 3)]);
  const file = bucket().file('checksummed.bin');
  await file.save(data);
  const [meta] = await file.getMetadata();
  const crc = new CRC32C();
  crc.update(data);
  assert.equal(meta.crc32c, crc.toString());
  assert.equal(meta.md5Hash, md5(data));

  // Downloads carry x-goog-hash, which the client validates (both kinds).
  for (const validation of ['crc32c', 'md5'] as const) {
    assert.ok((await file.download({ validation }))[0].equals(data));
  }
  const res = await fetch(`${emu.url}/storage/v1/b/${BUCKET}/o/checksummed.bin?alt=media`);
  assert.equal(res.headers.get('x-goog-hash'), `crc32c=${meta.crc32c},md5=${meta.md5Hash}`);
  assert.equal(res.headers.get('x-goog-stored-content-encoding'), 'identity');
  await res.body?.cancel();

  // A declared checksum that does not match the data is rejected, like GCS.
  await rejectsWithStatus(
    bucket()
      .file('bad-md5')
      .save('payload', { resumable: false, metadata: { md5Hash: md5(Buffer.from('other')) } }),
    400,
  );
  assert.deepEqual(await bucket().file('bad-md5').exists(), [false]);
});

test('stats count media downloads and uploads', async () => {
  const file = bucket().file('counted');
  const before = { ...emu.stats };
  await file.save('abc', { resumable: false });
  await file.save('abcd');
  await file.getMetadata();
  await file.download();
  await file.download({ start: 1, end: 2 });
  assert.deepEqual(emu.stats, { uploads: before.uploads + 2, mediaDownloads: before.mediaDownloads + 2 });
});

test('STORAGE_EMULATOR_HOST also works (JSON calls without /storage/v1)', async () => {
  // The variable is read once, in the Storage constructor.
  process.env.STORAGE_EMULATOR_HOST = emu.url;
  let viaEnv: Storage;
  try {
    viaEnv = new Storage({ projectId: 'test' });
  } finally {
    delete process.env.STORAGE_EMULATOR_HOST;
  }
  const file = viaEnv.bucket(BUCKET).file('via-env');
  assert.deepEqual(await viaEnv.bucket(BUCKET).exists(), [true]);
  await file.save('env', { preconditionOpts: { ifGenerationMatch: 0 } });
  assert.equal((await file.download())[0].toString(), 'env');
});

test('raw protocol: error shape, 304 on read NotMatch, resumable chunks and status queries', async () => {
  const base = `${emu.url}/storage/v1/b/${BUCKET}/o`;
  const missing = await fetch(`${base}/nope`);
  assert.equal(missing.status, 404);
  const body = (await missing.json()) as { error: { code: number; errors: { reason: string }[] } };
  assert.equal(body.error.code, 404);
  assert.equal(body.error.errors[0].reason, 'notFound');

  await bucket().file('raw').save('raw');
  const [{ generation }] = await bucket().file('raw').getMetadata();
  const notModified = await fetch(`${base}/raw?alt=media&ifGenerationNotMatch=${generation}`);
  assert.equal(notModified.status, 304);
  const failed = await fetch(`${base}/raw?ifGenerationMatch=1`, { method: 'DELETE' });
  assert.equal(failed.status, 412);
  const failedBody = (await failed.json()) as { error: { code: number; errors: { reason: string }[] } };
  assert.equal(failedBody.error.code, 412);
  assert.equal(failedBody.error.errors[0].reason, 'conditionNotMet');

  const init = await fetch(
    `${emu.url}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&name=raw-resumable`,
    {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Upload-Content-Type': 'text/plain' },
      body: JSON.stringify({ metadata: { via: 'raw' } }),
    },
  );
  assert.equal(init.status, 200);
  const session = init.headers.get('location') as string;
  assert.match(session, /upload_id=/);

  const put = (range: string, data = '') =>
    fetch(session, { method: 'PUT', headers: { 'Content-Range': range }, body: data });
  const status0 = await put('bytes */*');
  assert.equal(status0.status, 308);
  assert.equal(status0.headers.get('range'), null, 'nothing persisted yet');
  const r1 = await put('bytes 0-9/*', '0123456789');
  assert.equal(r1.status, 308);
  assert.equal(r1.headers.get('range'), 'bytes=0-9');
  // A retried, overlapping chunk only adds the new bytes.
  const r2 = await put('bytes 5-14/*', '56789abcde');
  assert.equal(r2.headers.get('range'), 'bytes=0-14');
  assert.equal((await put('bytes */*')).headers.get('range'), 'bytes=0-14');
  const done = await put('bytes 15-19/20', 'fghij');
  assert.equal(done.status, 200);
  const obj = (await done.json()) as Record<string, unknown>;
  assert.equal(obj.size, '20');
  assert.equal(obj.contentType, 'text/plain');
  assert.deepEqual(obj.metadata, { via: 'raw' });
  assert.equal((await put('bytes */20')).status, 200, 'a finished session answers with the object');
  assert.equal((await bucket().file('raw-resumable').download())[0].toString(), '0123456789abcdefghij');

  // ifGenerationMatch=0 is checked again at commit: a racing writer wins.
  const init2 = await fetch(
    `${emu.url}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&name=raced&ifGenerationMatch=0`,
    { method: 'POST' },
  );
  const session2 = init2.headers.get('location') as string;
  await bucket().file('raced').save('winner', { resumable: false });
  const lost = await fetch(session2, {
    method: 'PUT',
    headers: { 'Content-Range': 'bytes 0-3/4' },
    body: 'lose',
  });
  assert.equal(lost.status, 412);
  await lost.body?.cancel();
  assert.equal((await bucket().file('raced').download())[0].toString(), 'winner');
});
