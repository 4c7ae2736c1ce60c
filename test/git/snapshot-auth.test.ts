// The snapshot routes' auth matrix and bad input: `snapshot.tar.zst` and
// `snapshot/<commit>.tar.zst` under /git/<repo>/ need the read scope, like a
// clone; a refused request generates nothing; malformed commits, refs and
// repository paths are 4xx, never an archive or a git error leaked.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { snapshotRefName } from '../../src/git/snapshot-ref.ts';
import { git, makeUpstream } from '../archive/helpers.ts';
import { type SnapshotTestServer, startSnapshotServer } from '../archive/snapshot-server.ts';
import { type TestToken, writeTokensFile } from '../support/tokens.ts';

const TOKENS: TestToken[] = [
  { name: 'reader', token: 'read-secret', scopes: ['read'] },
  { name: 'writer', token: 'write-secret', scopes: ['read', 'write'] },
  { name: 'team-a', token: 'team-a-secret', scopes: ['read', 'write'], refs: ['team-a'] },
];

describe('snapshot routes: auth and bad input', () => {
  let root: string;
  let bare: string;
  let srv: SnapshotTestServer;
  const repo = 'up/app.git';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-snapauth-'));
    const work = await makeUpstream(root, 2);
    bare = join(root, 'upstreams', 'app.git');
    await git(root, 'clone', '-q', '--bare', work, bare);
    srv = await startSnapshotServer({
      upstreams: { up: `file://${join(root, 'upstreams')}` },
      tokens: await writeTokensFile(root, TOKENS),
    });
  });
  after(async () => {
    await srv?.close();
    await rm(root, { recursive: true, force: true });
  });

  const auth = (t?: string): Record<string, string> => (t ? { authorization: `Bearer ${t}` } : {});
  const snap = (path: string, t?: string, method = 'GET') =>
    fetch(`${srv.url}/git/${path}`, { method, headers: auth(t) });

  it('no token or a wrong one: 401 for the stable and the by-commit URL, GET and HEAD; nothing generated', async () => {
    const head = await git(bare, 'rev-parse', 'main');
    for (const path of [`${repo}/snapshot.tar.zst`, `${repo}/snapshot/${head}.tar.zst`])
      for (const method of ['GET', 'HEAD'])
        for (const t of [undefined, 'not-a-token']) {
          const res = await snap(path, t, method);
          assert.equal(res.status, 401, `${method} ${path} ${t}`);
          assert.match(res.headers.get('www-authenticate') ?? '', /Basic realm="hoard"/);
          await res.arrayBuffer();
        }
    assert.equal(await srv.server.ctx.refs.get(snapshotRefName('up/app', head)), undefined);
  });

  it('read, write and a token bound to other ref prefixes read snapshots (as they clone)', async () => {
    const head = await git(bare, 'rev-parse', 'main');
    for (const t of ['read-secret', 'write-secret', 'team-a-secret']) {
      const res = await snap(`${repo}/snapshot.tar.zst`, t);
      assert.equal(res.status, 200, t);
      assert.equal(res.headers.get('x-hoard-commit'), head);
      await res.arrayBuffer();
    }
  });

  it('bad commits, refs and repository paths: 4xx with a JSON error, nothing served', async () => {
    for (const [path, want] of [
      [`${repo}/snapshot/nothex.tar.zst`, 400],
      [`${repo}/snapshot/${'0'.repeat(39)}.tar.zst`, 400],
      [`${repo}/snapshot/${'A'.repeat(40)}.tar.zst`, 400],
      [`${repo}/snapshot.tar.zst?ref=--upload-pack=touch%20x`, 400],
      [`${repo}/snapshot.tar.zst?ref=main%00x`, 400],
      [`${repo}/snapshot.tar.zst?ref=nope`, 404],
      ['up/..%2F..%2Fetc/snapshot.tar.zst', 400],
      ['nowhere/app.git/snapshot.tar.zst', 404],
    ] as const) {
      const res = await snap(path, 'read-secret');
      const text = await res.text();
      assert.equal(res.status, want, `${path}: ${text}`);
      assert.match(res.headers.get('content-type') ?? '', /json/, path);
      assert.ok(!text.includes('fatal:'), `${path}: git's own error text reached the client: ${text}`);
    }
  });
});
