// The small-blob journal (src/store/blob-journal.ts) under FsBlobStore's
// batches: a flushed batch's blobs are published with their records in a
// journal segment and no per-blob fsync; a checkpoint (explicit, idle, or at
// close) deletes the segment; the segment of a dead writer is replayed at the
// next open — missing and torn files restored from verified records, a torn
// tail ignored (nothing published from it), the segment removed — and a live
// writer's segment is left alone.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { JOURNAL_BOOT, JOURNAL_HEAD_BYTES } from '../../src/store/blob-journal.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { waitUntil } from '../support/wait.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data) };
};

/** A journal record as the journal writes it (magic, size, digest, bytes). */
function record(digest: Digest, bytes: Buffer): Buffer {
  const head = Buffer.alloc(JOURNAL_HEAD_BYTES);
  head.writeUInt32BE(0x484a5231, 0);
  head.writeUInt32BE(bytes.byteLength, 4);
  head.write(hexOf(digest), 8, 'hex');
  return Buffer.concat([head, bytes]);
}

/** A pid that is surely not running: a process that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid as number;
}

const segments = (root: string) => readdirSync(join(root, 'journal')).filter((n) => n.endsWith('.log'));

describe('small-blob journal', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-journal-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a flushed batch is published with its records in one segment; a checkpoint deletes the segment', async () => {
    const root = join(dir, 'flush');
    const store = await FsBlobStore.open(root, { journal: { idleCheckpointMs: 0 } });
    const blobs = Array.from({ length: 20 }, (_, i) => blob(100 + i * 300));
    const batch = store.batch();
    for (const b of blobs) assert.deepEqual(await batch.add(b.digest, b.data), { created: true });
    // Not published before the records are durable.
    assert.equal(existsSync(store.pathOf(blobs[0].digest)), false);
    await batch.flush();
    for (const b of blobs) assert.deepEqual(readFileSync(store.pathOf(b.digest)), b.data);
    const [seg] = segments(root);
    const bytes = readFileSync(join(root, 'journal', seg));
    assert.equal(
      bytes.byteLength,
      blobs.reduce((n, b) => n + JOURNAL_HEAD_BYTES + b.data.byteLength, 0),
    );
    assert.deepEqual(readdirSync(store.tmpDir), []);
    // A second batch with a known blob: not journaled again.
    const again = store.batch();
    assert.deepEqual(await again.add(blobs[0].digest, blobs[0].data), { created: false });
    await again.flush();
    assert.equal(readFileSync(join(root, 'journal', seg)).byteLength, bytes.byteLength);

    await store.journal?.checkpoint();
    assert.equal(store.journal?.checkpointed, 1);
    assert.deepEqual(segments(root), []);
    for (const b of blobs) assert.deepEqual(readFileSync(store.pathOf(b.digest)), b.data);
    await store.close();
  });

  it('an aborted batch publishes nothing and leaves no temp file', async () => {
    const root = join(dir, 'abort');
    const store = await FsBlobStore.open(root, { journal: { idleCheckpointMs: 0 } });
    const b = blob(5000);
    const batch = store.batch();
    await batch.add(b.digest, b.data);
    await batch.abort();
    assert.equal(existsSync(store.pathOf(b.digest)), false);
    assert.deepEqual(readdirSync(store.tmpDir), []);
    await store.close();
    assert.deepEqual(segments(root), []);
  });

  it('the segment is checkpointed once the journal is idle, and when it is full', async () => {
    const root = join(dir, 'idle');
    const store = await FsBlobStore.open(root, { journal: { idleCheckpointMs: 20, segmentBytes: 8000 } });
    const batch = store.batch();
    for (let i = 0; i < 3; i++) {
      const b = blob(4096);
      await batch.add(b.digest, b.data);
    }
    await batch.flush();
    // 3 × 4 KiB: the third record went into a second segment (the first reached 8,000 bytes).
    await waitUntil(() => store.journal?.checkpointed === 2, 'two segments checkpointed', 10_000);
    assert.deepEqual(segments(root), []);
    await store.close();
  });

  it('a batch spanning many sealed segments flushes (appends wait only on checkpoints that can run)', async () => {
    const root = join(dir, 'many');
    // Every record fills its segment: each append seals the one before, still held by the unflushed batch.
    const store = await FsBlobStore.open(root, { journal: { idleCheckpointMs: 0, segmentBytes: 1 } });
    const blobs = Array.from({ length: 12 }, () => blob(1000));
    const batch = store.batch();
    for (const b of blobs) await batch.add(b.digest, b.data);
    assert.equal(segments(root).length, 12);
    await batch.flush();
    await store.journal?.checkpoint();
    assert.deepEqual(segments(root), []);
    assert.equal(store.journal?.checkpointed, 12);
    for (const b of blobs) assert.deepEqual(readFileSync(store.pathOf(b.digest)), b.data);
    await store.close();
  });

  it("replays a dead writer's segment at open: missing and torn files restored, a torn tail ignored", async () => {
    const root = join(dir, 'replay');
    const store = await FsBlobStore.open(root);
    const lost = blob(4096); // linked, then its name lost (a power loss before the folder was written)
    const torn = blob(4096); // linked, its data lost (zeros under its name)
    const whole = blob(3000); // linked and whole (a SIGKILL: the page cache survived)
    const tail = blob(4096); // its record cut short: never acknowledged
    for (const b of [torn, whole]) {
      await mkdir(join(store.blobsDir, hexOf(b.digest).slice(0, 2)), { recursive: true });
      writeFileSync(store.pathOf(b.digest), b === torn ? Buffer.alloc(4096) : b.data);
    }
    await mkdir(join(root, 'journal'), { recursive: true });
    const seg = join(root, 'journal', `journal-${deadPid()}.abcdef0.log`);
    const cut = record(tail.digest, tail.data).subarray(0, JOURNAL_HEAD_BYTES + 100);
    writeFileSync(
      seg,
      Buffer.concat([
        record(lost.digest, lost.data),
        record(torn.digest, torn.data),
        record(whole.digest, whole.data),
        cut,
      ]),
    );

    const reopened = await FsBlobStore.open(root, { journal: true });
    assert.deepEqual(reopened.journal?.replayed, { segments: 1, records: 3, rewritten: 2 });
    for (const b of [lost, torn, whole]) assert.deepEqual(readFileSync(reopened.pathOf(b.digest)), b.data);
    assert.equal(existsSync(reopened.pathOf(tail.digest)), false);
    assert.equal(existsSync(seg), false);
    assert.deepEqual(readdirSync(reopened.tmpDir), []);
    await reopened.close();
  });

  it('a record whose bytes do not match its digest ends the replay of its segment', async () => {
    const root = join(dir, 'mismatch');
    await mkdir(join(root, 'journal'), { recursive: true });
    const a = blob(2000);
    const b = blob(2000);
    const c = blob(2000);
    const bad = record(b.digest, b.data);
    bad[JOURNAL_HEAD_BYTES + 7] ^= 1;
    const seg = join(root, 'journal', `journal-${deadPid()}.abcdef1.log`);
    writeFileSync(seg, Buffer.concat([record(a.digest, a.data), bad, record(c.digest, c.data)]));
    const store = await FsBlobStore.open(root, { journal: true });
    assert.equal(store.journal?.replayed.records, 1);
    assert.equal(existsSync(store.pathOf(a.digest)), true);
    assert.equal(existsSync(store.pathOf(b.digest)), false);
    assert.equal(existsSync(store.pathOf(c.digest)), false);
    await store.close();
  });

  it("leaves a live writer's segment alone, but replays one from before the last boot", async () => {
    const root = join(dir, 'live');
    await mkdir(join(root, 'journal'), { recursive: true });
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      const a = blob(1000);
      const b = blob(1000);
      const live = join(root, 'journal', `journal-${child.pid}.${JOURNAL_BOOT}.abcdef2.log`);
      // The same pid, another boot: after a power loss the old pid may be any process now.
      const earlier = join(
        root,
        'journal',
        `journal-${child.pid}.${JOURNAL_BOOT === 'ffffffff' ? '0' : 'ffffffff'}.abcdef2.log`,
      );
      writeFileSync(live, record(a.digest, a.data));
      writeFileSync(earlier, record(b.digest, b.data));
      const store = await FsBlobStore.open(root, { journal: true });
      assert.equal(store.journal?.replayed.segments, 1);
      assert.equal(existsSync(live), true);
      assert.equal(existsSync(store.pathOf(a.digest)), false);
      assert.equal(existsSync(earlier), false);
      assert.deepEqual(readFileSync(store.pathOf(b.digest)), b.data);
      await store.close();
      unlinkSync(live);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a segment cut anywhere replays exactly the whole records before the cut', async () => {
    const root = join(dir, 'cuts');
    const blobs = Array.from({ length: 4 }, (_, i) => blob(500 + i * 100));
    const full = Buffer.concat(blobs.map((b) => record(b.digest, b.data)));
    const ends: number[] = [];
    let n = 0;
    for (const b of blobs) ends.push((n += JOURNAL_HEAD_BYTES + b.data.byteLength));
    for (const at of [0, 1, JOURNAL_HEAD_BYTES - 1, ends[0], ends[0] + 5, ends[2] - 1, ends[3]]) {
      const r = join(root, String(at));
      await mkdir(join(r, 'journal'), { recursive: true });
      const seg = join(r, 'journal', `journal-${deadPid()}.abcdef3.log`);
      writeFileSync(seg, full);
      truncateSync(seg, at);
      const store = await FsBlobStore.open(r, { journal: true });
      const whole = ends.filter((e) => e <= at).length;
      assert.equal(store.journal?.replayed.records, whole, `cut at ${at}`);
      for (const [i, b] of blobs.entries())
        assert.equal(existsSync(store.pathOf(b.digest)), i < whole, `cut at ${at}, blob ${i}`);
      assert.equal(existsSync(seg), false);
      await store.close();
    }
  });
});
