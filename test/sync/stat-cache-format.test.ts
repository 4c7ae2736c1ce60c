// The stat cache's file (stat-cache.bin, format 2): it round-trips, and a
// file that is corrupt, truncated, of the old JSON format or otherwise not
// ours is ignored — the cache starts empty, every file is hashed again, and
// the next save writes a good file. A same-size edit with the mtime restored
// is still seen through a cache that was saved and loaded.

import assert from 'node:assert/strict';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { sha256 } from '../../src/core/digest.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { tempDir, writeFiles } from './helpers.ts';

const OLD = new Date(Date.now() - 60_000);
/** Scans observed as if after the racy window of files touched just now (a clock, not a sleep). */
const AFTER_RACY_WINDOW = { now: () => Date.now() + DEFAULTS.syncRacyWindowMs + 1000 };

/** A folder of `n` files aged out of the racy window, scanned once and its cache saved. */
async function scannedFolder(dir: string, n: number): Promise<string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) files[`d${i % 3}/f${i}`] = `content ${i}`;
  files['ünï cödé/ok.txt'] = 'non-ASCII path';
  await writeFiles(dir, files);
  for (const p of Object.keys(files)) await utimes(join(dir, p), OLD, OLD);
  const cache = await StatCache.load(dir);
  // Observed as if after the racy window: utimes set the ctime to now, so a scan right away
  // would leave every entry racy (untrusted). A clock, not a sleep.
  const s = await scanDirectory(dir, cache, AFTER_RACY_WINDOW);
  assert.equal(s.filesHashed, n + 1);
  await cache.save();
  return s.digest;
}

const cacheFile = (dir: string) => join(dir, '.hoard', 'stat-cache.bin');

