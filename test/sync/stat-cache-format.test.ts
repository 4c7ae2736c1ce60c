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
