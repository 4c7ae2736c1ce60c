// The extractor's path rules on their own (extract-path-checks.ts): which
// entry names are relative tree paths, which symlink targets stay inside the
// directory lexically, and the physical check that follows chains of links.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkLinksInside, checkName, resolveInside } from '../../src/archive/extract-path-checks.ts';
import { isHoardError } from '../../src/core/errors.ts';

const refused = (err: unknown) => isHoardError(err) && err.code === 'HOARD_EARCHIVE_UNSAFE';

describe('extract path checks', () => {
  it('accepts relative tree paths (a trailing slash and leading ./ dropped) and refuses the rest', () => {
    assert.equal(checkName('a/b.txt'), 'a/b.txt');
    assert.equal(checkName('dir/'), 'dir');
    assert.equal(checkName('./././x'), 'x');
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a//b', 'a\\b', 'a\0b', '']) {
      assert.throws(() => checkName(bad), refused, JSON.stringify(bad));
    }
  });

  it('resolves symlink targets against the link folder, null when they leave it', () => {
    assert.equal(resolveInside('a/link', 'b'), 'a/b');
    assert.equal(resolveInside('a/link', '../b'), 'b');
    assert.equal(resolveInside('a/b/link', '../../c/d'), 'c/d');
    for (const bad of ['../x', '../../x', '/etc', 'C:/x', 'C:\\x', 'a\\b', '', 'a\0b']) {
      assert.equal(resolveInside('link', bad), null, JSON.stringify(bad));
    }
  });

  it('refuses a chain of links that leads out, and a loop; a dangling link is harmless', async () => {
    const base = await mkdtemp(join(tmpdir(), 'hoard-path-checks-'));
    try {
      const root = join(await realpath(base), 'root');
      await mkdir(root);
      await symlink('..', join(root, 'up'));
      await symlink('up', join(root, 'chain'));
      await assert.rejects(checkLinksInside([join(root, 'chain')], root), /resolves outside/);
      await symlink('loop-b', join(root, 'loop-a'));
      await symlink('loop-a', join(root, 'loop-b'));
      await assert.rejects(checkLinksInside([join(root, 'loop-a')], root), /symlink loop/);
      await symlink('missing', join(root, 'dangling'));
      await symlink('.', join(root, 'self'));
      await checkLinksInside([join(root, 'dangling'), join(root, 'self')], root);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
