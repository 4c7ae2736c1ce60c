// TieredBlobStore's disk read path on its own: a verified whole read keeps a
// memory copy (within a reservation) and trusts the file; a read cut short,
// or a stream dropped before its first read, gives its reservation and
// descriptor back; a file is trusted only while it stays the same file.
// Small blobs read with synchronous calls (the server's syncReads) keep
// the same rules, and a slow synchronous read hands reads to the thread
// pool for a while.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { TieredBlobStore } from '../../src/server/tiered-blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';

const MiB = 1024 * 1024;

async function setup(
  memoryBytes = 16 * MiB,
  more: Omit<ConstructorParameters<typeof TieredBlobStore>[0], 'memory' | 'disk'> = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'hoard-tiered-'));
  // The disk store of another "process": files this store did not write itself.
  const writer = await FsBlobStore.open(dir);
  const blobs = new TieredBlobStore({
    memory: new MemoryBlobStore({ maxBytes: memoryBytes }),
    disk: writer,
    ...more,
  });
  return { dir, writer, blobs, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function fdCount(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('tiered store: verified disk reads', () => {
  it('a whole verified read trusts the file and keeps a memory copy; a changed file is checked again', async () => {
    const t = await setup();
    try {
      const data = randomBytes(1 * MiB + 5);
      const digest = sha256(data);
      await t.writer.write(digest, [data]);
      assert.equal(await t.blobs.isTrusted(digest), false);
      const h = await t.blobs.open(digest);
      assert.equal(h?.tier, 'disk');
      assert.deepEqual(await readAll(h!.stream(0, h!.size)), data);
      assert.equal(await t.blobs.isTrusted(digest), true);
      assert.equal(t.blobs.memory.bytes, data.length);
      assert.equal(t.blobs.memory.reservedBytes, 0);
      // Touching the file (new mtime) ends the trust.
      await utimes(t.writer.pathOf(digest), new Date(), new Date(Date.now() - 5000));
      assert.equal(await t.blobs.isTrusted(digest), false);
    } finally {
      await t.cleanup();
    }
  });

  it('a stream destroyed before or during its first reads gives back its reservation and descriptor', async () => {
    const t = await setup();
    try {
      const data = randomBytes(2 * MiB);
      const digest = sha256(data);
      await t.writer.write(digest, [data]);
      const before = await fdCount();
      for (const readFirst of [false, true]) {
        const h = await t.blobs.open(digest);
        const s = h!.stream(0, h!.size);
        assert.equal(t.blobs.memory.reservedBytes, data.length, 'reserved before a byte is read');
        if (readFirst) await once(s, 'readable');
        s.destroy();
        await once(s, 'close');
        assert.equal(t.blobs.memory.reservedBytes, 0);
        assert.equal(t.blobs.memory.bytes, 0, 'an incomplete read keeps no copy');
      }
      // Descriptors are closed asynchronously: wait for the count to come back.
      for (let i = 0; i < 100 && (await fdCount()) > before; i++) await new Promise((r) => setImmediate(r));
      assert.equal(await fdCount(), before);
    } finally {
      await t.cleanup();
    }
  });

  it('a read that gets no reservation streams without keeping a copy', async () => {
    const t = await setup(3 * MiB);
    try {
      const a = randomBytes(2 * MiB);
      const b = randomBytes(2 * MiB);
      await t.writer.write(sha256(a), [a]);
      await t.writer.write(sha256(b), [b]);
      const ha = await t.blobs.open(sha256(a));
      const hb = await t.blobs.open(sha256(b));
      const sa = ha!.stream(0, ha!.size);
      const sb = hb!.stream(0, hb!.size); // 2 + 2 MiB > 3 MiB: no reservation
      assert.equal(t.blobs.memory.reservedBytes, 2 * MiB);
      assert.deepEqual(await readAll(sb), b);
      assert.deepEqual(await readAll(sa), a);
      assert.equal(t.blobs.memory.bytes, 2 * MiB);
      assert.equal(await t.blobs.memory.has(sha256(a)), true);
      assert.equal(await t.blobs.memory.has(sha256(b)), false);
    } finally {
      await t.cleanup();
    }
  });

  it('read(digest, range) of a file not trusted yet verifies it first and serves the range', async () => {
    const t = await setup();
    try {
      const data = randomBytes(700_000);
      const digest = sha256(data);
      await t.blobs.write(digest, Readable.from([data])); // trusted: written here
      await utimes(t.writer.pathOf(digest), new Date(), new Date(Date.now() - 5000)); // …no longer
      const part = await readAll(await t.blobs.read(digest, { offset: 100_000, length: 1000 }));
      assert.deepEqual(part, data.subarray(100_000, 101_000));
      assert.equal(await t.blobs.isTrusted(digest), true);
    } finally {
      await t.cleanup();
    }
  });

  for (const sync of [true, false]) {
    it(`small blobs read ${sync ? 'synchronously' : 'through the thread pool'}: verified once, re-checked when the file changes, a corrupt or deleted file is a miss`, async () => {
      // No memory tier (--max-memory 0): every read is a disk read.
      const t = await setup(0, { syncReads: sync });
      try {
        const data = randomBytes(4096);
        const digest = sha256(data);
        await t.writer.write(digest, [data]);
        const path = t.writer.pathOf(digest);
        for (let i = 0; i < 3; i++) {
          const h = await t.blobs.open(digest);
          assert.equal(h?.tier, 'disk');
          assert.deepEqual(h!.bytes!(0, h!.size), data);
          assert.equal(await t.blobs.isTrusted(digest), true);
        }
        // Same size, other bytes, written in place (a new mtime): checked again, quarantined, a miss.
        const bad = Buffer.from(data);
        bad[100] ^= 1;
        await writeFile(path, bad);
        await utimes(path, new Date(), new Date(Date.now() + 5000));
        assert.equal(await t.blobs.open(digest), undefined);
        assert.equal(t.blobs.corruptFound, 1);
        assert.equal(await t.writer.has(digest), false, 'moved to quarantine');
        assert.equal(await t.blobs.isTrusted(digest), false);
        // Put back, then deleted under the server: a miss, never stale bytes.
        await t.writer.write(digest, [data]);
        assert.deepEqual((await t.blobs.open(digest))!.bytes!(0, 4096), data);
        await unlink(path);
        assert.equal(await t.blobs.open(digest), undefined);
        assert.equal(t.blobs.corruptFound, 1);
        assert.equal(t.blobs.syncReadPauses, 0);
      } finally {
        await t.cleanup();
      }
    });
  }

  it('slow synchronous small reads (3 of the last 16) hand small reads to the thread pool for a while', async () => {
    let clock = 0;
    let step = 0;
    // Every synchronous read "takes" `step` ms of this clock.
    const now = () => (clock += step);
    const t = await setup(0, { syncReads: true, syncReadGuard: { slowMs: 2, now } });
    try {
      const data = randomBytes(4096);
      const digest = sha256(data);
      await t.writer.write(digest, [data]);
      const large = randomBytes(200_000);
      await t.writer.write(sha256(large), [large]);
      const readAt = async (ms: number) => {
        step = ms;
        assert.deepEqual((await t.blobs.open(digest))!.bytes!(0, 4096), data);
        step = 0;
      };
      await readAt(1); // fast
      // A slow read now and then (the process descheduled mid-read) pauses nothing.
      for (let i = 0; i < 2; i++) {
        await readAt(5);
        for (let j = 0; j < 20; j++) await readAt(1);
      }
      assert.equal(t.blobs.syncReadsPaused, false);
      assert.equal(t.blobs.syncReadPauses, 0);
      // A disk that stays slow: the third slow read of the last 16 pauses them.
      await readAt(5);
      await readAt(5);
      assert.equal(t.blobs.syncReadPauses, 0);
      await readAt(5);
      assert.equal(t.blobs.syncReadPauses, 1);
      assert.equal(t.blobs.syncReadsPaused, true);
      // Paused: served through the thread pool (no clock reads around a read), same bytes, same checks.
      const pausedAt = clock;
      for (let i = 0; i < 3; i++) assert.deepEqual((await t.blobs.open(digest))!.bytes!(0, 4096), data);
      const h = await t.blobs.open(sha256(large));
      assert.deepEqual(await readAll(h!.stream(0, h!.size)), large);
      assert.equal(clock, pausedAt);
      assert.equal(t.blobs.syncReadPauses, 1);
      // A second later, synchronous reads again; still slow: paused again after one read.
      clock += 1100;
      assert.equal(t.blobs.syncReadsPaused, false);
      await readAt(5);
      assert.equal(t.blobs.syncReadPauses, 2);
      // Fast again after the next pause: it stays synchronous.
      clock += 1100;
      for (let i = 0; i < 20; i++) await readAt(1);
      assert.equal(t.blobs.syncReadsPaused, false);
      assert.equal(t.blobs.syncReadPauses, 2);
    } finally {
      await t.cleanup();
    }
  });
});
