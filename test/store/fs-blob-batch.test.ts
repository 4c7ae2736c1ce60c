// FsBlobStore's batched writes (fs-blob-batch.ts) and its synchronous small
// reads (syncReads, what the CLI's pull uses on a file:// remote). The
// batch's crash behaviour is tested with a killed child process in
// test/sync/batched-push-crash.test.ts.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { isBatching } from '../../src/store/blob-batch.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { fsck } from '../../src/store/fsck.ts';
import { readAll } from '../support/streams.ts';
import { blobStoreConformance } from './blob-store-conformance.ts';

async function tempRoot() {
  const root = await mkdtemp(join(tmpdir(), 'hoard-batch-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

blobStoreConformance('filesystem, synchronous small reads', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsBlobStore.open(root, { syncReads: true }), cleanup };
});

describe('FsBlobStore batch', () => {
  it('later batches of the store skip the mkdir of known shards, and make a shard removed since again', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      const a = Buffer.from('first');
      const da = sha256(a);
      const first = store.batch();
      await first.add(da, a);
      await first.flush();
      // The shard is removed behind the store's back (its blob with it).
      await rm(join(store.blobsDir, hexOf(da).slice(0, 2)), { recursive: true });
      // Another blob in the same shard.
      let b: Buffer;
      let n = 0;
      do b = Buffer.from(`second ${n++}`);
      while (hexOf(sha256(b)).slice(0, 2) !== hexOf(da).slice(0, 2));
      const second = store.batch();
      assert.deepEqual(await second.add(sha256(b), b), { created: true });
      await second.flush();
      assert.deepEqual(await readAll(await store.read(sha256(b))), b);
    } finally {
      await cleanup();
    }
  });

  it('stores blobs from memory, once each, readable and fsck-clean after flush', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      assert.ok(isBatching(store));
      const existing = Buffer.from('already there');
      await store.write(sha256(existing), [existing]);
      const batch = store.batch();
      const buf = Buffer.alloc(1000);
      const digests: Digest[] = [];
      // One reused buffer, as the scan does: add() is done with it once it resolves.
      for (let i = 0; i < 300; i++) {
        buf.fill(i % 251);
        buf.writeUInt32BE(i, 0);
        const d = sha256(buf);
        digests.push(d);
        assert.deepEqual(await batch.add(d, buf), { created: true });
      }
      assert.deepEqual(await batch.add(digests[7], Buffer.from('ignored: same digest again')), {
        created: false,
      });
      assert.deepEqual(await batch.add(sha256(existing), existing), { created: false });
      await batch.flush();
      for (const [i, d] of digests.entries()) {
        const bytes = await readAll(await store.read(d));
        assert.equal(bytes.readUInt32BE(0), i);
        assert.equal(sha256(bytes), d);
      }
      assert.deepEqual(await readdir(store.tmpDir), []);
      const report = await fsck(root);
      assert.equal(report.blobsChecked, 301);
      assert.equal(report.clean, true);
    } finally {
      await cleanup();
    }
  });

  it('a failed publish surfaces at flush (and the next add), and leaves no temp file', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      const b = Buffer.from('cannot be published');
      const d = sha256(b);
      // A file where the blob's shard folder must go: the link cannot happen.
      const shard = join(store.blobsDir, hexOf(d).slice(0, 2));
      await writeFile(shard, 'in the way');
      const batch = store.batch();
      assert.deepEqual(await batch.add(d, b), { created: true });
      await assert.rejects(batch.flush(), { code: /^(EEXIST|ENOTDIR)$/ });
      const c = Buffer.from('after the failure');
      await assert.rejects(batch.add(sha256(c), c), { code: /^(EEXIST|ENOTDIR)$/ });
      await batch.abort();
      assert.deepEqual(await readdir(store.tmpDir), []);
      assert.equal(await readFile(shard, 'utf8'), 'in the way');
    } finally {
      await cleanup();
    }
  });

  it('a failed temp file fails the add at once', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      await rm(store.tmpDir, { recursive: true });
      await writeFile(store.tmpDir, 'not a folder');
      const b = Buffer.from('x');
      await assert.rejects(store.batch().add(sha256(b), b), { code: 'ENOTDIR' });
    } finally {
      await cleanup();
    }
  });
});

describe('FsBlobStore syncReads', () => {
  it('reads small blobs whole, streams large ones, and reports a missing blob', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root, { syncReads: true });
      const small = Buffer.from('small blob');
      const large = Buffer.alloc(DEFAULTS.syncSmallFileBytes + 10, 7);
      await store.write(sha256(small), [small]);
      await store.write(sha256(large), [large]);
      assert.deepEqual(await readAll(await store.read(sha256(small))), small);
      assert.deepEqual(await readAll(await store.read(sha256(large))), large);
      assert.deepEqual(
        await readAll(await store.read(sha256(small), { offset: 2, length: 3 })),
        small.subarray(2, 5),
      );
      await assert.rejects(store.read(sha256('absent')), { code: 'HOARD_EBLOB_NOT_FOUND' });
      // Corrupt on disk: the bytes are what the file holds (the reader's digest check rejects them).
      await writeFile(store.pathOf(sha256(small)), 'tampered');
      assert.equal((await readAll(await store.read(sha256(small)))).toString(), 'tampered');
      assert.equal((await readFile(store.pathOf(sha256(large)))).length, large.length);
    } finally {
      await cleanup();
    }
  });

  it('readMany reads one blob at a time into one reused buffer, verified; longer, shorter and absent files are said', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root, { syncReads: true });
      const blobs = Array.from({ length: 5 }, (_, i) => Buffer.alloc(1000 + i * 10, i + 1));
      for (const b of blobs) await store.write(sha256(b), [b]);
      const wants = blobs.map((b) => ({ digest: sha256(b), size: b.length }));
      const seen: Buffer[] = [];
      const memory = new Set<ArrayBufferLike>();
      await store.readMany([...wants, { digest: sha256('absent'), size: 6 }], (r) => {
        if (r.status === 'missing') {
          seen.push(Buffer.from('missing'));
          return;
        }
        memory.add(r.bytes.buffer);
        seen.push(Buffer.from(r.bytes));
      });
      assert.deepEqual(seen, [...blobs, Buffer.from('missing')]);
      assert.equal(memory.size, 1, 'one buffer for every blob, no allocation per blob');
      // A file longer than wanted, or shorter: corrupt, never a short or clipped read.
      const [a, b] = blobs;
      await writeFile(store.pathOf(sha256(a)), Buffer.concat([a, Buffer.from('x')]));
      await assert.rejects(
        store.readMany([wants[0]], () => {}),
        { code: 'HOARD_EDIGEST_MISMATCH' },
      );
      await writeFile(store.pathOf(sha256(b)), b.subarray(1));
      await assert.rejects(
        store.readMany([wants[1]], () => {}),
        { code: 'HOARD_EDIGEST_MISMATCH' },
      );
    } finally {
      await cleanup();
    }
  });
});
