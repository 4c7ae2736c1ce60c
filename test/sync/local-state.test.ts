import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { sha256 } from '../../src/core/digest.ts';
import { IgnoreRules } from '../../src/sync/ignore-rules.ts';
import { isRacy } from '../../src/sync/racy-stat.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { loadState, saveState } from '../../src/sync/sync-state.ts';
import { tempDir, writeFiles } from './helpers.ts';

describe('stat cache', () => {
  it('persists, and re-hashes only files whose stat changed', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const files: Record<string, string> = {};
      for (let i = 0; i < 50; i++) files[`f${i}`] = `content ${i}`;
      await writeFiles(dir, files);
      const old = new Date(Date.now() - 60_000);
      for (const name of Object.keys(files)) await utimes(join(dir, name), old, old);
      const c1 = await StatCache.load(dir);
      // Observed as if after the racy window (utimes set the ctime to now): a clock, not a sleep.
      const s1 = await scanDirectory(dir, c1, { now: () => Date.now() + DEFAULTS.syncRacyWindowMs + 1000 });
      assert.equal(s1.filesHashed, 50);
      await c1.save();
      const c2 = await StatCache.load(dir);
      assert.equal(c2.size, 50);
      const s2 = await scanDirectory(dir, c2);
      assert.equal(s2.filesHashed, 0);
      assert.equal(s2.digest, s1.digest);
      await writeFile(join(dir, 'f3'), 'CONTENT 3');
      await utimes(join(dir, 'f3'), old, old);
      const s3 = await scanDirectory(dir, c2);
      assert.equal(s3.filesHashed, 1);
      assert.notEqual(s3.digest, s1.digest);
    } finally {
      await cleanup();
    }
  });

  it('never trusts an entry observed within the racy window of its change', () => {
    const now = Date.now();
    const ns = (ms: number) => BigInt(ms) * 1_000_000n + 123n;
    const key = (ms: number) => ({ size: 1, mtimeNs: ns(ms), ctimeNs: ns(ms), ino: 1n });
    assert.equal(isRacy(key(now - 5), now), true);
    assert.equal(isRacy(key(now - DEFAULTS.syncRacyWindowMs - 50), now), false);
    const c = StatCache.load('/nonexistent-dir-for-test');
    return c.then((cache) => {
      cache.set('a', key(now), sha256('x'), now);
      assert.equal(cache.lookup('a', key(now)), undefined);
      cache.set('b', key(now - 10_000), sha256('x'), now);
      assert.equal(cache.lookup('b', key(now - 10_000)), sha256('x'));
    });
  });
});

describe('scan: names a tree cannot hold', () => {
  it('skips them with a warning, at the top and deeper, and keeps every valid neighbour', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    await writeFiles(dir, {
      'ok.txt': 'a',
      'back\\slash.txt': 'b',
      'C:drive.txt': 'c',
      'sub/C:not-at-top.txt': 'd',
      'sub/ctrl\u0001name.txt': 'e',
      'sub/deeper/back\\slash': 'f',
      'sub/ünï ~#{}.txt': 'g',
      'x:/y.txt': 'h',
    });
    const warnings: string[] = [];
    const s = await scanDirectory(dir, await StatCache.load(dir), { warn: (m) => warnings.push(m) });
    assert.deepEqual(
      s.tree.entries.map((e) => e.path),
      ['ok.txt', 'sub/C:not-at-top.txt', 'sub/ctrl\u0001name.txt', 'sub/deeper', 'sub/ünï ~#{}.txt'],
    );
    assert.equal(warnings.length, 4, warnings.join('\n'));
    for (const [name, why] of [
      ['back\\slash.txt', 'backslash'],
      ['C:drive.txt', 'drive-letter'],
      ['sub/deeper/back\\slash', 'backslash'],
      ['x:', 'drive-letter'],
    ])
      assert.ok(
        warnings.some((w) => w.startsWith(`skipping ${JSON.stringify(name)}`) && w.includes(why)),
        `${name}: ${why}`,
      );
  });
});

describe('damaged local state', () => {
  it('reads a state or cache file holding JSON null as absent', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFiles(dir, { '.hoard/stat-cache.json': 'null' });
      assert.equal((await StatCache.load(dir)).size, 0);
      const state = {
        remote: 'file:///r',
        ref: 'a/b',
        snapshot: sha256('s'),
        version: '1',
        tree: sha256('t'),
        base: sha256('t'),
        syncedAt: new Date().toISOString(),
      };
      await saveState(dir, state);
      const [name] = await readdir(join(dir, '.hoard', 'sync'));
      assert.deepEqual(await loadState(dir, state.remote, state.ref), {
        format: 'hoard-sync-state/1',
        ...state,
      });
      await writeFile(join(dir, '.hoard', 'sync', name), 'null');
      assert.equal(await loadState(dir, state.remote, state.ref), undefined);
    } finally {
      await cleanup();
    }
  });
});

describe('ignore rules', () => {
  it('applies nested .hoardignore files scoped to their folder, deeper rules winning', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await writeFiles(dir, {
        '.hoardignore': '*.tmpfile\n/top-only\n',
        'sub/.hoardignore': '!keep.tmpfile\n',
      });
      await mkdir(join(dir, 'sub'), { recursive: true });
      const root = await IgnoreRules.empty().enter(dir, '', new Set(['.hoardignore']));
      const sub = await root.enter(dir, 'sub', new Set(['.hoardignore']));
      assert.equal(root.ignores('x.tmpfile', false), true);
      assert.equal(root.ignores('top-only', false), true);
      assert.equal(sub.ignores('sub/top-only', false), false);
      assert.equal(sub.ignores('sub/keep.tmpfile', false), false);
      assert.equal(sub.ignores('sub/other.tmpfile', false), true);
      assert.equal(root.ignores('.hoard', true), true);
      assert.equal(sub.ignores('sub/.hoard', true), true);
      assert.equal(root.ignores('.hoard-123.abc.tmp', false), true);
    } finally {
      await cleanup();
    }
  });
});
