// parallelLstat (src/sync/parallel-lstat.ts): the lstats of a scan shared
// with a worker thread give exactly what lstatSync gives, in the caller's
// order, with vanished paths marked and real errors thrown; and the scan's
// tree is the same with and without the worker. A worker that walks the
// folder itself (walkOf) lists what the scan's walk lists, and leaves every
// folder that needs the scan's own walk (ignore files, temp files, names
// and types the scan checks or warns about) to it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  LSTAT_FIELDS,
  LSTAT_GONE,
  parallelLstat,
  prestartLstatWorker,
  startLstatWorker,
  stopLstatWorker,
  walkOf,
} from '../../src/sync/parallel-lstat.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { tempDir } from './helpers.ts';

const execFileP = promisify(execFile);

async function folder(n: number) {
  const work = await tempDir('hoard-plstat-');
  const rels: string[] = [];
  for (let i = 0; i < n; i++) {
    const rel = `d${i % 7}/f${i}.txt`;
    if (i < 7) await mkdir(join(work.dir, `d${i}`), { recursive: true });
    await writeFile(join(work.dir, rel), 'x'.repeat(i % 50));
    rels.push(rel);
  }
  await chmod(join(work.dir, rels[3]), 0o755);
  await symlink('f1.txt', join(work.dir, 'd0', 'link'));
  rels.push('d0/link');
  return { ...work, rels };
}

describe('the worker’s own walk (walkOf)', () => {
  /** A plain folder: files, an executable, a symlink, empty folders, a folder holding only .hoard/. */
  async function plain(dir: string): Promise<void> {
    for (let i = 0; i < 40; i++) {
      await mkdir(join(dir, `d${i % 4}`, `s${i % 3}`), { recursive: true });
      await writeFile(join(dir, `d${i % 4}`, `s${i % 3}`, `f${i}.txt`), `c${i}`);
    }
    await chmod(join(dir, 'd0/s0/f0.txt'), 0o755);
    await symlink('d0', join(dir, 'link'));
    await mkdir(join(dir, 'empty/deeper'), { recursive: true });
    await mkdir(join(dir, 'only-state/.hoard'), { recursive: true });
    await writeFile(join(dir, 'only-state/.hoard/x'), 'state');
    await mkdir(join(dir, '.hoard'), { recursive: true });
    await writeFile(join(dir, '.hoard/y'), 'state');
  }

  const listingOf = async (dir: string) => {
    const w = startLstatWorker(true, resolve(dir));
    assert.ok(w);
    try {
      return await walkOf(w, dir);
    } finally {
      stopLstatWorker(w);
    }
  };

  it('lists what the scan’s own walk finds, in the same order, and the scan gives the same tree with it', async (t) => {
    const { dir, cleanup } = await tempDir('hoard-wwalk-');
    t.after(cleanup);
    await plain(dir);
    const l = await listingOf(dir);
    assert.ok(l);
    const full = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1e9 });
    const byKind = (k: string) =>
      full.tree.entries.filter((e) => (k === 'dir' ? e.kind === 'dir' : e.kind !== 'dir')).map((e) => e.path);
    assert.deepEqual([...l.files].sort(), byKind('file').sort());
    assert.deepEqual([...l.dirs].sort(), byKind('dir').sort());
    assert.ok(l.dirs.includes('empty/deeper') && l.dirs.includes('only-state'));
    assert.ok(!l.files.some((f) => f.includes('.hoard')));
    // Readdir order, depth first: each folder's files before the next top-level folder's.
    const firstOf = (p: string) => l.files.findIndex((f) => f.startsWith(p));
    const lastOf = (p: string) => l.files.findLastIndex((f) => f.startsWith(p));
    for (const d of ['d0/', 'd1/', 'd2/', 'd3/'])
      assert.equal(lastOf(d) - firstOf(d) + 1, l.files.filter((f) => f.startsWith(d)).length, d);
    // A scan whose worker walked the folder: the same tree as the main thread's walk.
    const cache = await StatCache.load(dir);
    await scanDirectory(dir, cache, { now: () => Date.now() + 60_000 });
    await cache.save();
    prestartLstatWorker(dir);
    const viaWorker = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1 });
    assert.equal(viaWorker.digest, full.digest);
    // Also when the cache summary is taken (nothing changed since the save).
    prestartLstatWorker(dir);
    const again = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1 });
    assert.equal(again.digest, full.digest);
    assert.equal(again.filesHashed, 0);
  });

  const odd: [string, (dir: string) => Promise<void>][] = [
    ['an ignore file deep down', (dir) => writeFile(join(dir, 'd1/s1/.hoardignore'), '*.txt\n')],
    ['a temp file of a pull', (dir) => writeFile(join(dir, 'd2/.hoard-1-abc.tmp'), 'tmp')],
    ['a non-ASCII name', (dir) => writeFile(join(dir, 'd0/ünï.txt'), 'u')],
    ['a name with a backslash', (dir) => writeFile(join(dir, 'd0/a\\b'), 'b')],
    ['a drive-letter-like name at the top', (dir) => writeFile(join(dir, 'c:x'), 'c')],
    ['a fifo', async (dir) => void (await execFileP('mkfifo', [join(dir, 'd3/pipe')]))],
  ];
  for (const [what, make] of odd) {
    it(`leaves the walk to the main thread for a folder with ${what}, and the scan is the same`, async (t) => {
      const { dir, cleanup } = await tempDir('hoard-wwalk-');
      t.after(cleanup);
      await plain(dir);
      await make(dir);
      assert.equal(await listingOf(dir), undefined);
      const warnings: string[] = [];
      const full = await scanDirectory(dir, await StatCache.load(dir), {
        parallelLstatMinFiles: 1e9,
        warn: (m) => warnings.push(m),
      });
      const cache = await StatCache.load(dir);
      await scanDirectory(dir, cache, { now: () => Date.now() + 60_000 });
      await cache.save();
      prestartLstatWorker(dir);
      const warned: string[] = [];
      const s = await scanDirectory(dir, await StatCache.load(dir), {
        parallelLstatMinFiles: 1,
        warn: (m) => warned.push(m),
      });
      assert.equal(s.digest, full.digest);
      assert.deepEqual(warned, warnings);
      assert.deepEqual(s.staleTemps, full.staleTemps);
    });
  }

  it('gives nothing for another folder than the one it walked', async (t) => {
    const { dir, cleanup } = await tempDir('hoard-wwalk-');
    t.after(cleanup);
    await plain(dir);
    const w = startLstatWorker(true, resolve(dir));
    assert.ok(w);
    assert.equal(await walkOf(w, join(dir, 'd0')), undefined);
    // It still takes an ordinary job (after its own).
    const rels = ['d0/s0/f0.txt', 'link'];
    const { values, byWorker } = parallelLstat(dir + sep, rels, { minFiles: 1, workerOnly: true, worker: w });
    assert.equal(byWorker, 2);
    assert.deepEqual([...values], [...parallelLstat(dir + sep, rels, { minFiles: 1e9 }).values]);
  });
});

