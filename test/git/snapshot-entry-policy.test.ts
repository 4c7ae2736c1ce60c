// What `hoard git restore` accepts from a snapshot archive: an allow-list
// under .git (pack files and skeleton directories); hooks, config that would
// be written, a `gitdir:` file, nested git directories and links into .git
// are refused. HEAD and config are read and dropped (restore writes its own).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EntryInfo } from '../../src/archive/safe-extract.ts';
import { isGitDirName, snapshotEntryPolicy } from '../../src/git/snapshot-entry-policy.ts';

const entry = (name: string, over: Partial<EntryInfo> = {}): EntryInfo => ({
  name,
  type: 'file',
  mode: 0o644,
  size: 10,
  linkname: '',
  ...over,
});
const refused = (e: EntryInfo) =>
  assert.throws(() => snapshotEntryPolicy(e), { code: 'HOARD_EARCHIVE_UNSAFE' }, e.name);

describe('snapshot entry policy', () => {
  it('accepts the checkout, the .git skeleton and non-executable pack files', () => {
    assert.equal(snapshotEntryPolicy(entry('src/index.js')), 'extract');
    assert.equal(snapshotEntryPolicy(entry('.git', { type: 'directory' })), 'extract');
    assert.equal(snapshotEntryPolicy(entry('.git/objects/pack', { type: 'directory' })), 'extract');
    const pack = `.git/objects/pack/pack-${'a'.repeat(40)}.pack`;
    assert.equal(snapshotEntryPolicy(entry(pack)), 'extract');
    refused(entry(pack, { mode: 0o755 }));
    // The history's commit-graph: one regular, non-executable file at its one place.
    assert.equal(snapshotEntryPolicy(entry('.git/objects/info/commit-graph')), 'extract');
    refused(entry('.git/objects/info/commit-graph', { mode: 0o755 }));
    refused(entry('.git/objects/info/commit-graph', { type: 'symlink', linkname: '/etc/passwd' }));
    refused(entry('.git/objects/info/commit-graph', { type: 'directory' }));
    refused(entry('.git/objects/info/commit-graphs', { type: 'directory' }));
    refused(entry('.git/objects/info/commit-graphs/commit-graph-chain'));
    refused(entry(`.git/objects/info/commit-graphs/graph-${'a'.repeat(40)}.graph`));
    refused(entry('.git/objects/info/commit-graph.lock'));
    refused(entry('.git/objects/commit-graph'));
  });

  it('drops .git/HEAD and .git/config (restore writes both itself)', () => {
    assert.equal(snapshotEntryPolicy(entry('.git/config')), 'skip');
    assert.equal(snapshotEntryPolicy(entry('.git/HEAD')), 'skip');
    refused(entry('.git/config', { size: 10 * 1024 * 1024 }));
  });

  it('refuses hooks, info/, alternates, packed-refs and anything else under .git', () => {
    refused(entry('.git/hooks', { type: 'directory' }));
    refused(entry('.git/hooks/post-checkout', { mode: 0o755 }));
    refused(entry('.git/info/attributes'));
    refused(entry('.git/objects/info/alternates'));
    refused(entry('.git/packed-refs'));
    refused(entry('.git/fsmonitor--daemon.ipc'));
  });

  it('refuses a .git that is a file or a link (gitdir: pointing elsewhere)', () => {
    refused(entry('.git'));
    refused(entry('.git', { type: 'symlink', linkname: '/other/repo/.git' }));
  });

  it('refuses nested or disguised git directories and links into .git', () => {
    refused(entry('vendor/.git/config'));
    refused(entry('.GIT/config'));
    refused(entry('sub/git~1/HEAD'));
    refused(entry('a', { type: 'link', linkname: '.git/config' }));
    refused(entry('.git/objects/pack/x', { type: 'symlink', linkname: '/etc/passwd' }));
    assert.equal(isGitDirName('.g\u200cit'), true);
    assert.equal(isGitDirName('.gitignore'), false);
  });
});
