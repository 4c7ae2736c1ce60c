// The `hoard cache` suite against a live hoard server (http://), and entry
// expiry there: cache entries are cache refs, so the server's
// --cache-ref-ttl (time since last use) removes idle ones. The expiry's
// clock is injected; sweeps are run by the test, never waited for.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTestServer } from '../server/helpers.ts';
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
