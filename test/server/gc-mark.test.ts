// Live-set marking (gc.ts) with the streamed tree decoder: files of trees
// reached through snapshot records and directly are live; `keep` limits the
// set to what is on disk; a tree above the bound is not followed; a tree
// that fails to decode midway keeps what was marked before the failure.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { encodeEntry, TREE_HEADER, type TreeEntry, treeDigest } from '../../src/core/tree.ts';
import { DiskIndex } from '../../src/server/disk-index.ts';
import { liveSet } from '../../src/server/gc.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';

const file = (path: string, digest: Digest): TreeEntry => ({ path, kind: 'file', size: 1, digest });

describe('gc live set (streamed)', () => {
  it('marks through snapshots and trees, honours keep and the tree bound, keeps marks of a bad tree', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-gc-'));
    try {
      const disk = await FsBlobStore.open(root);
      const refs = await FsRefStore.open(root);
      const put = async (bytes: Buffer) => {
        const d = sha256(bytes);
        await disk.write(d, [bytes]);
        return d;
      };
      const f = Array.from({ length: 8 }, (_, i) => sha256(`f${i}`));
      // snap → tree with f0, f1 (f1 also under a symlink-free sub dir)
      const t1 = treeDigest([
        file('a', f[0]),
        file('sub/b', f[1]),
        { path: 'l', kind: 'symlink', target: 'a' },
      ]);
      await put(t1.bytes);
      const snap = snapshotDigest({
        tree: t1.digest,
        parents: [],
        createdAt: '2026-12-01T00:00:00.000Z',
        meta: {},
      });
      await put(snap.bytes);
      await refs.set('snap', snap.digest, null);
      // a ref straight at a tree with f2
      const t2 = treeDigest([file('c', f[2])]);
      await refs.set('tree', await put(t2.bytes), null);
      // a tree valid up to line 3, then out of order: f3 marked, f4 is not reached
      const bad = Buffer.from(
        `${[TREE_HEADER, encodeEntry(file('x', f[3])), encodeEntry(file('a', f[4]))].join('\n')}\n`,
      );
      await refs.set('bad', await put(bad), null);
      // a big tree (f5) above the bound given below
      const big = treeDigest(
        Array.from({ length: 40 }, (_, i) => file(`big/${String(i).padStart(3, '0')}`, f[5])),
      );
      await refs.set('big', await put(big.bytes), null);
      // an opaque blob
      const opaque = await put(Buffer.from('just bytes'));
      await refs.set('opaque', opaque, null);

      const live = await liveSet(disk, refs, { maxTreeBytes: big.bytes.length - 1 });
      for (const d of [
        snap.digest,
        t1.digest,
        f[0],
        f[1],
        t2.digest,
        f[2],
        sha256(bad),
        f[3],
        big.digest,
        opaque,
      ])
        assert.ok(live.has(d), d);
      for (const d of [f[4], f[5], f[6]]) assert.ok(!live.has(d), d);

      // Without the bound the big tree is followed; with keep only kept digests are in the set.
      assert.ok((await liveSet(disk, refs)).has(f[5]));
      const kept = await liveSet(disk, refs, { keep: (d) => d !== f[0] && d !== t2.digest });
      assert.ok(!kept.has(f[0]) && !kept.has(t2.digest));
      assert.ok(kept.has(f[1]) && kept.has(f[2]), 'keep filters marks, not the walk');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('disk index eviction with a filtered live set', () => {
  it('never evicts a blob the index learnt of while the live set was being marked', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-gc-'));
    try {
      const disk = await FsBlobStore.open(root);
      const old = Buffer.alloc(1000, 1);
      await disk.write(sha256(old), [old]);
      const late = Buffer.alloc(100, 2);
      let calls = 0;
      const index: DiskIndex = new DiskIndex(disk, {
        maxBytes: 1050,
        mode: 'authoritative',
        graceMs: 0,
        // Pass 1: `late` lands (and joins the index) after the marker met its digest, so the
        // filtered set lacks it although a tree names it. Later passes see it on disk and mark it.
        liveSet: async () => {
          if (calls++ === 0) {
            await disk.write(sha256(late), [late]);
            index.add(sha256(late), late.length);
            return new Set<Digest>();
          }
          return new Set([sha256(late)]);
        },
      });
      await index.open();
      await index.reconciled();
      await assert.rejects(index.reserve(1000), (e) => isHoardError(e, 'HOARD_ENO_SPACE'));
      assert.ok(calls >= 2);
      assert.equal(await disk.has(sha256(old)), false, 'garbage collected');
      assert.equal(await disk.has(sha256(late)), true, 'a blob that arrived during marking was evicted');
      await index.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('never evicts a pinned blob (a PUT uploading its disk copy to the shared tier)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-gc-'));
    try {
      const disk = await FsBlobStore.open(root);
      const a = Buffer.alloc(600, 1);
      const b = Buffer.alloc(600, 2);
      await disk.write(sha256(a), [a]);
      await disk.write(sha256(b), [b]);
      const index = new DiskIndex(disk, { maxBytes: 1300, mode: 'cache', graceMs: 0 });
      await index.open();
      await index.reconciled();
      const unpin = index.pin(sha256(a));
      const again = index.pin(sha256(a)); // pins nest
      unpin();
      await index.reserve(600); // room for 600 more: one blob must go, and `a` is pinned
      assert.equal(await disk.has(sha256(a)), true, 'the pinned blob was evicted');
      assert.equal(await disk.has(sha256(b)), false);
      again();
      await index.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
