// A remote that changed a path's kind (folder → symlink, folder → file,
// file → folder) pulls cleanly into a clone that was in sync; only local
// un-pushed changes in the way are a conflict, and then nothing is lost.
// Real CLI processes against a file:// remote.

import assert from 'node:assert/strict';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { describeDir, hoard, tempDir, writeFiles } from './helpers.ts';

describe('pull applies a remote change of a path’s kind', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let url: string;
  let n = 0;
  before(async () => {
    work = await tempDir('hoard-kind-');
    url = pathToFileURL(join(work.dir, 'remote')).href;
  });
  after(() => work.cleanup());

  const push = (d: string, r: string, ...extra: string[]) =>
    hoard(['push', d, url, '--ref', r, '--json', ...extra]);
  const pull = (d: string, r: string, ...extra: string[]) =>
    hoard(['pull', url, d, '--ref', r, '--json', ...extra]);

  /** A pushed folder with `x/` holding files, and a second clone pulled from it. */
  async function setup(): Promise<{ a: string; b: string; r: string }> {
    const r = `kind/r${++n}`;
    const a = join(work.dir, `a${n}`);
    const b = join(work.dir, `b${n}`);
    await writeFiles(a, { 'keep.txt': 'k', 'x/one.txt': '1', 'x/sub/two.txt': '2', 'target/t.txt': 't' });
    const p = await push(a, r);
    assert.equal(p.code, 0, p.stderr);
    const l = await pull(b, r);
    assert.equal(l.code, 0, l.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));
    return { a, b, r };
  }

  it('folder → symlink', async () => {
    const { a, b, r } = await setup();
    await rm(join(a, 'x'), { recursive: true });
    await symlink('target', join(a, 'x'));
    assert.equal((await push(a, r)).code, 0);
    const res = await pull(b, r);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));
    assert.equal(res.json!.filesDeleted, 2);
    // In sync again: a further pull and push change nothing.
    assert.equal((await pull(b, r)).json!.upToDate, true);
    assert.equal((await push(b, r)).json!.upToDate, true);
  });

  it('folder → file, then file → folder', async () => {
    const { a, b, r } = await setup();
    await rm(join(a, 'x'), { recursive: true });
    await writeFile(join(a, 'x'), 'now a file');
    assert.equal((await push(a, r)).code, 0);
    const res = await pull(b, r);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));

    await rm(join(a, 'x'));
    await writeFiles(a, { 'x/deep/er/file.txt': 'folder again' });
    assert.equal((await push(a, r)).code, 0);
    const back = await pull(b, r);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));
  });

  it('a nested folder → symlink and an empty folder → file', async () => {
    const r = `kind/r${++n}`;
    const a = join(work.dir, `a${n}`);
    const b = join(work.dir, `b${n}`);
    await writeFiles(a, { 'p/q/r/s.txt': 's', 'p/keep.txt': 'k' });
    await mkdir(join(a, 'empty'));
    assert.equal((await push(a, r)).code, 0);
    assert.equal((await pull(b, r)).code, 0);
    await rm(join(a, 'p/q'), { recursive: true });
    await symlink('../elsewhere', join(a, 'p/q'));
    await rm(join(a, 'empty'), { recursive: true });
    await writeFile(join(a, 'empty'), 'e');
    assert.equal((await push(a, r)).code, 0);
    const res = await pull(b, r);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(await describeDir(b), await describeDir(a));
  });

  it('an un-pushed local edit under the folder is a conflict and nothing is lost', async () => {
    const { a, b, r } = await setup();
    await rm(join(a, 'x'), { recursive: true });
    await symlink('target', join(a, 'x'));
    assert.equal((await push(a, r)).code, 0);
    await writeFile(join(b, 'x/one.txt'), 'edited locally');
    const before = await describeDir(b);
    const res = await pull(b, r);
    assert.equal(res.code, 3, res.stderr);
    assert.match(res.stderr, /x\/one\.txt/);
    assert.deepEqual(await describeDir(b), before);
    assert.equal(await readFile(join(b, 'x/one.txt'), 'utf8'), 'edited locally');
  });

  it('an un-pushed new file under the folder is a conflict and nothing is lost', async () => {
    const { a, b, r } = await setup();
    await rm(join(a, 'x'), { recursive: true });
    await writeFile(join(a, 'x'), 'file');
    assert.equal((await push(a, r)).code, 0);
    await writeFile(join(b, 'x/new.txt'), 'new locally');
    const before = await describeDir(b);
    const res = await pull(b, r);
    assert.equal(res.code, 3, res.stderr);
    assert.match(res.stderr, /x\/new\.txt/);
    assert.deepEqual(await describeDir(b), before);
  });

  it('an ignored local file under the folder stops the pull with a clear error and nothing is lost', async () => {
    const { a, b, r } = await setup();
    await writeFile(join(b, '.hoardignore'), '*.log\n');
    await writeFile(join(b, 'x/build.log'), 'local log');
    await rm(join(a, 'x'), { recursive: true });
    await symlink('target', join(a, 'x'));
    await writeFile(join(a, '.hoardignore'), '*.log\n');
    assert.equal((await push(a, r)).code, 0);
    const before = await describeDir(b);
    const res = await pull(b, r, '--force');
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /x\/build\.log/);
    assert.match(res.stderr, /not synced|ignored/);
    assert.deepEqual(await describeDir(b), before);
  });
});
