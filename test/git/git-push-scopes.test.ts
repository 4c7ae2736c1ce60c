// Push-through honours the token: a push to /git/<repo> needs the `write`
// scope and ref prefixes (if the token has any) that cover `git/<repo-key>`.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type TestToken, writeTokensFile } from '../support/tokens.ts';
import {
  git,
  gitSync,
  head,
  makeUpstream,
  type ServerProcess,
  startServer,
  tempDir,
} from './helpers/harness.ts';

const TOKENS: TestToken[] = [
  { name: 'reader', token: 'read-secret', scopes: ['read'] },
  { name: 'cache-writer', token: 'cache-secret', scopes: ['read', 'write'], refs: ['cache/'] },
  { name: 'other-repo', token: 'other-secret', scopes: ['read', 'write'], refs: ['git/local/ap'] },
  { name: 'app-pusher', token: 'app-secret', scopes: ['read', 'write'], refs: ['git/local/app'] },
];

describe('git push-through: token scopes', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let upstream: string;
  let dest: string;
  const withToken = (t: string) => ['-c', `http.extraHeader=Authorization: Bearer ${t}`];

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 1);
    const tokens = await writeTokensFile(tmp.path, TOKENS);
    server = await startServer(join(tmp.path, 'data'), [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
      '--git-allow-push-through',
      '--tokens',
      tokens,
    ]);
    dest = join(tmp.path, 'clone');
    await git([...withToken('read-secret'), 'clone', '--quiet', `${server.url}/git/local/app.git`, dest]);
    gitSync(['commit', '--allow-empty', '-q', '-m', 'to push'], dest);
  });
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  for (const [token, why] of [
    ['read-secret', 'a read token'],
    ['cache-secret', 'a write token whose ref prefixes do not cover git/local/app'],
    [
      'other-secret',
      'a write token for git/local/ap (a string prefix, not a segment prefix, of git/local/app)',
    ],
  ] as const)
    test(`${why}: 403, nothing reaches the upstream`, async () => {
      const before = head(upstream, 'main');
      await assert.rejects(
        git([...withToken(token), 'push', '--quiet', 'origin', 'HEAD:main'], { cwd: dest }),
        (err: Error) => {
          assert.match(err.message, /403|lacks the write scope|may not write/);
          return true;
        },
      );
      assert.equal(head(upstream, 'main'), before);
    });

  test('a write token covering git/local/app pushes through', async () => {
    await git([...withToken('app-secret'), 'push', '--quiet', 'origin', 'HEAD:main'], { cwd: dest });
    assert.equal(head(upstream, 'main'), head(dest));
  });

  test('the advertisement is refused too (no refs of the upstream leak to a reader)', async () => {
    const res = await fetch(`${server.url}/git/local/app.git/info/refs?service=git-receive-pack`, {
      headers: { authorization: 'Bearer read-secret' },
    });
    assert.equal(res.status, 403);
    await res.arrayBuffer();
  });
});
