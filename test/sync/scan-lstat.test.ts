// lstatAll (src/sync/scan-lstat.ts): a scan's lstats give exactly what
// lstatSync gives, in the caller's order, with vanished paths marked and
// real errors thrown.

import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { LSTAT_FIELDS, LSTAT_GONE, lstatAll } from '../../src/sync/scan-lstat.ts';
import { tempDir } from './helpers.ts';

describe('lstatAll', () => {
  it('matches lstatSync for every path, marks the gone ones, throws other errors', async (t) => {
    const work = await tempDir('hoard-lstat-');
    t.after(work.cleanup);
    const rels: string[] = [];
    for (let i = 0; i < 60; i++) {
      const rel = `d${i % 3}/f${i}.txt`;
      if (i < 3) await mkdir(join(work.dir, `d${i}`), { recursive: true });
      await writeFile(join(work.dir, rel), 'x'.repeat(i));
      rels.push(rel);
    }
    await chmod(join(work.dir, rels[3]), 0o755);
    await symlink('f1.txt', join(work.dir, 'd0', 'link'));
    rels.push('d0/link');
    const values = lstatAll(work.dir + sep, [...rels, 'd1/absent', 'nowhere/at/all']);
    for (const [i, rel] of rels.entries()) {
      const st = await lstat(join(work.dir, rel));
      const o = i * LSTAT_FIELDS;
      assert.deepEqual(
        [...values.subarray(o, o + LSTAT_FIELDS)],
        [st.mode, st.size, st.ino, st.mtimeMs, st.ctimeMs],
        rel,
      );
    }
    assert.equal(values[rels.length * LSTAT_FIELDS], LSTAT_GONE);
    assert.equal(values[(rels.length + 1) * LSTAT_FIELDS], LSTAT_GONE);
    // A file used as a folder: ENOTDIR.
    assert.throws(() => lstatAll(work.dir + sep, [`${rels[0]}/below`]), { code: 'ENOTDIR' });
  });
});