describe('parallelLstat', () => {
  for (const workerOnly of [true, false]) {
    it(`matches lstatSync for every path (${workerOnly ? 'the worker does all' : 'shared'})`, async () => {
      const { dir, rels, cleanup } = await folder(1300);
      try {
        const withGone = [...rels, 'd1/absent', 'nowhere/at/all'];
        const { values, byWorker } = parallelLstat(dir + sep, withGone, { minFiles: 1, workerOnly });
        if (workerOnly) assert.equal(byWorker, withGone.length);
        for (const [i, rel] of rels.entries()) {
          const st = await lstat(join(dir, rel));
          const o = i * LSTAT_FIELDS;
          assert.deepEqual(
            [...values.subarray(o, o + LSTAT_FIELDS)],
            [st.mode, st.size, st.ino, st.mtimeMs, st.ctimeMs],
            rel,
          );
        }
        assert.equal(values[rels.length * LSTAT_FIELDS], LSTAT_GONE);
        assert.equal(values[(rels.length + 1) * LSTAT_FIELDS], LSTAT_GONE);
      } finally {
        await cleanup();
      }
    });
  }

  it('throws the error a path gives (not ENOENT) even when the worker met it', async () => {
    const { dir, rels, cleanup } = await folder(20);
    try {
      // A file used as a folder: ENOTDIR.
      const bad = [...rels, `${rels[0]}/below`];
      assert.throws(() => parallelLstat(dir + sep, bad, { minFiles: 1, workerOnly: true }), {
        code: 'ENOTDIR',
      });
    } finally {
      await cleanup();
    }
  });

  it('a scan gives the same tree with the worker and without it', async () => {
    const { dir, cleanup } = await folder(600);
    try {
      const a = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1 });
      const b = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1e9 });
      assert.equal(a.digest, b.digest);
      assert.ok(a.tree.entries.some((e) => e.kind === 'symlink'));
      assert.ok(a.tree.entries.some((e) => e.kind === 'exec'));
    } finally {
      await cleanup();
    }
  });

  it('a worker started before the walk (prestarted, or for a large cache) gives the same figures', async (t) => {
    const { dir, rels, cleanup } = await folder(700);
    t.after(cleanup);
    // Prestarted, taken by the next startLstatWorker, given its job as a message.
    prestartLstatWorker(dir);
    const w = startLstatWorker(true);
    assert.ok(w);
    const { values, byWorker } = parallelLstat(dir + sep, rels, { minFiles: 1, workerOnly: true, worker: w });
    assert.equal(byWorker, rels.length);
    const plain = parallelLstat(dir + sep, rels, { minFiles: 1e9 });
    assert.deepEqual([...values], [...plain.values]);
    // A scan whose saved cache is large starts the worker before its walk (and the
    // CLI's prestarted one is taken); a scan of a small folder stops the prestarted one.
    const first = await scanDirectory(dir, await StatCache.load(dir), { now: () => Date.now() + 60_000 });
    const cache = await StatCache.load(dir);
    await scanDirectory(dir, cache, { now: () => Date.now() + 60_000 });
    await cache.save();
    assert.equal(StatCache.probablyHolds(dir, 700), true);
    assert.equal(StatCache.probablyHolds(dir, 100_000), false);
    prestartLstatWorker(dir);
    const early = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 500 });
    assert.equal(early.digest, first.digest);
    prestartLstatWorker(dir);
    const small = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1e9 });
    assert.equal(small.digest, first.digest);
  });
});
