import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import type { Tree, TreeEntry } from '../../src/core/tree.ts';
import { mergeTrees } from '../../src/sync/merge.ts';

const f = (path: string, content: string, kind: 'file' | 'exec' = 'file'): TreeEntry => ({
  path,
  kind,
  size: content.length,
  digest: sha256(content),
});
const t = (...entries: TreeEntry[]): Tree => ({ entries });
const paths = (entries: TreeEntry[]) => entries.map((e) => e.path);

describe('three-way tree merge', () => {
  it('takes each side’s changes to different paths', () => {
    const base = t(f('a', '1'), f('b', '1'), f('c', '1'));
    const ours = t(f('a', '2'), f('b', '1'), f('c', '1'), f('new-ours', 'x'));
    const theirs = t(f('a', '1'), f('c', '1'), f('new-theirs', 'y'));
    const m = mergeTrees(base, ours, theirs);
    assert.deepEqual(m.conflicts, []);
    assert.deepEqual(paths(m.entries), ['a', 'c', 'new-ours', 'new-theirs']);
    assert.equal((m.entries[0] as { digest: string }).digest, sha256('2'));
  });

  it('identical changes on both sides are not conflicts', () => {
    const m = mergeTrees(t(f('a', '1')), t(f('a', '2')), t(f('a', '2')));
    assert.deepEqual(m.conflicts, []);
  });

  it('different changes, edit vs delete, and mode vs content are conflicts', () => {
    const base = t(f('a', '1'), f('b', '1'), f('c', '1'));
    const ours = t(f('a', '2'), f('c', '1', 'exec'));
    const theirs = t(f('a', '3'), f('b', '2'), f('c', '2'));
    const m = mergeTrees(base, ours, theirs);
    assert.deepEqual(m.conflicts, ['a', 'b', 'c']);
    assert.deepEqual(
      mergeTrees(base, ours, theirs, 'ours').entries.map((e) => [e.path, e.kind]),
      [
        ['a', 'file'],
        ['c', 'exec'],
      ],
    );
    assert.deepEqual(paths(mergeTrees(base, ours, theirs, 'theirs').entries), ['a', 'b', 'c']);
  });

  it('a file on one side where the other put a folder is a conflict on both paths', () => {
    const m = mergeTrees(t(), t(f('x', 'file')), t(f('x/inner', 'y')));
    assert.deepEqual(m.conflicts, ['x', 'x/inner']);
    assert.deepEqual(paths(mergeTrees(t(), t(f('x', 'file')), t(f('x/inner', 'y')), 'theirs').entries), [
      'x/inner',
    ]);
  });

  it('an empty-folder entry that gains content on the other side is dropped', () => {
    const m = mergeTrees(t(), t({ path: 'd', kind: 'dir' }), t(f('d/file', 'z')));
    assert.deepEqual(m.conflicts, []);
    assert.deepEqual(paths(m.entries), ['d/file']);
  });
});
