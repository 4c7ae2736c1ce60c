// HotBlobs (src/server/hot-blobs.ts): verified small blob bytes handed out
// only while the blob's file is the one they were read from.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdtemp, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { HotBlobs } from '../../src/server/hot-blobs.ts';

describe('HotBlobs', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-hot-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A file holding `data`, named by its digest, and what a reader hands to add(). */
  async function blobFile(data: Buffer): Promise<{ digest: Digest; path: string }> {
    const digest = sha256(data);
    const path = join(dir, digest.slice(7));
    await writeFile(path, data);
    return { digest, path };
  }

  it('hands out the bytes while the file is unchanged, one stat per read', async () => {
    const data = randomBytes(4096);
    const { digest, path } = await blobFile(data);
    const hot = new HotBlobs({ maxBytes: 1 << 20, maxBlobBytes: 64 * 1024 });
    assert.equal(hot.get(digest, path), undefined, 'nothing before add');
    hot.add(digest, data, statSync(path));
    for (let i = 0; i < 3; i++) assert.ok(hot.get(digest, path)?.equals(data));
    assert.equal(hot.hits, 3);
    assert.equal(hot.stale, 0);
  });

  it('a file deleted, replaced, rewritten or touched is a miss, and the entry is dropped', async () => {
    const hot = new HotBlobs({ maxBytes: 1 << 20, maxBlobBytes: 64 * 1024 });
    const changes: [string, (path: string, data: Buffer) => Promise<void>][] = [
      ['deleted (evicted)', (p) => unlink(p)],
      [
        'replaced by another file with the same bytes (new inode)',
        async (p, d) => {
          await writeFile(`${p}.new`, d);
          await rename(`${p}.new`, p);
        },
      ],
      [
        'rewritten in place, its mtime put back (ctime still moves)',
        async (p, d) => {
          const before = await stat(p);
          const bad = Buffer.from(d);
          bad[0] ^= 0xff;
          await writeFile(p, bad);
          await utimes(p, before.atime, before.mtime);
        },
      ],
      ['touched', (p) => utimes(p, new Date(), new Date(Date.now() + 5000))],
      ['grown', (p) => writeFile(p, Buffer.alloc(1), { flag: 'a' })],
    ];
    for (const [what, change] of changes) {
      const data = randomBytes(1000);
      const { digest, path } = await blobFile(data);
      hot.add(digest, data, statSync(path));
      assert.ok(hot.get(digest, path), what);
      const stale = hot.stale;
      await change(path, data);
      assert.equal(hot.get(digest, path), undefined, what);
      assert.equal(hot.stale, stale + 1, what);
      assert.equal(hot.get(digest, path), undefined, `${what}: dropped, not checked again`);
      assert.equal(hot.stale, stale + 1, what);
    }
    assert.equal(hot.size, 0);
  });

  it('a path that is not a file of ours (under a file, not there) is a miss', async () => {
    const data = randomBytes(100);
    const { digest, path } = await blobFile(data);
    const hot = new HotBlobs({ maxBytes: 1 << 20, maxBlobBytes: 64 * 1024 });
    hot.add(digest, data, statSync(path));
    assert.equal(hot.get(digest, join(path, 'under-a-file')), undefined, 'ENOTDIR');
    hot.add(digest, data, statSync(path));
    assert.equal(hot.get(digest, join(dir, 'nothing-here')), undefined, 'ENOENT');
  });

  it('keeps only small blobs, bytes that match the file size, and forgets the least recently used past its bound', async () => {
    const hot = new HotBlobs({ maxBytes: 3 * (4096 + 256), maxBlobBytes: 8192 });
    const big = randomBytes(8193);
    const b = await blobFile(big);
    hot.add(b.digest, big, statSync(b.path));
    assert.equal(hot.size, 0, 'larger than maxBlobBytes');
    const short = randomBytes(10);
    const s = await blobFile(randomBytes(11));
    hot.add(s.digest, short, statSync(s.path));
    assert.equal(hot.size, 0, 'bytes shorter than the file they were read from');

    const files = [];
    for (let i = 0; i < 4; i++) {
      const data = randomBytes(4096);
      files.push({ data, ...(await blobFile(data)) });
    }
    for (const f of files.slice(0, 3)) hot.add(f.digest, f.data, statSync(f.path));
    assert.equal(hot.size, 3);
    assert.ok(hot.get(files[0].digest, files[0].path), 'the first, read again: most recently used');
    hot.add(files[3].digest, files[3].data, statSync(files[3].path));
    assert.equal(hot.size, 3);
    assert.equal(hot.get(files[1].digest, files[1].path), undefined, 'the least recently used went');
    for (const i of [0, 2, 3]) assert.ok(hot.get(files[i].digest, files[i].path), `file ${i} kept`);
    assert.ok(hot.bytes <= hot.maxBytes);
    hot.forget(files[0].digest);
    assert.equal(hot.get(files[0].digest, files[0].path), undefined, 'forgotten');
    assert.equal(hot.size, 2);
  });

  it('keeps its own copy of a view into a larger buffer (never pins a pool slab)', async () => {
    const data = randomBytes(100);
    const { digest, path } = await blobFile(data);
    const slab = Buffer.alloc(8192);
    data.copy(slab, 500);
    const view = slab.subarray(500, 600);
    const hot = new HotBlobs({ maxBytes: 1 << 20, maxBlobBytes: 64 * 1024 });
    hot.add(digest, view, statSync(path));
    const got = hot.get(digest, path);
    assert.ok(got?.equals(data));
    assert.equal(got?.buffer.byteLength, 100);
    slab.fill(0);
    assert.ok(hot.get(digest, path)?.equals(data), 'not changed with the slab');
  });
});
