// FsBlobStore's batched writes (fs-blob-batch.ts) and its synchronous small
// reads (syncReads, what the CLI's pull uses on a file:// remote). The
// batch's crash behaviour is tested with a killed child process in
// test/sync/batched-push-crash.test.ts.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { isBatching } from '../../src/store/blob-batch.ts';
import { type FilesystemSync, FsBlobBatch } from '../../src/store/fs-blob-batch.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { fsck } from '../../src/store/fsck.ts';
import type { SyncFilesystem } from '../../src/store/sync-filesystem.ts';
import { readAll } from '../support/streams.ts';
import { waitUntil } from '../support/wait.ts';
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
      const readMany = store.readMany;
      assert.ok(readMany, 'a store with syncReads reads many at once');
      assert.equal(
        (await FsBlobStore.open(root)).readMany,
        undefined,
        'without syncReads callers read through their remote (its concurrency, its signal)',
      );
      const blobs = Array.from({ length: 5 }, (_, i) => Buffer.alloc(1000 + i * 10, i + 1));
      for (const b of blobs) await store.write(sha256(b), [b]);
      const wants = blobs.map((b) => ({ digest: sha256(b), size: b.length }));
      const seen: Buffer[] = [];
      const memory = new Set<ArrayBufferLike>();
      await readMany([...wants, { digest: sha256('absent'), size: 6 }], (r) => {
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
        readMany([wants[0]], () => {}),
        { code: 'HOARD_EDIGEST_MISMATCH' },
      );
      await writeFile(store.pathOf(sha256(b)), b.subarray(1));
      await assert.rejects(
        readMany([wants[1]], () => {}),
        { code: 'HOARD_EDIGEST_MISMATCH' },
      );
    } finally {
      await cleanup();
    }
  });
});

