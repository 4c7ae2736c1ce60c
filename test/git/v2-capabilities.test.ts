// The v2 capability advertisement is git's own answer, kept while the
// repository's config is the same file (src/git/v2-capabilities.ts): the
// same bytes as `git upload-pack --advertise-refs`, no git process for a
// repeat, and a config change seen at the next request.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { gitChildren } from '../../src/git/git-process.ts';
import { v2Capabilities } from '../../src/git/v2-capabilities.ts';
import { GIT_ENV, gitSync, makeUpstream, tempDir } from './helpers/harness.ts';

const advertise = (dir: string, proto: string) =>
  execFileSync('git', ['upload-pack', '--stateless-rpc', '--advertise-refs', '.'], {
    cwd: dir,
    env: { ...GIT_ENV, GIT_PROTOCOL: proto },
  });

describe('v2Capabilities', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  test('git’s bytes; a repeat spawns no git; a config change is seen', async () => {
    const repo = makeUpstream(tmp.path, 'r', 1);
    gitSync(['config', 'uploadpack.allowFilter', 'true'], repo);
    const first = await v2Capabilities(repo, 'version=2');
    assert.deepEqual(first, advertise(repo, 'version=2'));
    assert.match(first.toString(), /^[0-9a-f]{4}version 2\n/);
    assert.match(first.toString(), /fetch=[^\n]*filter/);

    const spawned = gitChildren().spawned;
    assert.deepEqual(await v2Capabilities(repo, 'version=2'), first);
    assert.equal(gitChildren().spawned, spawned, 'kept: no git process');

    // `git config` rewrites the file (a rename): the next answer is git's again, without `filter`.
    gitSync(['config', 'uploadpack.allowFilter', 'false'], repo);
    const changed = await v2Capabilities(repo, 'version=2');
    assert.equal(gitChildren().spawned, spawned + 1);
    assert.deepEqual(changed, advertise(repo, 'version=2'));
    assert.doesNotMatch(changed.toString(), /filter/);
  });

  test('kept per repository and per protocol string', async () => {
    const a = makeUpstream(tmp.path, 'a', 1);
    const b = makeUpstream(tmp.path, 'b', 1);
    gitSync(['config', 'uploadpack.allowFilter', 'true'], a);
    assert.match((await v2Capabilities(a, 'version=2')).toString(), /filter/);
    assert.doesNotMatch((await v2Capabilities(b, 'version=2')).toString(), /filter/);
    const spawned = gitChildren().spawned;
    await v2Capabilities(a, 'version=2:object-format=sha1');
    assert.equal(gitChildren().spawned, spawned + 1, 'another GIT_PROTOCOL is asked of git');
  });
});
