// FsBlobStore.createWriter, the positional writer fills use: what it wrote
// is readable while it grows, nothing is visible before commit() verified
// size and digest, and a failed or aborted writer leaves no file behind.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { readAll } from '../support/streams.ts';

async function withStore(fn: (store: FsBlobStore) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'hoard-writer-'));
  try {
    await fn(await FsBlobStore.open(root));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

describe('filesystem positional writer', () => {
  it('is readable while it grows and visible only once committed', () =>
    withStore(async (store) => {
      const data = randomBytes(300_000);
      const digest = sha256(data);
      const w = await store.createWriter(digest, data.length);
      await w.write(data.subarray(0, 100_000));
      assert.equal(w.bytesWritten, 100_000);
      const buf = Buffer.alloc(10);
      assert.equal(await w.readAt(buf, 10, 99_990), 10);
      assert.deepEqual(buf, data.subarray(99_990, 100_000));
      assert.equal(await store.has(digest), false, 'nothing visible before commit');
      await w.write(data.subarray(100_000));
      assert.deepEqual(await w.commit(), { created: true });
      assert.deepEqual(await readAll(await store.read(digest)), data);
      // Followers still read through the open descriptor after the publish.
      assert.equal(await w.readAt(buf, 10, 0), 10);
      await w.close();
      assert.deepEqual(await readdir(store.tmpDir), []);
    }));

  it('reports created: false when the blob is already there, and keeps that copy', () =>
    withStore(async (store) => {
      const data = randomBytes(5000);
      const digest = sha256(data);
      await store.write(digest, Readable.from([data]));
      const w = await store.createWriter(digest, data.length);
      await w.write(data);
      assert.deepEqual(await w.commit(), { created: false });
      await w.close();
      assert.deepEqual(await readAll(await store.read(digest)), data);
      assert.deepEqual(await readdir(store.tmpDir), []);
    }));

  it('refuses wrong bytes, a short blob and bytes past the size, publishing nothing', () =>
    withStore(async (store) => {
      const data = randomBytes(4000);
      const digest = sha256(data);
      const wrong = await store.createWriter(digest, data.length);
      await wrong.write(randomBytes(4000));
      await assert.rejects(wrong.commit(), (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'));
      await wrong.close();
      const short = await store.createWriter(digest, data.length);
      await short.write(data.subarray(0, 3000));
      await assert.rejects(short.commit(), (e) => isHoardError(e, 'HOARD_ETRUNCATED'));
      await short.close();
      const long = await store.createWriter(digest, data.length);
      await long.write(data);
      await assert.rejects(long.write(Buffer.from('x')), (e) => isHoardError(e, 'HOARD_ETOO_LARGE'));
      await long.abort();
      await long.close();
      assert.equal(await store.has(digest), false);
      assert.deepEqual(await readdir(store.tmpDir), []);
    }));
});
