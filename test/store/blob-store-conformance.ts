// The BlobStore conformance suite: every backend (memory, filesystem, S3,
// GCS, hoard server) runs exactly these tests through its own *.test.ts.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import type { BlobStore } from '../../src/store/blob-store.ts';
import { readMany } from '../../src/store/read-many.ts';
import { readAll } from '../support/streams.ts';

export interface BlobStoreFixture {
  store: BlobStore;
  cleanup?: () => Promise<void>;
}

export interface BlobStoreSuiteOptions {
  /** Size of the "large" blob (default 3 MiB; remotes may raise it past their multipart threshold). */
  largeBytes?: number;
}

export function blobStoreConformance(
  name: string,
  make: () => Promise<BlobStoreFixture>,
  opts: BlobStoreSuiteOptions = {},
): void {
  describe(`BlobStore conformance: ${name}`, () => {
    const withStore = (fn: (store: BlobStore) => Promise<void>) => async () => {
      const fx = await make();
      try {
        await fn(fx.store);
      } finally {
        await fx.store.close?.();
        await fx.cleanup?.();
      }
    };
    const blob = (n = 1000) => {
      const data = randomBytes(n);
      return { data, digest: sha256(data) };
    };

    it(
      'writes, stats and reads back a blob',
      withStore(async (store) => {
        const { data, digest } = blob(5000);
        assert.equal(await store.has(digest), false);
        assert.equal(await store.stat(digest), undefined);
        const res = await store.write(digest, Readable.from([data]), { size: data.length });
        assert.deepEqual(res, { created: true, size: 5000 });
        assert.equal(await store.has(digest), true);
        assert.deepEqual(await store.stat(digest), { digest, size: 5000 });
        assert.deepEqual(await readAll(await store.read(digest)), data);
      }),
    );

    it(
      'writes the empty blob',
      withStore(async (store) => {
        const digest = sha256(Buffer.alloc(0));
        await store.write(digest, Readable.from([]), { size: 0 });
        assert.deepEqual(await store.stat(digest), { digest, size: 0 });
        assert.equal((await readAll(await store.read(digest))).length, 0);
      }),
    );

    it(
      'streams a large blob written in many chunks',
      withStore(async (store) => {
        const size = opts.largeBytes ?? 3 * 1024 * 1024;
        const chunk = randomBytes(64 * 1024);
        const chunks = Array.from({ length: Math.ceil(size / chunk.length) }, (_, i) =>
          Buffer.concat([chunk, Buffer.from(String(i))]),
        );
        const all = Buffer.concat(chunks);
        const digest = sha256(all);
        const res = await store.write(digest, Readable.from(chunks));
        assert.equal(res.size, all.length);
        const back = await readAll(await store.read(digest));
        assert.equal(sha256(back), digest);
      }),
    );

    it(
      'reads byte ranges, clipped at the end',
      withStore(async (store) => {
        const { data, digest } = blob(1000);
        await store.write(digest, Readable.from([data]));
        assert.deepEqual(
          await readAll(await store.read(digest, { offset: 10, length: 20 })),
          data.subarray(10, 30),
        );
        assert.deepEqual(await readAll(await store.read(digest, { offset: 990 })), data.subarray(990));
        assert.deepEqual(
          await readAll(await store.read(digest, { offset: 995, length: 100 })),
          data.subarray(995),
        );
        assert.deepEqual(
          await readAll(await store.read(digest, { offset: 0, length: 1 })),
          data.subarray(0, 1),
        );
        await assert.rejects(
          async () => readAll(await store.read(digest, { offset: 1000 })),
          (err) => isHoardError(err, 'HOARD_ERANGE_NOT_SATISFIABLE'),
        );
      }),
    );

    it(
      'refuses bytes that do not match the digest and stores nothing',
      withStore(async (store) => {
        const { data } = blob(2000);
        const wrong = sha256(Buffer.from('something else'));
        await assert.rejects(store.write(wrong, Readable.from([data])), (err) =>
          isHoardError(err, 'HOARD_EDIGEST_MISMATCH'),
        );
        assert.equal(await store.has(wrong), false);
        assert.equal(await store.has(sha256(data)), false);
      }),
    );

    it(
      'refuses a body shorter than its declared size',
      withStore(async (store) => {
        const { data, digest } = blob(2000);
        await assert.rejects(store.write(digest, Readable.from([data.subarray(0, 1000)]), { size: 2000 }));
        assert.equal(await store.has(digest), false);
      }),
    );

    it(
      'stores nothing when the source fails midway',
      withStore(async (store) => {
        const { data, digest } = blob(4000);
        async function* broken() {
          yield data.subarray(0, 1000);
          throw new Error('connection reset');
        }
        await assert.rejects(store.write(digest, Readable.from(broken())));
        assert.equal(await store.has(digest), false);
      }),
    );

    it(
      'is create-if-absent: a second write succeeds without rewriting',
      withStore(async (store) => {
        const { data, digest } = blob(3000);
        assert.equal((await store.write(digest, Readable.from([data]))).created, true);
        const again = await store.write(digest, Readable.from([data]));
        assert.equal(again.created, false);
        assert.equal(again.size, 3000);
        assert.deepEqual(await readAll(await store.read(digest)), data);
      }),
    );

    it(
      'survives concurrent writers of the same blob',
      withStore(async (store) => {
        const { data, digest } = blob(100_000);
        const results = await Promise.all(
          Array.from({ length: 8 }, () =>
            store.write(digest, Readable.from([data.subarray(0, 50_000), data.subarray(50_000)])),
          ),
        );
        assert.ok(results.filter((r) => r.created).length >= 1);
        assert.deepEqual(await readAll(await store.read(digest)), data);
      }),
    );

    it(
      'reports missing blobs in one batch, deduplicated, in order',
      withStore(async (store) => {
        const a = blob(10);
        const b = blob(11);
        const c = blob(12);
        await store.write(b.digest, Readable.from([b.data]));
        const missing = await store.missing([a.digest, b.digest, c.digest, a.digest]);
        assert.deepEqual(missing, [a.digest, c.digest]);
        assert.deepEqual(await store.missing([]), []);
      }),
    );

    it(
      'reading an absent blob fails with HOARD_EBLOB_NOT_FOUND',
      withStore(async (store) => {
        await assert.rejects(
          async () => readAll(await store.read(sha256('absent'))),
          (err) => isHoardError(err, 'HOARD_EBLOB_NOT_FOUND'),
        );
      }),
    );

    it(
      'deletes and lists',
      withStore(async (store) => {
        const blobs = [blob(1), blob(2), blob(3)];
        for (const b of blobs) await store.write(b.digest, Readable.from([b.data]));
        const listed = new Map<Digest, number>();
        for await (const info of store.list()) listed.set(info.digest, info.size);
        for (const b of blobs) assert.equal(listed.get(b.digest), b.data.length);
        assert.equal(await store.delete(blobs[0].digest), true);
        assert.equal(await store.delete(blobs[0].digest), false);
        assert.equal(await store.has(blobs[0].digest), false);
        assert.equal(await store.has(blobs[1].digest), true);
      }),
    );

    it(
      'lists in digest order, strictly after a cursor',
      withStore(async (store) => {
        const ours = Array.from({ length: 6 }, (_, i) => blob(20 + i)).sort((a, b) =>
          a.digest < b.digest ? -1 : 1,
        );
        for (const b of ours) await store.write(b.digest, Readable.from([b.data]));
        const mine = new Set(ours.map((b) => b.digest));
        const listed = async (after?: Digest) => {
          const out: Digest[] = [];
          for await (const info of store.list({ after })) {
            if (after !== undefined) assert.ok(info.digest > after, `${info.digest} listed after ${after}`);
            if (out.length > 0) assert.ok(info.digest > out[out.length - 1], 'digest order');
            if (mine.has(info.digest)) out.push(info.digest);
          }
          return out;
        };
        const all = ours.map((b) => b.digest);
        assert.deepEqual(await listed(), all);
        assert.deepEqual(await listed(all[1]), all.slice(2));
        assert.deepEqual(await listed(all[5]), []);
        assert.deepEqual(await listed(`sha256:${'0'.repeat(64)}` as Digest), all);
        // Cursors that name no blob: the last digest of a blob's shard, and the digest just below a blob.
        const hex = all[3].slice('sha256:'.length);
        const shard = hex.slice(0, 2);
        assert.deepEqual(
          await listed(`sha256:${shard}${'f'.repeat(62)}` as Digest),
          all.slice(3).filter((d) => d.slice(7, 9) > shard),
        );
        const last = Number.parseInt(hex[63], 16);
        if (last > 0) {
          const below = `sha256:${hex.slice(0, 63)}${(last - 1).toString(16)}` as Digest;
          assert.deepEqual(await listed(below), all.slice(3));
        }
      }),
    );

    it(
      'pages through a listing with the last digest of each page as the cursor',
      withStore(async (store) => {
        const ours = Array.from({ length: 7 }, (_, i) => blob(40 + i));
        for (const b of ours) await store.write(b.digest, Readable.from([b.data]));
        const whole: Digest[] = [];
        for await (const info of store.list()) whole.push(info.digest);
        const paged: Digest[] = [];
        let after: Digest | undefined;
        for (;;) {
          const page: Digest[] = [];
          for await (const info of store.list({ after })) {
            page.push(info.digest);
            if (page.length === 2) break;
          }
          paged.push(...page);
          if (page.length < 2) break;
          after = page[page.length - 1];
        }
        assert.deepEqual(paged, whole);
        for (const b of ours) assert.ok(paged.includes(b.digest));
      }),
    );

    it(
      'reads many blobs at once (its own readMany or the read fallback): each once, verified, missing said',
      withStore(async (store) => {
        const ours = [blob(0), blob(1), blob(70_000), ...Array.from({ length: 20 }, (_, i) => blob(100 + i))];
        for (const b of ours) await store.write(b.digest, Readable.from([b.data]), { size: b.data.length });
        const absent = blob(33);
        const wants = [...ours, absent].map((b) => ({ digest: b.digest, size: b.data.length }));
        const seen = new Map<Digest, Buffer | 'missing'>();
        await readMany(
          store,
          wants,
          async (r) => {
            assert.ok(!seen.has(r.digest), 'each digest once');
            seen.set(r.digest, r.status === 'present' ? Buffer.from(r.bytes) : 'missing');
            await new Promise((resolve) => setImmediate(resolve)); // a consumer that takes its time
          },
          { concurrency: 4 },
        );
        assert.equal(seen.size, wants.length);
        for (const b of ours) assert.deepEqual(seen.get(b.digest), b.data);
        assert.equal(seen.get(absent.digest), 'missing');
        // A wanted size that does not match the blob is corruption, never a short or long read.
        await assert.rejects(
          readMany(store, [{ digest: ours[2].digest, size: 1000 }], () => {}, { concurrency: 1 }),
          (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH') || isHoardError(e, 'HOARD_EREMOTE'),
        );
      }),
    );
  });
}
