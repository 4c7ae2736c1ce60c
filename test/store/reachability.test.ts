// Reachability (`hoard fsck` on any remote): a ref whose tree needs a missing
// blob is reported with the ref and the paths, and fsck exits non-zero — by
// the real CLI against a file:// remote — and the streamed tree check
// (checkReachability) on a store: many entries over several `missing`
// batches, a tree that does not decode, one whose bytes do not match its
// digest, one above the size bound.

import assert from 'node:assert/strict';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { encodeTree, TREE_HEADER, type TreeEntry, treeDigest } from '../../src/core/tree.ts';
import { openRemote } from '../../src/remote/remote.ts';
import type { BlobStore } from '../../src/store/blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { MemoryRefStore } from '../../src/store/memory-ref-store.ts';
import { checkReachability } from '../../src/store/reachability.ts';
import { push } from '../../src/sync/push.ts';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

describe('hoard fsck: reachability on a file:// remote', () => {
  it('reports a ref whose tree needs a missing blob (ref and path) and exits non-zero', async () => {
    const store = await tempDir('hoard-remote-');
    const work = await tempDir();
    const url = pathToFileURL(store.dir).href;
    const remote = await openRemote(url, { create: true });
    try {
      const src = join(work.dir, 'src');
      await writeFiles(src, { 'keep.txt': 'kept', 'sub/lost.txt': 'this blob goes missing' });
      await push({ dir: src, remote, ref: 'team/app' });
      const clean = await hoard(['fsck', url, '--json']);
      assert.equal(clean.code, 0, clean.stderr);
      assert.equal(JSON.parse(clean.stdout).clean, true);

      const lost = sha256('this blob goes missing');
      const hex = hexOf(lost);
      await unlink(join(store.dir, 'blobs', 'sha256', hex.slice(0, 2), hex));

      const json = await hoard(['fsck', url, '--json']);
      assert.equal(json.code, 1, json.stderr);
      const report = JSON.parse(json.stdout);
      assert.equal(report.clean, false);
      const m = report.missing.find((x: { digest: string }) => x.digest === lost);
      assert.ok(m, json.stdout);
      assert.equal(m.kind, 'file');
      assert.deepEqual(m.neededBy, [{ ref: 'team/app', paths: ['sub/lost.txt'], morePaths: 0 }]);

      const human = await hoard(['fsck', url]);
      assert.equal(human.code, 1);
      assert.match(human.stderr, new RegExp(`missing: ${lost}`));
      assert.match(human.stderr, /needed by team\/app: sub\/lost\.txt/);
      assert.match(human.stderr, /hoard push --verify/);
    } finally {
      await remote.close();
      await work.cleanup();
      await store.cleanup();
    }
  });
});

async function putSnapshot(blobs: MemoryBlobStore, refs: MemoryRefStore, ref: string, tree: Digest) {
  const snap = snapshotDigest({ tree, parents: [], createdAt: '2026-12-01T00:00:00.000Z', meta: {} });
  await blobs.write(snap.digest, [snap.bytes]);
  await refs.set(ref, snap.digest, null);
}

describe('checkReachability (streamed trees)', () => {
  it('finds missing blobs across several batches, lists the paths of each, counts the rest', async () => {
    const blobs = new MemoryBlobStore();
    const refs = new MemoryRefStore();
    const n = DEFAULTS.missingBatchSize * 2 + 17;
    const entries: TreeEntry[] = [];
    const present: Digest[] = [];
    for (let i = 0; i < n; i++) {
      const body = `file ${i}`;
      const digest = sha256(body);
      entries.push({ path: `d/f${String(i).padStart(6, '0')}`, kind: 'file', size: body.length, digest });
      // Every 500th file is missing; the rest are present.
      if (i % 500 !== 7) {
        await blobs.write(digest, [Buffer.from(body)]);
        present.push(digest);
      }
    }
    // One missing blob named by 25 paths: SHOWN_PATHS (20) listed, 5 counted.
    const shared = sha256('shared and missing');
    for (let i = 0; i < 25; i++)
      entries.push({ path: `s/p${String(i).padStart(2, '0')}`, kind: 'file', size: 18, digest: shared });
    const tree = treeDigest(entries);
    await blobs.write(tree.digest, [tree.bytes]);
    await putSnapshot(blobs, refs, 'big', tree.digest);

    const report = await checkReachability(blobs, refs);
    assert.equal(report.treesChecked, 1);
    assert.equal(report.blobsReferenced, n + 1);
    const expectMissing = entries.filter((_, i) => i < n && i % 500 === 7).length + 1;
    assert.equal(report.missing.length, expectMissing);
    const s = report.missing.find((m) => m.digest === shared)!;
    assert.equal(s.neededBy[0].paths.length, 20);
    assert.equal(s.neededBy[0].morePaths, 5);
    const one = report.missing.find((m) => m.digest === sha256('file 7'))!;
    assert.deepEqual(one.neededBy, [{ ref: 'big', paths: ['d/f000007'], morePaths: 0 }]);
  });

  it('reports trees that do not decode, do not match their digest, or exceed the bound', async () => {
    const blobs = new MemoryBlobStore();
    const refs = new MemoryRefStore();
    const f = (path: string): TreeEntry => ({ path, kind: 'file', size: 1, digest: sha256('x') });
    // Out of order: decodes up to line 3, then fails.
    const bad = Buffer.from(
      `${TREE_HEADER}\n${
        encodeTree([f('b')])
          .toString()
          .split('\n')[1]
      }\n${
        encodeTree([f('a')])
          .toString()
          .split('\n')[1]
      }\n`,
    );
    await blobs.write(sha256(bad), [bad]);
    await putSnapshot(blobs, refs, 'invalid', sha256(bad));
    // A memory store trusts its writer: put bytes under another tree's name.
    const real = encodeTree([f('a')]);
    const claimed = sha256(encodeTree([f('z')]));
    await blobs.write(sha256(real), [real]);
    const lying: BlobStore = {
      description: 'answers the bytes of another tree for `claimed`',
      stat: (d) => blobs.stat(d === claimed ? sha256(real) : d),
      has: (d) => blobs.has(d === claimed ? sha256(real) : d),
      read: (d, range) => blobs.read(d === claimed ? sha256(real) : d, range),
      write: (d, source, opts) => blobs.write(d, source, opts),
      delete: (d) => blobs.delete(d),
      list: () => blobs.list(),
      missing: (ds) => blobs.missing(ds),
    };
    await putSnapshot(blobs, refs, 'mismatch', claimed);
    const big = encodeTree(Array.from({ length: 50 }, (_, i) => f(`f${String(i).padStart(3, '0')}`)));
    await blobs.write(sha256(big), [big]);
    await putSnapshot(blobs, refs, 'large', sha256(big));

    const report = await checkReachability(lying, refs, { maxTreeBytes: big.length - 1 });
    const byRef = Object.fromEntries(report.unreadable.map((u) => [u.ref, u.reason]));
    assert.match(byRef.invalid, /out of order|canonical/);
    assert.match(byRef.mismatch, /does not match its digest/);
    assert.match(byRef.large, /larger than/);
    assert.equal(report.treesChecked, 0);
  });
});
