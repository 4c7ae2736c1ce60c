// The keyed cache core of the build-tool front-ends: entries are cache refs
// → entry records → content blobs shared by digest; create-if-absent and
// last-writer-wins; nothing stored on a bad body; an entry whose content is
// gone is a miss; gc and fsck follow records to their content.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { apiFeature } from '../../src/server/api-feature.ts';
import { CacheEntries } from '../../src/server/cache-entries.ts';
import { defineFeature, withSettings } from '../../src/server/feature.ts';
import { liveSet } from '../../src/server/gc.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { checkReachability } from '../../src/store/reachability.ts';
import { readAll } from '../support/streams.ts';
import { startTestServer, type TestServer } from './helpers.ts';

describe('cache entries', () => {
  let srv: TestServer;
  let entries!: CacheEntries;
  const probe = defineFeature({
    name: 'probe',
    create: (ctx) => {
      entries = new CacheEntries(ctx, 'probe');
      return {};
    },
  });
  before(async () => {
    srv = await startTestServer(
      { maxBlobSize: '1MiB' },
      { features: [withSettings(apiFeature), withSettings(probe)] },
    );
  });
  after(async () => {
    await srv?.close();
  });

  it('create-if-absent: the first entry stands, its metadata comes back, content is shared by digest', async () => {
    const a = randomBytes(3000);
    const name = entries.refName('team', 'k1');
    assert.equal(name, 'cache/probe/team/k1');
    const put = await entries.put(name, Readable.from([a]), { mode: 'create', meta: { tag: 'sig-1' } });
    assert.equal(put.created, true);
    const again = await entries.put(name, Readable.from([randomBytes(10)]), { mode: 'create' });
    assert.equal(again.created, false);
    const got = await entries.get(name);
    assert.ok(got);
    assert.equal(got.digest, sha256(a));
    assert.deepEqual(got.meta, { tag: 'sig-1' });
    assert.deepEqual(await readAll(await entries.read(got)), a);
    // The same bytes under another key: one content blob.
    const other = await entries.put(entries.refName('team', 'k2'), Readable.from([a]), { mode: 'create' });
    assert.equal(other.entry.digest, got.digest);
  });

  it('overwrite: the last writer wins', async () => {
    const name = entries.refName('ow');
    await entries.put(name, Readable.from([Buffer.from('one')]), { mode: 'overwrite' });
    await entries.put(name, Readable.from([Buffer.from('two')]), { mode: 'overwrite' });
    const got = await entries.get(name);
    assert.ok(got);
    assert.deepEqual(await readAll(await entries.read(got)), Buffer.from('two'));
  });

  it('stores nothing for a wrong digest, a short body or one over the limit', async () => {
    const bad = entries.refName('bad');
    await assert.rejects(
      entries.put(bad, Readable.from([Buffer.from('x')]), {
        mode: 'create',
        digest: sha256(Buffer.from('y')),
      }),
      (e) => isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
    );
    await assert.rejects(
      entries.put(bad, Readable.from([Buffer.from('abc')]), { mode: 'create', size: 10 }),
      (e) => isHoardError(e, 'HOARD_ETRUNCATED'),
    );
    await assert.rejects(
      entries.put(bad, Readable.from([randomBytes(2 * 1024 * 1024)]), { mode: 'create' }),
      (e) => isHoardError(e, 'HOARD_ETOO_LARGE'),
    );
    assert.equal(await srv.server.ctx.refs.get(bad), undefined);
    assert.equal(await entries.get(bad), undefined);
  });

  it('an entry whose content blob is gone is a miss; fsck names it; gc keeps content of live entries', async () => {
    const keep = randomBytes(500);
    const lose = randomBytes(600);
    await entries.put(entries.refName('keep'), Readable.from([keep]), { mode: 'create' });
    await entries.put(entries.refName('lose'), Readable.from([lose]), { mode: 'create' });
    const disk = await FsBlobStore.open(srv.dataDir);
    const live = await liveSet(disk, srv.server.ctx.refs);
    assert.ok(live.has(sha256(keep)), 'content of an entry is live');
    await srv.server.ctx.blobs.delete(sha256(lose));
    assert.equal(await entries.get(entries.refName('lose')), undefined);
    assert.ok(await entries.get(entries.refName('keep')));
    const report = await checkReachability(srv.server.ctx.blobs, srv.server.ctx.refs);
    const missing = report.missing.find((m) => m.digest === sha256(lose));
    assert.ok(missing, 'fsck reports the lost content');
    assert.equal(missing.neededBy[0].ref, 'cache/probe/lose');
  });

  it('key parts that could climb or nest are refused', () => {
    for (const part of ['..', '.', 'a/b', '', 'x y', 'é'])
      assert.throws(
        () => entries.refName(part),
        (e) => isHoardError(e, 'HOARD_EBAD_REQUEST'),
        part,
      );
  });
});