describe('FsBlobStore batch, filesystem mode (one syncfs per round, not an fsync per blob)', () => {
  /** A syncfs stand-in the test releases by hand, recording what each call saw. */
  function manualSync() {
    const calls: { path: string; release: () => void; fail: (err: Error) => void }[] = [];
    const run: SyncFilesystem = (path) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ path, release: resolve, fail: reject });
      });
    return { calls, run };
  }
  const mode = (run: SyncFilesystem, roundFiles = 1000, minBlobs = 0): FilesystemSync => ({
    run,
    failed: false,
    minBlobs,
    roundFiles,
    roundBytes: 1 << 30,
    maxUnsyncedFiles: 10_000,
  });
  const blobs = (n: number, tag: string) =>
    Array.from({ length: n }, (_, i) => {
      const bytes = Buffer.from(`${tag} ${i} `.repeat(20));
      return { bytes, digest: sha256(bytes) };
    });
  const present = (store: FsBlobStore, d: Digest) => existsSync(store.pathOf(d));

  it('links no blob before a syncfs that began after its temp was written, and syncs the names before flush resolves', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      const sync = manualSync();
      const batch = new FsBlobBatch(store.blobsDir, store.tmpDir, 8, new Set(), mode(sync.run, 3));
      const all = blobs(7, 'round');
      // Three temps make a round: its syncfs starts, nothing is linked while it runs.
      for (const b of all.slice(0, 3))
        assert.deepEqual(await batch.add(b.digest, b.bytes), { created: true });
      assert.equal(sync.calls.length, 1);
      assert.equal(sync.calls[0].path, store.tmpDir);
      // Written while that syncfs runs: not covered by it.
      for (const b of all.slice(3)) await batch.add(b.digest, b.bytes);
      assert.equal((await readdir(store.tmpDir)).length, 7);
      assert.ok(all.every((b) => !present(store, b.digest)));
      sync.calls[0].release();
      // Its three are linked once it returned; the next round (the four written meanwhile) starts.
      await waitUntil(() => sync.calls.length === 2, 'the second round');
      assert.ok(all.slice(0, 3).every((b) => present(store, b.digest)));
      assert.ok(all.slice(3).every((b) => !present(store, b.digest)));
      let flushed = false;
      const flush = batch.flush().then(() => {
        flushed = true;
      });
      sync.calls[1].release();
      // Then one syncfs of the blobs folder for the names; flush waits for it.
      await waitUntil(() => sync.calls.length === 3, 'the names syncfs');
      assert.equal(sync.calls[2].path, store.blobsDir);
      assert.ok(all.every((b) => present(store, b.digest)));
      assert.equal(flushed, false);
      sync.calls[2].release();
      await flush;
      assert.deepEqual(await readdir(store.tmpDir), []);
      for (const b of all) assert.deepEqual(await readAll(await store.read(b.digest)), b.bytes);
    } finally {
      await cleanup();
    }
  });

  it('falls back to an fsync per file when syncfs cannot run, for this and every later batch', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      let calls = 0;
      const fs = mode(async () => {
        calls++;
        throw new Error('sync: invalid option -- f');
      }, 2);
      const shards = new Set<string>();
      const first = new FsBlobBatch(store.blobsDir, store.tmpDir, 4, shards, fs);
      const one = blobs(5, 'fallback');
      for (const b of one) await first.add(b.digest, b.bytes);
      await first.flush();
      assert.equal(calls, 1);
      assert.equal(fs.failed, true);
      const second = new FsBlobBatch(store.blobsDir, store.tmpDir, 4, shards, fs);
      const two = blobs(5, 'later');
      for (const b of two) await second.add(b.digest, b.bytes);
      await second.flush();
      assert.equal(calls, 1);
      for (const b of [...one, ...two]) assert.deepEqual(await readAll(await store.read(b.digest)), b.bytes);
      assert.deepEqual(await readdir(store.tmpDir), []);
      assert.equal((await fsck(root)).clean, true);
    } finally {
      await cleanup();
    }
  });

  it("a batch's first minBlobs blobs are fsynced one by one: a small batch makes no syncfs call", async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      const sync = manualSync();
      const small = new FsBlobBatch(store.blobsDir, store.tmpDir, 8, new Set(), mode(sync.run, 2, 5));
      const few = blobs(5, 'few');
      for (const b of few) await small.add(b.digest, b.bytes);
      await small.flush();
      assert.equal(sync.calls.length, 0);
      assert.ok(few.every((b) => present(store, b.digest)));
      // Past minBlobs the rest go in rounds: the sixth and seventh make one.
      const large = new FsBlobBatch(store.blobsDir, store.tmpDir, 8, new Set(), mode(sync.run, 2, 5));
      const more = blobs(7, 'more');
      for (const b of more) await large.add(b.digest, b.bytes);
      assert.equal(sync.calls.length, 1);
      assert.ok(more.slice(5).every((b) => !present(store, b.digest)));
      sync.calls[0].release();
      const flush = large.flush();
      await waitUntil(() => sync.calls.length === 2, 'the names syncfs');
      sync.calls[1].release();
      await flush;
      assert.ok(more.every((b) => present(store, b.digest)));
      assert.deepEqual(await readdir(store.tmpDir), []);
    } finally {
      await cleanup();
    }
  });

  it('abort drops the temps still waiting for a syncfs; none of them becomes a blob', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root);
      const sync = manualSync();
      const batch = new FsBlobBatch(store.blobsDir, store.tmpDir, 8, new Set(), mode(sync.run));
      const all = blobs(4, 'aborted');
      for (const b of all) await batch.add(b.digest, b.bytes);
      assert.equal(sync.calls.length, 0);
      await batch.abort();
      assert.deepEqual(await readdir(store.tmpDir), []);
      assert.ok(all.every((b) => !present(store, b.digest)));
    } finally {
      await cleanup();
    }
  });

  it('with the real `sync -f`: stored, readable and fsck-clean, no temp left', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const store = await FsBlobStore.open(root, { syncFilesystem: true });
      const batch = store.batch();
      const all = blobs(20, 'real');
      for (const b of all) await batch.add(b.digest, b.bytes);
      await batch.flush();
      assert.deepEqual(await readdir(store.tmpDir), []);
      for (const b of [all[0], all[all.length - 1]])
        assert.deepEqual(await readAll(await store.read(b.digest)), b.bytes);
      const report = await fsck(root);
      assert.equal(report.blobsChecked, all.length);
      assert.equal(report.clean, true);
    } finally {
      await cleanup();
    }
  });
});
