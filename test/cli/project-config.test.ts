// Where push/pull/status take their folder, remote and ref from: the command
// line, then HOARD_REMOTE/HOARD_REF, then the nearest hoard.toml upward from
// the folder (or the working directory). Unit cases on resolveSyncTarget,
// then the real CLI run with no arguments from a project's subfolder.

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveSyncTarget } from '../../src/cli/project-config.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

describe('project config discovery', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let root: string;
  before(async () => {
    tmp = await tempDir('hoard-projcfg-');
    root = join(tmp.dir, 'project');
    await writeFiles(root, {
      'hoard.toml': 'remote = "./store"\nref = "p/toml"\ndir = "data"\n',
      'data/f.txt': 'f\n',
      'src/deep/x.txt': 'x\n',
      // A nearer file in a subfolder wins over the project's.
      'nested/hoard.toml': 'remote = "file:///elsewhere"\nref = "p/nested"\n',
    });
  });
  after(() => tmp.cleanup());

  it('the nearest hoard.toml upward from the working directory fills in everything', async () => {
    const t = await resolveSyncTarget({}, {}, join(root, 'src', 'deep'));
    assert.equal(t.dir, join(root, 'data'));
    assert.equal(t.remote, join(root, 'store'));
    assert.equal(t.ref, 'p/toml');
    assert.deepEqual(t.sources, {
      dir: join(root, 'hoard.toml'),
      remote: join(root, 'hoard.toml'),
      ref: join(root, 'hoard.toml'),
    });
    const n = await resolveSyncTarget({}, {}, join(root, 'nested'));
    assert.equal(n.ref, 'p/nested');
    assert.equal(n.dir, join(root, 'nested'));
  });

  it('the search starts at the folder given, not the working directory', async () => {
    const t = await resolveSyncTarget({ dir: join(root, 'nested') }, {}, tmp.dir);
    assert.equal(t.ref, 'p/nested');
    assert.equal(t.dir, join(root, 'nested'));
    assert.equal(t.sources.dir, 'argument');
  });

  it('flags beat the environment, which beats hoard.toml', async () => {
    const env = { HOARD_REMOTE: 'http://127.0.0.1:1', HOARD_REF: 'p/env' };
    const e = await resolveSyncTarget({}, env, root);
    assert.equal(e.remote, 'http://127.0.0.1:1');
    assert.equal(e.ref, 'p/env');
    assert.deepEqual([e.sources.remote, e.sources.ref], ['HOARD_REMOTE', 'HOARD_REF']);
    assert.equal(e.dir, join(root, 'data'), 'the folder still comes from hoard.toml');
    const f = await resolveSyncTarget({ remote: 'file:///flag', ref: 'p/flag' }, env, root);
    assert.deepEqual([f.remote, f.ref], ['file:///flag', 'p/flag']);
    assert.deepEqual([f.sources.remote, f.sources.ref], ['argument', '--ref']);
    // An empty variable counts as unset.
    const blank = await resolveSyncTarget({}, { HOARD_REF: '' }, root);
    assert.equal(blank.ref, 'p/toml');
  });

  it('nothing anywhere: a usage error saying where to put it', async () => {
    const bare = join(tmp.dir, 'bare');
    await mkdir(bare);
    await assert.rejects(resolveSyncTarget({}, {}, bare), (err) => {
      assert.ok(isHoardError(err, 'HOARD_EUSAGE'));
      assert.match(err.message, /no remote given; no hoard\.toml at or above/);
      assert.match(err.hint ?? '', /HOARD_REMOTE/);
      return true;
    });
    const t = await resolveSyncTarget({}, { HOARD_REMOTE: 'file:///r', HOARD_REF: 'p/e' }, bare);
    assert.equal(t.dir, bare, 'without hoard.toml the folder is the working directory');
  });

  it('a bad hoard.toml is HOARD_ECONFIG naming the file and key', async () => {
    const bad = join(tmp.dir, 'bad');
    await writeFiles(bad, { 'hoard.toml': 'remote = "file:///r"\nrefs = "typo"\n' });
    await assert.rejects(resolveSyncTarget({}, {}, bad), (err) => {
      assert.ok(isHoardError(err, 'HOARD_ECONFIG'));
      assert.match(err.message, /unknown key "refs" in .*hoard\.toml/);
      return true;
    });
    await writeFile(join(bad, 'hoard.toml'), 'remote = [1]\n');
    await assert.rejects(resolveSyncTarget({}, {}, bad), /must be a non-empty string/);
    await writeFile(join(bad, 'hoard.toml'), 'remote = \n');
    await assert.rejects(resolveSyncTarget({}, {}, bad), /not valid TOML/);
  });

  it('hoard push, status and pull with no arguments use the project (real CLI)', async () => {
    const cwd = join(root, 'src', 'deep');
    const p = await hoard(['push', '--json'], { cwd });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.json?.ref, 'p/toml');
    const s = await hoard(['status', '--json'], { cwd });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.json?.summary, 'up-to-date');
    assert.equal(s.json?.dir, join(root, 'data'));
    // HOARD_REF moves the same push to another ref; --ref beats it.
    const e = await hoard(['push', '--json'], { cwd, env: { HOARD_REF: 'p/env' } });
    assert.equal(e.json?.ref, 'p/env');
    const f = await hoard(['push', '--json', '--ref', 'p/flag'], { cwd, env: { HOARD_REF: 'p/env' } });
    assert.equal(f.json?.ref, 'p/flag');
    const ls = await hoard(['ls', join(root, 'store'), '--json']);
    assert.deepEqual((ls.json as { refs: { name: string }[] }).refs.map((r) => r.name).sort(), [
      'p/env',
      'p/flag',
      'p/toml',
    ]);
    // pull with one argument takes it as the remote; the folder still comes from hoard.toml.
    await writeFile(join(root, 'data', 'f.txt'), 'changed\n');
    const pl = await hoard(['pull', join(root, 'store'), '--exact', '--json'], { cwd });
    assert.equal(pl.code, 0, pl.stderr);
    assert.equal(await readFile(join(root, 'data', 'f.txt'), 'utf8'), 'f\n');
    // ls, log and diff read the same project.
    const log = await hoard(['log', '--json'], { cwd });
    assert.equal(log.code, 0, log.stderr);
    assert.equal((log.json as { ref: string }).ref, 'p/toml');
    const lsp = await hoard(['ls', '--prefix', 'p/toml', '--json'], { cwd });
    assert.deepEqual(
      (lsp.json as { refs: { name: string }[] }).refs.map((r) => r.name),
      ['p/toml'],
    );
    await writeFile(join(root, 'data', 'g.txt'), 'g\n');
    const diff = await hoard(['diff', '--json'], { cwd });
    assert.equal(diff.code, 0, diff.stderr);
    assert.deepEqual(
      (diff.json as { added: { path: string }[] }).added.map((e) => e.path),
      ['g.txt'],
    );
    const none = await hoard(['push'], { cwd: tmp.dir, env: { HOARD_REMOTE: '', HOARD_REF: '' } });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no remote given.*\[HOARD_EUSAGE\]\nhint: /);
  });
});
