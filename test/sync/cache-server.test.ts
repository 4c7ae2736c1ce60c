// The `hoard cache` suite against a live hoard server (http://), and entry
// expiry there: cache entries are cache refs, so the server's
// --cache-ref-ttl (time since last use) removes idle ones. The expiry's
// clock is injected; sweeps are run by the test, never waited for.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTestServer } from '../server/helpers.ts';
import { writeTokensFile } from '../support/tokens.ts';
import { cacheSuite, run } from './cache-suite.ts';
import { tempDir, writeFiles } from './helpers.ts';

cacheSuite('a hoard server (http://)', async () => {
  const srv = await startTestServer();
  return { url: srv.url, cleanup: () => srv.close() };
});

describe('hoard cache entries expire on a server when unused (--cache-ref-ttl)', () => {
  it('an entry restored stays, an idle one goes; listing and prefix matching are not uses', async () => {
    const srv = await startTestServer({ cacheRefTtl: '1h' });
    const work = await tempDir('hoard-cache-ttl-');
    try {
      const expiry = srv.server.ctx.refExpiry;
      assert.ok(expiry);
      let now = Date.now();
      expiry.opts.now = () => now;
      const cmd = (verb: string, key: string, ...extra: string[]) =>
        run(work.dir, ['cache', verb, key, 'deps', '--remote', srv.url, '--json', ...extra]);
      await writeFiles(work.dir, { 'deps/a.txt': 'a' });
      assert.equal((await cmd('save', 'ttl-idle')).json.saved, true);
      now += 1000;
      assert.equal((await cmd('save', 'ttl-hot')).json.saved, true);
      assert.deepEqual(await expiry.sweep(), []);

      now += 40 * 60_000;
      assert.equal((await cmd('restore', 'ttl-hot')).json.hit, 'exact'); // a use
      // Neither a listing nor being a candidate a prefix match passed over uses ttl-idle.
      const list = await run(work.dir, ['cache', 'list', '--remote', srv.url, '--json']);
      assert.equal((list.json.entries as unknown[]).length, 2);
      const other = await cmd('restore', 'nope', '--restore-keys', 'ttl-', '--lookup-only');
      assert.equal(other.json.matchedKey, 'ttl-hot'); // the newest: ttl-idle was only a candidate

      now += 40 * 60_000; // ttl-idle: 80 min since its save; ttl-hot: 40 min since its restore
      const gone = await expiry.sweep();
      assert.equal(gone.length, 1);
      assert.match(gone[0], /^cache\/hoard\/default\/key=ttl-idle\//);
      assert.equal((await cmd('restore', 'ttl-idle')).json.hit, 'miss');
      const partial = await cmd('restore', 'nope', '--restore-keys', 'ttl-');
      assert.equal(partial.json.hit, 'partial');
      assert.equal(partial.json.matchedKey, 'ttl-hot');
    } finally {
      await work.cleanup();
      await srv.close();
    }
  });
});

describe('hoard cache scopes and server tokens', () => {
  it('a token limited to cache/hoard/<scope>/ saves and restores there only; a read token cannot save', async () => {
    const work = await tempDir('hoard-cache-auth-');
    const tokens = await writeTokensFile(work.dir, [
      { name: 'team-a', token: 'tok-team-a', scopes: ['read', 'write'], refs: ['cache/hoard/team-a/'] },
      { name: 'reader', token: 'tok-reader', scopes: ['read'] },
    ]);
    const srv = await startTestServer({ tokens });
    try {
      await writeFiles(work.dir, { 'deps/a.txt': 'a' });
      const as = (token: string | undefined, ...args: string[]) =>
        run(work.dir, ['cache', ...args, '--remote', srv.url, '--json'], { HOARD_TOKEN: token ?? '' });
      const ok = await as('tok-team-a', 'save', 'k', 'deps', '--scope', 'team-a');
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.json.saved, true);
      // Another scope: refused by the server, nothing created.
      const other = await as('tok-team-a', 'save', 'k', 'deps', '--scope', 'team-b');
      assert.equal(other.code, 1);
      assert.equal((other.json.error as { code: string }).code, 'HOARD_EFORBIDDEN');
      const ro = await as('tok-reader', 'save', 'k2', 'deps', '--scope', 'team-a');
      assert.equal(ro.code, 1);
      assert.equal((ro.json.error as { code: string }).code, 'HOARD_EFORBIDDEN');
      const none = await as(undefined, 'restore', 'k', 'deps', '--scope', 'team-a');
      assert.equal(none.code, 1);
      assert.equal((none.json.error as { code: string }).code, 'HOARD_EUNAUTHORIZED');
      // A read token restores (and lists) what team-a saved; team-b's scope is empty.
      const r = await as('tok-reader', 'restore', 'k', 'deps', '--scope', 'team-a');
      assert.equal(r.json.hit, 'exact');
      const miss = await as('tok-reader', 'restore', 'k', 'deps', '--scope', 'team-b');
      assert.equal(miss.json.hit, 'miss');
    } finally {
      await srv.close();
      await work.cleanup();
    }
  });
});
