// parallelLstat (src/sync/parallel-lstat.ts): the lstats of a scan shared
// with a worker thread give exactly what lstatSync gives, in the caller's
// order, with vanished paths marked and real errors thrown; and the scan's
// tree is the same with and without the worker.

import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import {
  LSTAT_FIELDS,
  LSTAT_GONE,
  parallelLstat,
  prestartLstatWorker,
  startLstatWorker,
} from '../../src/sync/parallel-lstat.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { tempDir } from './helpers.ts';

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
    const { dir, rels, cleanup } = await folder(600);
    try {
      const a = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1 });
      const b = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1e9 });
      assert.equal(a.digest, b.digest);
      assert.ok(a.tree.entries.some((e) => e.kind === 'symlink'));
      assert.ok(a.tree.entries.some((e) => e.kind === 'exec'));
      // The worker serves scans whose stat cache is large (a first scan hashes every
      // file anyway): a re-scan with some files changed since the cache was saved.
      const cache = await StatCache.load(dir);
      await scanDirectory(dir, cache, { now: () => Date.now() + 60_000 });
      await cache.save();
      for (const rel of rels.slice(100, 110)) await writeFile(join(dir, rel), 'changed');
      const c = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1 });
      const d = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1e9 });
      assert.equal(c.digest, d.digest);
      assert.notEqual(c.digest, a.digest);
      assert.equal(c.filesHashed, 10);
    } finally {
      await cleanup();
    }
  });

  it('a worker started before the walk (prestarted, or for a large cache) gives the same figures', async (t) => {
    const { dir, rels, cleanup } = await folder(700);
    t.after(cleanup);
    // Prestarted, taken by the next startLstatWorker, given its job as a message.
    prestartLstatWorker();
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
    prestartLstatWorker();
    const early = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 500 });
    assert.equal(early.digest, first.digest);
    prestartLstatWorker();
    const small = await scanDirectory(dir, await StatCache.load(dir), { parallelLstatMinFiles: 1e9 });
    assert.equal(small.digest, first.digest);
  });
});
