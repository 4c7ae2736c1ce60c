// git over HTTP Basic, as forges do it: the hoard token is the password
// (any user name), so `git clone http://user:TOKEN@host/git/…` and git
// credential helpers work without `-c http.extraHeader`. Real git against a
// real server with a tokens file and a configured upstream.

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
import { type HttpUpstream, startHttpUpstream } from './helpers/http-upstream.ts';

const TOKENS: TestToken[] = [
  { name: 'ci', token: 'ci-read-secret', scopes: ['read'] },
  { name: 'pusher', token: 'push-secret', scopes: ['read', 'write'], refs: ['git/'] },
];

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A credential helper that answers every `get` with these credentials. */
const helper = (user: string, password: string) => [
  '-c',
  'credential.helper=',
  '-c',
  `credential.helper=!f() { test "$1" = get && echo username=${user} && echo password=${password}; }; f`,
];

/** `hoard serve` with the tokens above and one upstream mapping (`name=url`). */
async function serveWithTokens(dir: string, upstream: string, ...extra: string[]): Promise<ServerProcess> {
  const tokens = await writeTokensFile(dir, TOKENS);
  return startServer(join(dir, 'data'), ['--git-upstream', upstream, ...extra, '--tokens', tokens]);
}

describe('git over HTTP Basic (token as password)', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let upstream: string;
  let host: string;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 2);
    server = await serveWithTokens(tmp.path, `local=file://${join(tmp.path, 'up')}`);
    host = new URL(server.url).host;
  });
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  test('git clone http://ci:TOKEN@host/git/… clones', async () => {
    const dest = join(tmp.path, 'url-creds');
    await git(['clone', '--quiet', `http://ci:ci-read-secret@${host}/git/local/app.git`, dest]);
    assert.equal(head(dest), head(upstream, 'main'));
  });

  test('a wrong password: 401, git fails with an authentication error', async () => {
    const res = await fetch(`${server.url}/git/local/app.git/info/refs?service=git-upload-pack`, {
      headers: { authorization: basic('ci', 'not-the-token') },
    });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    await assert.rejects(
      git(['clone', '--quiet', `http://ci:not-the-token@${host}/git/local/app.git`, join(tmp.path, 'bad')]),
      (err: Error) => {
        assert.match(err.message, /401|Authentication failed/);
        return true;
      },
    );
  });

  test('no credentials: 401 with a Basic challenge (so git asks its credential helper)', async () => {
    const res = await fetch(`${server.url}/git/local/app.git/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic\b/i);
    await res.arrayBuffer();
  });

  test('a git credential helper supplies the token: clone and fetch work', async () => {
    const dest = join(tmp.path, 'helper');
    await git([
      ...helper('oauth2', 'ci-read-secret'),
      'clone',
      '--quiet',
      `http://${host}/git/local/app.git`,
      dest,
    ]);
    assert.equal(head(dest), head(upstream, 'main'));
    // The clone's remote URL holds no secret; later fetches ask the helper again.
    assert.equal(gitSync(['remote', 'get-url', 'origin'], dest), `http://${host}/git/local/app.git`);
    await git([...helper('oauth2', 'ci-read-secret'), 'fetch', '--quiet', 'origin'], { cwd: dest });
  });

  test('a helper with a wrong token: git fails, nothing cloned', async () => {
    await assert.rejects(
      git([
        ...helper('oauth2', 'wrong'),
        'clone',
        '--quiet',
        `http://${host}/git/local/app.git`,
        join(tmp.path, 'helper-bad'),
      ]),
      /401|Authentication failed/,
    );
  });

  test('Basic with the token as password has the same scopes as Bearer (read token: push refused)', async () => {
    const res = await fetch(`${server.url}/git/local/app.git/info/refs?service=git-receive-pack`, {
      headers: { authorization: basic('ci', 'ci-read-secret') },
    });
    assert.equal(res.status, 403);
    await res.arrayBuffer();
  });
});

describe('git over HTTP Basic: push-through never forwards the hoard token', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let http: HttpUpstream;
  let bare: string;

  before(async () => {
    const root = join(tmp.path, 'hup');
    bare = makeUpstream(root, 'app', 1);
    gitSync(['config', 'http.receivepack', 'true'], bare);
    http = await startHttpUpstream(root, 0);
    server = await serveWithTokens(tmp.path, `h=${http.url}`, '--git-allow-push-through');
  });
  after(async () => {
    await server?.stop();
    await http?.close();
    tmp.cleanup();
  });

  // With a tokens file every Authorization a request carries is a hoard token:
  // push-through never forwards it (the upstream's own credentials come from
  // the --git-upstream URL).
  test('a push with http://user:TOKEN@host reaches the upstream without the hoard token', async () => {
    const host = new URL(server.url).host;
    const dest = join(tmp.path, 'clone');
    await git(['clone', '--quiet', `http://ci:push-secret@${host}/git/h/app.git`, dest]);
    gitSync(['commit', '--allow-empty', '-q', '-m', 'via basic'], dest);
    await git(['push', '--quiet', 'origin', 'HEAD:main'], { cwd: dest });
    assert.equal(head(bare, 'main'), head(dest));
    const leaked = http.authorizations.filter((a) =>
      Buffer.from(a.replace(/^basic\s+/i, ''), 'base64')
        .toString()
        .includes('push-secret'),
    );
    assert.deepEqual(leaked, [], 'the hoard token (Basic password) reached the upstream');
  });
});
