// bucketMissing (the "which blobs are missing" strategy of the bucket
// remotes) against an in-memory bucket: always right, and lists or HEADs by
// cost.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { BucketLayout, bucketMissing, type MissingBackend } from '../../src/remote/bucket-layout.ts';

function fakeBucket(layout: BucketLayout, stored: Digest[], pageSize: number) {
  const keys = stored.map((d) => layout.blobKey(d)).sort();
  const counts = { heads: 0, pages: 0 };
  const backend: MissingBackend = {
    async has(d) {
      counts.heads++;
      return keys.includes(layout.blobKey(d));
    },
    async *listKeys(prefix, startAfter) {
      const all = keys.filter((k) => k.startsWith(prefix) && k > startAfter);
      for (let i = 0; i === 0 || i < all.length; i += pageSize) {
        counts.pages++;
        yield all.slice(i, i + pageSize);
      }
    },
  };
  return { backend, counts };
}

describe('bucketMissing', () => {
  const layout = new BucketLayout('p/');
  const stored = Array.from({ length: 300 }, (_, i) => sha256(`stored ${i}`));
  const absent = Array.from({ length: 60 }, (_, i) => sha256(`absent ${i}`));
  const wanted = [...stored.slice(0, 60), ...absent].sort(() => 0).reverse();
  const expected = wanted.filter((d) => absent.includes(d));

  it('answers a small batch with HEADs only', async () => {
    const { backend, counts } = fakeBucket(layout, stored, 1000);
    const few = wanted.slice(0, 5);
    assert.deepEqual(
      await bucketMissing(backend, layout, few),
      few.filter((d) => absent.includes(d)),
    );
    assert.deepEqual(counts, { heads: 5, pages: 0 });
  });

  it('answers a large batch on a small bucket with one LIST', async () => {
    const { backend, counts } = fakeBucket(layout, stored, 1000);
    assert.deepEqual(await bucketMissing(backend, layout, [...wanted, wanted[0]]), expected);
    assert.deepEqual(counts, { heads: 0, pages: 1 });
  });

  it('gives up listing a bucket too large for it to pay, and stays right', async () => {
    for (const [pageSize, cost, threshold] of [
      [2, 12, 2000],
      [2, 1, 0],
      [7, 3, 10],
      [1, 1, 0],
    ]) {
      const { backend, counts } = fakeBucket(layout, stored, pageSize);
      const got = await bucketMissing(backend, layout, wanted, {
        listCostInHeads: cost,
        listThreshold: threshold,
      });
      assert.deepEqual(got, expected, `page ${pageSize} cost ${cost}`);
      // Never much above twice the cost of HEADing everything.
      assert.ok(counts.pages * cost + counts.heads <= 2 * wanted.length + cost, JSON.stringify(counts));
    }
  });

  it('an empty bucket: everything is missing after one LIST', async () => {
    const { backend, counts } = fakeBucket(layout, [], 1000);
    assert.deepEqual(await bucketMissing(backend, layout, wanted), wanted);
    assert.deepEqual(counts, { heads: 0, pages: 1 });
  });
});
