// The auth matrix: no token / read / write / wrong ref prefix / public-read,
// and loopback-only mode without a tokens file.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { authorize, hashToken, readAllowedQuietly, refPrefixAllows } from '../../src/server/auth.ts';
import { AuthFailureLimiter } from '../../src/server/auth-failures.ts';
import { type TestToken, writeTokensFile } from '../support/tokens.ts';
import { startTestServer, type TestServer } from './helpers.ts';

const TOKENS: TestToken[] = [
  { name: 'reader', token: 'read-secret', scopes: ['read'] },
  { name: 'writer', sha256: hashToken('write-secret').toString('hex'), scopes: ['read', 'write'] },
  { name: 'deployer', token: 'deploy-secret', scopes: ['write'], refs: ['deploy/'] },
  { name: 'team-a', token: 'team-a-secret', scopes: ['write'], refs: ['team-a'] },
  { name: 'all-refs', token: 'all-refs-secret', scopes: ['read', 'write'], refs: [''] },
  { name: 'peer-server', token: 'peer-secret', scopes: ['read', 'write'], refs: ['git-snapshots/'] },
];

describe('auth', () => {
  let dir: string;
  let tokensFile: string;
  let srv: TestServer;
  let pub: TestServer;
  const data = randomBytes(64);
  const hex = hexOf(sha256(data));
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-auth-'));
    tokensFile = await writeTokensFile(dir, TOKENS);
    srv = await startTestServer({ tokens: tokensFile });
    pub = await startTestServer({ tokens: tokensFile, publicRead: true });
  });
  after(async () => {
    await srv?.close();
    await pub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const auth = (t?: string): Record<string, string> => (t ? { authorization: `Bearer ${t}` } : {});
  const putBlob = (s: TestServer, t?: string) =>
    fetch(`${s.url}/v1/blobs/sha256/${hex}`, { method: 'PUT', body: new Uint8Array(data), headers: auth(t) });
  const getBlob = (s: TestServer, t?: string) =>
    fetch(`${s.url}/v1/blobs/sha256/${hex}`, { headers: auth(t) });
  const putRef = (s: TestServer, name: string, t?: string) =>
    fetch(`${s.url}/v1/refs/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'if-none-match': '*', ...auth(t) },
      body: JSON.stringify({ target: `sha256:${hex}` }),
    });
  const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  it('no token: reads and writes get 401 (JSON), without echoing anything secret', async () => {
    const w = await putBlob(srv);
    assert.equal(w.status, 401);
    assert.equal(await code(w), 'HOARD_EUNAUTHORIZED');
    assert.equal((await getBlob(srv)).status, 401);
    const bad = await getBlob(srv, 'wrong-secret');
    assert.equal(bad.status, 401);
    assert.ok(!(await bad.text()).includes('wrong-secret'));
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  });

  it('read token: reads yes, writes 403', async () => {
    const w = await putBlob(srv, 'read-secret');
    assert.equal(w.status, 403);
    assert.equal(await code(w), 'HOARD_EFORBIDDEN');
    assert.equal((await getBlob(srv, 'read-secret')).status, 404);
    assert.equal((await putRef(srv, 'team/x', 'read-secret')).status, 403);
  });

  it('write token: writes blobs and any ref; reads too', async () => {
    assert.equal((await putBlob(srv, 'write-secret')).status, 201);
    assert.equal((await getBlob(srv, 'write-secret')).status, 200);
    assert.equal((await getBlob(srv, 'read-secret')).status, 200);
    assert.equal((await putRef(srv, 'team/x', 'write-secret')).status, 201);
  });

  it('a token limited to ref prefixes gets 403 outside them', async () => {
    await putBlob(srv, 'write-secret');
    const outside = await putRef(srv, 'team/y', 'deploy-secret');
    assert.equal(outside.status, 403);
    assert.equal(await code(outside), 'HOARD_EFORBIDDEN');
    assert.equal((await putRef(srv, 'deploy/app', 'deploy-secret')).status, 201);
  });

  it('ref prefixes match whole path segments', async () => {
    await putBlob(srv, 'write-secret');
    // "team-a" (no slash): the ref itself and everything under it, nothing that merely starts the same.
    // (The ref `team-a` itself is allowed too, see the unit test: one store cannot hold both.)
    assert.equal((await putRef(srv, 'team-a/app', 'team-a-secret')).status, 201);
    for (const name of ['team-a.evil/x', 'team-ab', 'team-a-b/x', 'team'])
      assert.equal((await putRef(srv, name, 'team-a-secret')).status, 403, name);
    // "deploy/" (trailing slash): only what is under it.
    assert.equal((await putRef(srv, 'deployer/x', 'deploy-secret')).status, 403);
    assert.equal((await putRef(srv, 'deploy', 'deploy-secret')).status, 403);
    assert.equal((await putRef(srv, 'deploy/a/b', 'deploy-secret')).status, 201);
  });

  it('a token limited to ref prefixes reads and lists only refs under them (and server-owned ones)', async () => {
    await putBlob(srv, 'write-secret');
    assert.equal((await putRef(srv, 'secret-team/app', 'write-secret')).status, 201);
    assert.equal((await putRef(srv, 'deploy/readable', 'deploy-secret')).status, 201);
    const snap = `git-snapshots/local/read/${'d'.repeat(40)}`;
    assert.equal((await putRef(srv, snap, 'peer-secret')).status, 201);
    const get = (name: string, t: string) => fetch(`${srv.url}/v1/refs/${name}`, { headers: auth(t) });

    const outside = await get('secret-team/app', 'deploy-secret');
    assert.equal(outside.status, 403);
    assert.equal(await code(outside), 'HOARD_EFORBIDDEN');
    // A ref that does not exist outside the prefixes is refused the same way (no existence oracle).
    assert.equal((await get('secret-team/absent', 'deploy-secret')).status, 403);
    assert.equal((await get('deploy/readable', 'deploy-secret')).status, 200);
    assert.equal((await get(snap, 'deploy-secret')).status, 200, 'server-owned refs are readable');
    // Unbound tokens read everything, as before.
    assert.equal((await get('secret-team/app', 'read-secret')).status, 200);
    assert.equal((await get('secret-team/app', 'all-refs-secret')).status, 200);

    const list = async (t: string, prefix = '') => {
      const res = await fetch(`${srv.url}/v1/refs?prefix=${encodeURIComponent(prefix)}`, {
        headers: auth(t),
      });
      assert.equal(res.status, 200);
      return ((await res.json()) as { refs: { name: string }[] }).refs.map((r) => r.name);
    };
    const bound = await list('deploy-secret');
    assert.ok(bound.includes('deploy/readable') && bound.includes(snap), bound.join());
    assert.ok(
      bound.every((n) => n.startsWith('deploy/') || n.startsWith('git-snapshots/')),
      `listed outside the prefixes: ${bound.join()}`,
    );
    assert.deepEqual(await list('deploy-secret', 'secret-team/'), []);
    assert.ok((await list('read-secret')).includes('secret-team/app'));
    // Paging over a filtered listing still reaches the token's refs.
    const paged = await fetch(`${srv.url}/v1/refs?prefix=&limit=1`, { headers: auth('deploy-secret') });
    const page = (await paged.json()) as { refs: { name: string }[]; next: string | null };
    assert.equal(page.refs.length, 1);
    assert.ok(page.refs[0].name.startsWith('deploy/') || page.refs[0].name.startsWith('git-snapshots/'));
  });

  it('ref prefix rules, unit', () => {
    assert.equal(refPrefixAllows('team-a', 'team-a'), true);
    assert.equal(refPrefixAllows('team-a', 'team-a/x/y'), true);
    assert.equal(refPrefixAllows('team-a', 'team-a.evil/x'), false);
    assert.equal(refPrefixAllows('team-a', 'team-ab'), false);
    assert.equal(refPrefixAllows('team/app/', 'team/app/x'), true);
    assert.equal(refPrefixAllows('team/app/', 'team/app'), false);
    assert.equal(refPrefixAllows('team/app/', 'team/apple/x'), false);
    assert.equal(refPrefixAllows('', 'anything/at/all'), true);
  });

  it('the snapshot namespace is server-owned: no write token may PUT or DELETE there, reads are fine', async () => {
    await putBlob(srv, 'write-secret');
    const name = `git-snapshots/local/app/${'c'.repeat(40)}`;
    for (const t of ['write-secret', 'deploy-secret', 'all-refs-secret']) {
      const w = await putRef(srv, name, t);
      assert.equal(w.status, 403, t);
      assert.equal(await code(w), 'HOARD_EFORBIDDEN');
    }
    // The server-to-server token names the namespace explicitly: it may write (a shared remote).
    const s2s = await putRef(srv, name, 'peer-secret');
    assert.equal(s2s.status, 201);
    const etag = s2s.headers.get('etag')!;
    const del = await fetch(`${srv.url}/v1/refs/${name}`, {
      method: 'DELETE',
      headers: { 'if-match': etag, ...auth('write-secret') },
    });
    assert.equal(del.status, 403);
    const read = await fetch(`${srv.url}/v1/refs/${name}`, { headers: auth('read-secret') });
    assert.equal(read.status, 200);
    assert.equal((await putRef(srv, 'git-mirrors/x', 'write-secret')).status, 403);
    // Only that namespace: a ref merely starting the same is an ordinary ref.
    assert.equal((await putRef(srv, 'git-snapshots-mine/x', 'write-secret')).status, 201);
  });

  it('loopback mode (no tokens file) cannot write the snapshot namespace either', () => {
    const policy = { tokens: undefined, publicRead: false };
    const req = { remoteAddress: '127.0.0.1', authorization: undefined };
    assert.throws(
      () => authorize(policy, req, 'write', `git-snapshots/a/b/${'c'.repeat(40)}`),
      (e) => isHoardError(e, 'HOARD_EFORBIDDEN'),
    );
    assert.equal(authorize(policy, req, 'write', 'cache/x'), 'loopback');
    assert.equal(authorize(policy, req, 'read'), 'loopback');
  });

  it('HTTP Basic with the token as the password is the token; a 401 challenges for it', async () => {
    const basic = (user: string, pass: string) => ({
      authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
    });
    const put = (headers: Record<string, string>) =>
      fetch(`${srv.url}/v1/blobs/sha256/${hex}`, { method: 'PUT', body: new Uint8Array(data), headers });
    assert.equal((await put(basic('ci', 'write-secret'))).status < 300, true);
    assert.equal((await put(basic('anyone', 'read-secret'))).status, 403);
    const wrong = await put(basic('ci', 'nope'));
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic realm="hoard"/);
    assert.equal((await put(basic('write-secret', ''))).status, 401, 'the user name is not the token');
  });

  it('--public-read: anonymous reads allowed, anonymous writes 401', async () => {
    assert.equal((await getBlob(pub)).status, 404);
    assert.equal((await putBlob(pub)).status, 401);
    assert.equal((await putBlob(pub, 'write-secret')).status, 201);
    assert.equal((await getBlob(pub)).status, 200);
    assert.equal((await fetch(`${pub.url}/v1/refs?prefix=`)).status, 200);
  });

  it('without a tokens file only loopback clients are served', () => {
    const policy = { tokens: undefined, publicRead: false };
    assert.equal(
      authorize(policy, { remoteAddress: '127.0.0.1', authorization: undefined }, 'write'),
      'loopback',
    );
    assert.equal(authorize(policy, { remoteAddress: '::1', authorization: undefined }, 'read'), 'loopback');
    assert.equal(
      authorize(policy, { remoteAddress: '::ffff:127.0.0.1', authorization: undefined }, 'read'),
      'loopback',
    );
    assert.throws(
      () => authorize(policy, { remoteAddress: '10.1.2.3', authorization: 'Bearer x' }, 'read'),
      (e) => isHoardError(e, 'HOARD_EFORBIDDEN'),
    );
  });
});

describe('auth: a read granted on a connection (readAllowedQuietly)', () => {
  const entry = (name: string, token: string, scopes: ('read' | 'write')[]) => ({
    name,
    hash: hashToken(token),
    scopes: new Set(scopes),
    refPrefixes: undefined,
  });
  const tokens = [
    entry('reader', 'read-secret', ['read']),
    entry('writer', 'write-secret', ['write']),
    entry('nothing', 'no-scope-secret', []),
  ];
  const bearer = (t: string) => `Bearer ${t}`;

  it('decides as without a connection: no token, read, write, no scope, bad and odd headers', () => {
    for (const publicRead of [false, true]) {
      const policy = { tokens, publicRead };
      const conn = {};
      const cases: [string | undefined, boolean][] = [
        [undefined, publicRead],
        [bearer('read-secret'), true],
        [bearer('write-secret'), true],
        [bearer('no-scope-secret'), publicRead],
        [bearer('read-secret'), true],
        [bearer('bad-secret'), false],
        [bearer('read-secretX'), false],
        [bearer('read-secre'), false],
        ['Bearer', false],
        ['Basic OnJlYWQtc2VjcmV0', true], // ":read-secret"
        ['', publicRead],
        [bearer('read-secret\u0100'), false], // not a parser's string: never equal to a granted one
        [bearer('read-secret'), true],
      ];
      for (const [h, want] of cases) {
        assert.equal(readAllowedQuietly(policy, '10.0.0.1', h), want, `${h} (publicRead ${publicRead})`);
        assert.equal(readAllowedQuietly(policy, '10.0.0.1', h, conn), want, `${h} on a connection`);
        assert.equal(readAllowedQuietly(policy, '10.0.0.1', h, conn), want, `${h} again on it`);
      }
    }
  });

  it('a grant is used only for the same header, the same policy and no lockout in force', () => {
    const failures = new AuthFailureLimiter({ limit: 1, windowMs: 60_000 });
    const policy = { tokens, publicRead: false, failures };
    const conn = {};
    assert.equal(readAllowedQuietly(policy, '10.0.0.2', bearer('read-secret'), conn), true);
    assert.equal(readAllowedQuietly(policy, '10.0.0.2', bearer('bad-secret'), conn), false, 'another header');
    assert.equal(
      readAllowedQuietly({ tokens: [tokens[1]], publicRead: false }, '10.0.0.2', bearer('read-secret'), conn),
      false,
      'another policy',
    );
    assert.equal(readAllowedQuietly(policy, '10.0.0.2', bearer('read-secret'), conn), true);
    failures.failed('10.0.0.2');
    failures.failed('10.0.0.2');
    assert.ok(failures.lockedFor('10.0.0.2') > 0);
    assert.equal(readAllowedQuietly(policy, '10.0.0.2', bearer('read-secret'), conn), false, 'locked out');
    assert.equal(readAllowedQuietly({ tokens, publicRead: false }, '127.0.0.1', undefined, conn), false);
    assert.equal(
      readAllowedQuietly({ tokens: undefined, publicRead: false }, '127.0.0.1', bearer('x'), conn),
      true,
      'loopback mode',
    );
    assert.equal(
      readAllowedQuietly({ tokens: undefined, publicRead: false }, '10.0.0.2', bearer('read-secret'), conn),
      false,
    );
  });
});
