// The tier stack's small writes: concurrent PUT-sized writes share group
// commits (fewer durability passes than writes, every blob stored, trusted
// and served), a body that lies is refused before anything is stored, and a
// blob a batch has linked but not yet made durable is not reported as stored
// — not by a write of the same blob, not by `missing`, not by
// hasAuthoritative — until that batch's flush resolved.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { TieredBlobStore } from '../../src/server/tiered-blob-store.ts';
import type { BlobBatch } from '../../src/store/blob-batch.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { waitUntil } from '../support/wait.ts';

const blob = (n: number) => {
  const data = randomBytes(n);
  return { data, digest: sha256(data) };
};

/** A few event-loop turns: long enough for anything not blocked to settle. */
async function turns(n = 50): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** The file store with its first batch's flush held until `release()` (later batches flush freely). */
function gated(fs: FsBlobStore) {
  let made = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const disk = new Proxy(fs, {
    get(target, prop) {
      if (prop === 'batch')
        return (): BlobBatch => {
          const b = target.batch();
          if (++made > 1) return b;
          return {
            add: (d, bytes) => b.add(d, bytes),
            flush: async () => {
              await gate;
              return b.flush();
            },
            abort: () => b.abort(),
          };
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { disk, release };
}

describe('tiered store: small writes', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-group-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('concurrent small writes share group commits; every blob is stored, trusted and served', async () => {
    const fs = await FsBlobStore.open(join(root, 'a'));
    const store = new TieredBlobStore({ memory: new MemoryBlobStore({ maxBytes: 0 }), disk: fs });
    const xs = Array.from({ length: 40 }, () => blob(4096));
    const res = await Promise.all(xs.map((x) => store.write(x.digest, [x.data], { size: 4096 })));
    assert.ok(
      res.every((r) => r.created && r.size === 4096),
      'all created',
    );
    assert.ok(store.groupCommits < 10, `${store.groupCommits} group commits for 40 writes`);
    for (const x of xs) {
      assert.equal(existsSync(fs.pathOf(x.digest)), true);
      assert.equal(await store.isTrusted(x.digest), true);
    }
    assert.deepEqual(await store.missing(xs.map((x) => x.digest)), []);
    // Written again: already there.
    assert.deepEqual(await store.write(xs[0].digest, [xs[0].data], { size: 4096 }), {
      created: false,
      size: 4096,
    });
  });

  it('a small body that is not its digest, or not its declared size, stores nothing', async () => {
    const fs = await FsBlobStore.open(join(root, 'b'));
    const store = new TieredBlobStore({ memory: new MemoryBlobStore({ maxBytes: 0 }), disk: fs });
    const x = blob(100);
    await assert.rejects(store.write(x.digest, [randomBytes(100)], { size: 100 }), (e) =>
      isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
    );
    await assert.rejects(store.write(x.digest, [x.data.subarray(0, 50)], { size: 100 }), (e) =>
      isHoardError(e, 'HOARD_ETRUNCATED'),
    );
    await assert.rejects(store.write(x.digest, [x.data, x.data], { size: 100 }), (e) =>
      isHoardError(e, 'HOARD_ETRUNCATED'),
    );
    assert.equal(existsSync(fs.pathOf(x.digest)), false);
  });

  it('a blob linked by a batch not yet durable is reported stored only after its flush', async () => {
    const fs = await FsBlobStore.open(join(root, 'c'));
    const { disk, release } = gated(fs);
    const store = new TieredBlobStore({ memory: new MemoryBlobStore({ maxBytes: 0 }), disk });
    const x = blob(2000);
    const batch = store.writeBatch();
    await batch.add(x.digest, x.data);
    // Linked (visible on disk) once its file fsync is done; the flush is held.
    await waitUntil(() => existsSync(fs.pathOf(x.digest)), 'the batch linked the blob');
    let wrote = false;
    let answered = false;
    let authoritative = false;
    const write = store.write(x.digest, [x.data], { size: 2000 }).then((r) => {
      wrote = true;
      return r;
    });
    const missing = store.missing([x.digest]).then((m) => {
      answered = true;
      return m;
    });
    const has = store.hasAuthoritative(x.digest).then((h) => {
      authoritative = true;
      return h;
    });
    await turns();
    assert.equal(wrote, false, 'a write of the same blob waits for the batch');
    assert.equal(answered, false, '`missing` waits for the batch');
    assert.equal(authoritative, false, 'hasAuthoritative waits for the batch');
    release();
    assert.deepEqual(await batch.flush(), [{ digest: x.digest, size: 2000, created: true }]);
    assert.deepEqual(await write, { created: false, size: 2000 });
    assert.deepEqual(await missing, []);
    assert.equal(await has, true);
  });
});
