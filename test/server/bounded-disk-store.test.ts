// The bounded disk store keeps its own index: every way bytes enter (a write,
// a fill's positional writer) reserves room first and counts the blob once
// published, every way one leaves (delete, quarantine) uncounts it, and no
// reservation outlives the write that made it.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { BoundedDiskStore } from '../../src/server/bounded-disk-store.ts';
import { DiskIndex } from '../../src/server/disk-index.ts';
import { TieredBlobStore } from '../../src/server/tiered-blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { readAll } from '../support/streams.ts';

type Setup = Awaited<ReturnType<typeof setup>>;

/** Runs a test against a fresh bounded disk, cleaning up after it. */
const withDisk = (fn: (t: Setup) => Promise<void>) => async () => {
  const t = await setup();
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
};

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'hoard-bounded-'));
  const fs = await FsBlobStore.open(join(root, 'disk'));
  const index = new DiskIndex(fs, { maxBytes: 64 * 1024 * 1024, mode: 'cache' });
  await index.open();
  await index.reconciled();
  const disk = new BoundedDiskStore(fs, index);
  return {
    root,
    fs,
    index,
    disk,
    cleanup: async () => {
      await index.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

describe('bounded disk store', () => {
  it(
    'counts a write once published and ends its reservation; delete and quarantine uncount',
    withDisk(async (t) => {
      const a = randomBytes(10_000);
      const b = randomBytes(20_000);
      await t.disk.write(sha256(a), Readable.from([a]), { size: a.length });
      await t.disk.write(sha256(b), Readable.from([b]), { size: b.length });
      assert.equal(t.index.bytes, 30_000);
      assert.equal(t.index.pending, 0);
      assert.equal(await t.disk.delete(sha256(a)), true);
      assert.equal(t.index.bytes, 20_000);
      assert.ok(await t.disk.quarantine(sha256(b)));
      assert.equal(t.index.bytes, 0);
      assert.equal(t.index.count, 0);
    }),
  );

  it(
    'a positional writer holds its reservation until commit or abort, then counts only what it published',
    withDisk(async (t) => {
      const data = randomBytes(50_000);
      const w = await t.disk.createWriter(sha256(data), data.length);
      assert.equal(t.index.pending, data.length, 'reserved before a byte is written');
      await w.write(data);
      await w.commit();
      await w.close();
      assert.equal(t.index.pending, 0);
      assert.equal(t.index.bytes, data.length);
      const other = randomBytes(7000);
      const failed = await t.disk.createWriter(sha256(other), other.length);
      await failed.write(randomBytes(7000));
      await assert.rejects(failed.commit());
      await failed.close();
      assert.equal(t.index.pending, 0);
      assert.equal(t.index.bytes, data.length);
    }),
  );

  it(
    'a fill through the tier stack lands in the index with no reservation left',
    withDisk(async (t) => {
      const shared = await FsBlobStore.open(join(t.root, 'shared'));
      const data = randomBytes(300_000);
      const digest = sha256(data);
      await shared.write(digest, Readable.from([data]));
      const blobs = new TieredBlobStore({ memory: new MemoryBlobStore(), disk: t.disk, shared });
      assert.deepEqual(await readAll(await blobs.read(digest)), data);
      await blobs.close();
      assert.equal(await t.fs.has(digest), true);
      assert.equal(t.index.bytes, data.length);
      assert.equal(t.index.pending, 0);
    }),
  );
});
