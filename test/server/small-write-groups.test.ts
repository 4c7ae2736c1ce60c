// Group commit on its own (small-write-groups.ts), with batches that record
// what they were given and flush when the test says: writes arriving while a
// group is being flushed form the next group (one batch, one flush), a write
// is answered only once its group's flush resolved, and a failed flush fails
// every write of its group and none of the next.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { SmallWriteGroups } from '../../src/server/small-write-groups.ts';
import type { ServingWriteBatch, StoredBlob } from '../../src/store/blob-handle.ts';
import { waitUntil } from '../support/wait.ts';

interface HeldBatch {
  digests: Digest[];
  flushing: boolean;
  /** Resolves (or fails) the flush once it was called. */
  finish(err?: Error): void;
}

/** Batches whose flush waits for finish(); each remembers what it was given. */
function heldBatches() {
  const made: HeldBatch[] = [];
  const newBatch = (): ServingWriteBatch => {
    const results: StoredBlob[] = [];
    let finish!: (err?: Error) => void;
    const flushed = new Promise<void>((resolve, reject) => {
      finish = (err) => (err ? reject(err) : resolve());
    });
    const held: HeldBatch = { digests: [], flushing: false, finish: (err) => finish(err) };
    made.push(held);
    return {
      add: async (digest, bytes) => {
        held.digests.push(digest);
        const r = { digest, size: bytes.byteLength, created: true };
        results.push(r);
        return r;
      },
      flush: async () => {
        held.flushing = true;
        await flushed;
        return results;
      },
      abort: async () => {},
    };
  };
  return { made, newBatch };
}

const blob = (s: string) => {
  const data = Buffer.from(s);
  return { data, digest: sha256(data) };
};

describe('small write groups', () => {
  it('writes arriving during a flush form the next group; each is answered after its own flush', async () => {
    const { made, newBatch } = heldBatches();
    const groups = new SmallWriteGroups(newBatch);
    const a = blob('a');
    const first = groups.write(a.digest, a.data);
    let firstDone = false;
    void first.then(() => {
      firstDone = true;
    });
    await waitUntil(() => made[0]?.flushing === true, 'the first group to flush');
    const later = ['b', 'c', 'd'].map(blob);
    const rest = later.map((b) => groups.write(b.digest, b.data));
    let restDone = false;
    void Promise.all(rest).then(() => {
      restDone = true;
    });
    // Not answered before its flush resolved.
    await new Promise((r) => setImmediate(r));
    assert.equal(firstDone, false);
    made[0].finish();
    assert.deepEqual(await first, { created: true, size: 1 });
    await waitUntil(() => made[1]?.flushing === true, 'the second group to flush');
    assert.equal(restDone, false);
    made[1].finish();
    assert.deepEqual(await Promise.all(rest), [
      { created: true, size: 1 },
      { created: true, size: 1 },
      { created: true, size: 1 },
    ]);
    assert.equal(made.length, 2, 'one batch per group');
    assert.deepEqual(made[0].digests, [a.digest]);
    assert.deepEqual(
      made[1].digests,
      later.map((b) => b.digest),
    );
    assert.equal(groups.commits, 2);
  });

  it('a failed flush fails every write of its group, not the next group', async () => {
    const { made, newBatch } = heldBatches();
    const groups = new SmallWriteGroups(newBatch);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(blob);
    // The first write is flushed at once, alone; b and c gather behind it.
    const first = groups.write(a.digest, a.data);
    await waitUntil(() => made[0]?.flushing === true, 'the first group to flush');
    const failing = [groups.write(b.digest, b.data), groups.write(c.digest, c.data)];
    made[0].finish();
    assert.deepEqual(await first, { created: true, size: 1 });
    await waitUntil(() => made[1]?.flushing === true, 'the second group to flush');
    const next = groups.write(d.digest, d.data);
    made[1].finish(new Error('disk full'));
    for (const w of failing) await assert.rejects(w, /disk full/);
    await waitUntil(() => made[2]?.flushing === true, 'the third group to flush');
    made[2].finish();
    assert.deepEqual(await next, { created: true, size: 1 });
    assert.deepEqual(
      made.map((m) => m.digests),
      [[a.digest], [b.digest, c.digest], [d.digest]],
    );
    assert.equal(groups.commits, 3);
  });
});
