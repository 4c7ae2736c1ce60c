// Cases the S3 and GCS blob stores share (their conformance suites aside):
// called inside each store's describe() with its own openers.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import type { Remote } from '../../src/remote/remote.ts';
import { readAll } from '../support/streams.ts';

export interface BucketFixture {
  remote: Remote;
  prefix: string;
  cleanup(): Promise<void>;
}

export function bucketStoreCases(
  open: (tag: string, opts?: { listThreshold?: number; listCostInHeads?: number }) => Promise<BucketFixture>,
  /** Another remote on the same prefix, with default options. */
  reopen: (prefix: string) => Promise<Remote>,
): void {
  it('a small declared write of an existing blob is settled by the conditional write alone', async () => {
    const fx = await open('smallput');
    try {
      const data = randomBytes(3000);
      const digest = sha256(data);
      assert.deepEqual(await fx.remote.blobs.write(digest, Readable.from([data]), { size: 3000 }), {
        created: true,
        size: 3000,
      });
      assert.deepEqual(await fx.remote.blobs.write(digest, Readable.from([data]), { size: 3000 }), {
        created: false,
        size: 3000,
      });
      const results = await Promise.all(
        Array.from({ length: 6 }, () => fx.remote.blobs.write(digest, Readable.from([data]), { size: 3000 })),
      );
      assert.ok(results.every((r) => !r.created));
      assert.deepEqual(await readAll(await fx.remote.blobs.read(digest)), data);
    } finally {
      await fx.cleanup();
    }
  });

  it('missing() by shard listing agrees with HEADs', async () => {
    const fx = await open('missing', { listThreshold: 0, listCostInHeads: 1 });
    try {
      const blobs = Array.from({ length: 40 }, (_, i) => Buffer.from(`blob ${i}`));
      const digests = blobs.map((b) => sha256(b));
      for (let i = 0; i < blobs.length; i += 2)
        await fx.remote.blobs.write(digests[i], Readable.from([blobs[i]]));
      // Same shard as a stored one, but absent: listing must still report it.
      const expected = digests.filter((_, i) => i % 2 === 1);
      assert.deepEqual(await fx.remote.blobs.missing([...digests, digests[1]]), expected);
      const heads = await reopen(fx.prefix);
      try {
        assert.deepEqual(await heads.blobs.missing(digests), expected);
      } finally {
        await heads.close();
      }
    } finally {
      await fx.cleanup();
    }
  });
}