describe('stat cache file', () => {
  it('round-trips: a saved cache answers every lookup, and a rescan hashes nothing', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const digest = await scannedFolder(dir, 40);
      const cache = await StatCache.load(dir);
      assert.equal(cache.size, 41);
      const s = await scanDirectory(dir, cache);
      assert.equal(s.filesHashed, 0);
      assert.equal(s.digest, digest);
      // Deletions and additions fold in at the next save.
      cache.delete('d0/f0');
      cache.set(
        'new',
        { size: 1, mtimeNs: 5_000_000_000n, ctimeNs: 5_000_000_000n, ino: 9n },
        sha256('n'),
        Date.now(),
      );
      assert.equal(cache.size, 41);
      await cache.save();
      const again = await StatCache.load(dir);
      assert.equal(again.size, 41);
      assert.equal(
        again.lookup('new', { size: 1, mtimeNs: 5_000_000_000n, ctimeNs: 5_000_000_000n, ino: 9n }),
        sha256('n'),
      );
      assert.equal(
        again.lookup('new', { size: 1, mtimeNs: 5_000_000_001n, ctimeNs: 5_000_000_000n, ino: 9n }),
        undefined,
      );
      assert.equal(
        again.lookup('new', { size: 1, mtimeNs: 5_000_000_000n, ctimeNs: 5_000_000_000n, ino: 8n }),
        undefined,
      );
      assert.equal(again.lookup('d0/f0', { size: 1, mtimeNs: 0n, ctimeNs: 0n, ino: 0n }), undefined);
    } finally {
      await cleanup();
    }
  });

  it('a save copies what this session did not change: looked up in order, out of order, untouched, replaced', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const key = (n: number) => ({
      size: n,
      mtimeNs: 1_000_000_000n * BigInt(n),
      ctimeNs: 3n + BigInt(n),
      ino: 7n,
    });
    const old = Date.now() + 60_000; // observed long after those stat times: trusted
    // Paths of several lengths, some non-ASCII (their UTF-8 length is not their string length).
    const path = (i: number) => (i % 7 === 0 ? `dïr/ünï-${i}` : `d/${'x'.repeat(i % 5)}${i}`);
    const first = await StatCache.load(dir);
    for (let i = 0; i < 300; i++) first.set(path(i), key(i), sha256(`c${i}`), old);
    await first.save();
    const cache = await StatCache.load(dir);
    // In file order for a while, then a jump back (the index), then in order again; 200-299 untouched.
    for (let i = 0; i < 100; i++) assert.equal(cache.lookup(path(i), key(i)), sha256(`c${i}`));
    assert.equal(cache.lookup(path(50), key(50)), sha256('c50'));
    for (let i = 150; i < 200; i++) assert.equal(cache.lookup(path(i), key(i)), sha256(`c${i}`));
    cache.set(path(120), key(1120), sha256('replaced'), old);
    cache.delete(path(130));
    cache.set('zz-new', key(5), sha256('new'), old);
    await cache.save();
    for (const c of [cache, await StatCache.load(dir)]) {
      assert.equal(c.size, 300);
      for (let i = 0; i < 300; i++) {
        if (i === 130) assert.equal(c.lastDigest(path(i)), undefined);
        else if (i === 120) {
          assert.equal(c.lookup(path(i), key(i)), undefined);
          assert.equal(c.lookup(path(i), key(1120)), sha256('replaced'));
        } else assert.equal(c.lookup(path(i), key(i)), sha256(`c${i}`), path(i));
      }
      assert.equal(c.lookup('zz-new', key(5)), sha256('new'));
    }
  });

  it('a session that looked entries up out of order rewrites the file in its order, even with nothing changed', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const key = (n: number) => ({ size: n, mtimeNs: 1_000_000_000n * BigInt(n), ctimeNs: 3n, ino: 7n });
    const old = Date.now() + 60_000;
    const first = await StatCache.load(dir);
    for (let i = 0; i < 20; i++) first.set(`p${i}`, key(i), sha256(`c${i}`), old);
    await first.save();
    const before = await readFile(cacheFile(dir));
    // In file order: nothing to rewrite.
    const inOrder = await StatCache.load(dir);
    for (let i = 0; i < 20; i++) assert.equal(inOrder.lookup(`p${i}`, key(i)), sha256(`c${i}`));
    await inOrder.save();
    assert.deepEqual(await readFile(cacheFile(dir)), before);
    // Backwards (a folder pulled in another order than its scans walk): rewritten in that order.
    const backwards = await StatCache.load(dir);
    for (let i = 19; i >= 0; i--) assert.equal(backwards.lookup(`p${i}`, key(i)), sha256(`c${i}`));
    await backwards.save();
    const after = await readFile(cacheFile(dir));
    assert.equal(after.length, before.length);
    const firstPath = (b: Buffer) => b.toString('utf8', 19 + 4 + 2, 19 + 4 + 2 + b.readUInt16LE(19 + 4));
    assert.equal(firstPath(before), 'p0');
    assert.equal(firstPath(after), 'p19');
    const again = await StatCache.load(dir);
    for (let i = 19; i >= 0; i--) assert.equal(again.lookup(`p${i}`, key(i)), sha256(`c${i}`));
  });

  it('number-valued stats find an entry recorded with nanoseconds; a change of two microseconds misses', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    await writeFiles(dir, { f: 'content' });
    const exact = await stat(join(dir, 'f'), { bigint: true });
    const cache = await StatCache.load(dir);
    const key = { size: Number(exact.size), mtimeNs: exact.mtimeNs, ctimeNs: exact.ctimeNs, ino: exact.ino };
    cache.set('f', key, sha256('content'), Date.now() + 60_000);
    const loose = await stat(join(dir, 'f'));
    const seen = { size: loose.size, ino: loose.ino, mtimeMs: loose.mtimeMs, ctimeMs: loose.ctimeMs };
    await cache.save();
    for (const c of [cache, await StatCache.load(dir)]) {
      assert.equal(c.lookupStats('f', seen), sha256('content'));
      assert.equal(c.lookupStats('f', { ...seen, mtimeMs: seen.mtimeMs + 0.0003 }), sha256('content'));
      assert.equal(c.lookupStats('f', { ...seen, mtimeMs: seen.mtimeMs + 0.002 }), undefined);
      assert.equal(c.lookupStats('f', { ...seen, ctimeMs: seen.ctimeMs - 0.002 }), undefined);
      assert.equal(c.lookupStats('f', { ...seen, size: seen.size + 1 }), undefined);
      assert.equal(c.lookupStats('f', { ...seen, ino: seen.ino + 1 }), undefined);
      assert.equal(c.lookupStats('g', seen), undefined);
    }
    // A racy entry is never trusted, whatever the stat.
    const racy = await StatCache.load(dir);
    racy.set('f', key, sha256('content'), Number(exact.ctimeNs / 1_000_000n));
    assert.equal(racy.lookupStats('f', seen), undefined);
  });

  const damage: [string, (b: Buffer) => Buffer][] = [
    [
      'with one bit of a digest flipped',
      (b) => {
        const c = Buffer.from(b);
        c[c.length - 10] ^= 0x01;
        return c;
      },
    ],
    ['truncated to half', (b) => b.subarray(0, Math.floor(b.length / 2))],
    ['emptied', () => Buffer.alloc(0)],
    ['of another format', () => Buffer.from('hoard-stat-cache/9\n\0\0\0\0')],
    ['of zeros', () => Buffer.from('\0'.repeat(100))],
  ];
  for (const [what, harm] of damage) {
    it(`a cache file ${what} is ignored: every file is hashed again and the next save repairs it`, async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const digest = await scannedFolder(dir, 20);
        await writeFile(cacheFile(dir), harm(await readFile(cacheFile(dir))));
        const cache = await StatCache.load(dir);
        assert.equal(cache.size, 0);
        const s = await scanDirectory(dir, cache, AFTER_RACY_WINDOW);
        assert.equal(s.filesHashed, 21);
        assert.equal(s.digest, digest);
        await cache.save();
        const repaired = await StatCache.load(dir);
        assert.equal(repaired.size, 21);
        assert.equal((await scanDirectory(dir, repaired)).filesHashed, 0);
      } finally {
        await cleanup();
      }
    });
  }

  it('entries set since the load (the overlay) answer like saved ones: replaced, deleted, set again, racy, saved', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const cache = await StatCache.load(dir);
    const key = (n: number) => ({
      size: n,
      mtimeNs: 1_000_000_000n * BigInt(n),
      ctimeNs: 7n + BigInt(n),
      ino: 99n,
    });
    const old = Date.now() + 60_000; // observed long after those stat times: trusted
    for (let i = 0; i < 500; i++) cache.set(`p${i}`, key(i), sha256(`c${i}`), old); // grows the record buffer
    cache.set('p1', key(1001), sha256('replaced'), old);
    cache.delete('p2');
    cache.set('p3', key(3), sha256('c3'), old);
    cache.delete('p3');
    cache.set('p3', key(33), sha256('again'), old);
    // Observed within the racy window of its ctime: kept, never trusted.
    cache.set(
      'racy',
      { size: 1, mtimeNs: 0n, ctimeNs: BigInt(Date.now()) * 1_000_000n, ino: 1n },
      sha256('r'),
      Date.now(),
    );
    const check = (c: StatCache) => {
      assert.equal(c.lookup('p0', key(0)), sha256('c0'));
      assert.equal(c.lookup('p499', key(499)), sha256('c499'));
      assert.equal(c.lookup('p1', key(1)), undefined);
      assert.equal(c.lookup('p1', key(1001)), sha256('replaced'));
      assert.equal(c.lookup('p2', key(2)), undefined);
      assert.equal(c.lookup('p3', key(3)), undefined);
      assert.equal(c.lookup('p3', key(33)), sha256('again'));
      assert.equal(c.lookup('p4', { ...key(4), ino: 98n }), undefined); // another inode: not this file
      assert.equal(c.lookup('racy', { size: 1, mtimeNs: 0n, ctimeNs: 0n, ino: 1n }), undefined);
      assert.equal(c.lastDigest('racy'), sha256('r'));
      assert.equal(c.size, 500);
    };
    check(cache);
    await cache.save();
    check(cache);
    check(await StatCache.load(dir));
  });

  it('the JSON file of format 1 is ignored, and removed by the next save', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFiles(dir, { a: 'aaa' });
      const st = await stat(join(dir, 'a'), { bigint: true });
      // A format-1 entry claiming another digest: trusting it would push the wrong content.
      const row = [3, String(st.mtimeNs), String(st.ctimeNs), String(st.ino), sha256('not a'), 0];
      await writeFiles(dir, {
        '.hoard/stat-cache.json': JSON.stringify({ format: 'hoard-stat-cache/1', entries: { a: row } }),
      });
      const cache = await StatCache.load(dir);
      assert.equal(cache.size, 0);
      const s = await scanDirectory(dir, cache);
      assert.equal(s.tree.entries[0].kind === 'file' && s.tree.entries[0].digest, sha256('aaa'));
      await cache.save();
      await assert.rejects(stat(join(dir, '.hoard', 'stat-cache.json')), { code: 'ENOENT' });
      assert.equal((await StatCache.load(dir)).size, 1);
    } finally {
      await cleanup();
    }
  });

  it('a same-size edit with its mtime restored is seen through a saved and loaded cache', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const before = await scannedFolder(dir, 5);
      await writeFile(join(dir, 'd1/f1'), 'CONTENT 1'); // same size as 'content 1'
      await utimes(join(dir, 'd1/f1'), OLD, OLD);
      const cache = await StatCache.load(dir);
      assert.equal(cache.size, 6);
      const s = await scanDirectory(dir, cache);
      assert.equal(s.filesHashed, 1);
      assert.notEqual(s.digest, before);
      const e = s.tree.entries.find((x) => x.path === 'd1/f1');
      assert.equal(e?.kind === 'file' && e.digest, sha256('CONTENT 1'));
    } finally {
      await cleanup();
    }
  });
});
