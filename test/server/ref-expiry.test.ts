// Cache refs (names under the cache prefixes) expire after a time unused;
// other refs never do; a ref used (GET or PUT) keeps living.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { RefExpiry } from '../../src/server/ref-expiry.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';
import { startTestServer } from './helpers.ts';

describe('cache ref expiry', () => {
  it('expires only unused refs under the cache prefixes (clock-driven)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-expiry-'));
    try {
      const refs = await FsRefStore.open(dir);
      let now = 1_000_000;
      const exp = new RefExpiry(refs, {
        prefixes: ['cache/', 'tmp/'],
        ttlMs: 10_000,
        dataDir: dir,
        now: () => now,
      });
      await refs.set('cache/used', sha256('a'), null);
      await refs.set('cache/idle', sha256('b'), null);
      await refs.set('team/main', sha256('c'), null);
      assert.deepEqual(await exp.sweep(), []); // first sight starts the clocks
      now += 6_000;
      exp.touch('cache/used');
      now += 6_000;
      assert.deepEqual(await exp.sweep(), ['cache/idle']);
      assert.equal(await refs.get('cache/idle'), undefined);
      assert.ok(await refs.get('cache/used'));
      assert.ok(await refs.get('team/main'));
      // Usage times are saved and survive a restart.
      now += 20_000;
      await exp.save();
      const again = new RefExpiry(refs, {
        prefixes: ['cache/'],
        ttlMs: 10_000,
        dataDir: dir,
        now: () => now,
      });
      await again.open();
      const before = await refs.get('cache/used');
      assert.ok(before);
      assert.deepEqual(await again.sweep(), ['cache/used']); // usage survived the restart: it is stale
      await again.close();
      assert.ok(await refs.get('team/main'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('through a server: a cache ref kept in use lives, an idle one goes', async () => {
    const srv = await startTestServer({ cacheRefTtl: '1500ms' });
    try {
      const data = randomBytes(10);
      await fetch(`${srv.url}/v1/blobs/sha256/${hexOf(sha256(data))}`, {
        method: 'PUT',
        body: new Uint8Array(data),
      });
      for (const name of ['cache/hot', 'cache/cold', 'team/keep'])
        assert.equal(
          (
            await fetch(`${srv.url}/v1/refs/${name}`, {
              method: 'PUT',
              headers: { 'content-type': 'application/json', 'if-none-match': '*' },
              body: JSON.stringify({ target: sha256(data) }),
            })
          ).status,
          201,
        );
      for (let i = 0; i < 16; i++) {
        assert.equal((await fetch(`${srv.url}/v1/refs/cache/hot`)).status, 200);
        await sleep(250);
      }
      assert.equal((await fetch(`${srv.url}/v1/refs/cache/cold`)).status, 404);
      assert.equal((await fetch(`${srv.url}/v1/refs/team/keep`)).status, 200);
    } finally {
      await srv.close();
    }
  });
});
