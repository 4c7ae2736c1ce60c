// Anchor packs built in the background (SnapshotService + a real MirrorManager):
// when a mirror is created, and when a fetch moves its default branch across
// an anchor step, the anchor pack is ready before any snapshot is asked for;
// the first snapshot request then builds no anchor, and its bytes are the
// same as a server's that built the anchor on the request.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { MirrorManager } from '../../src/git/mirror-manager.ts';
import { SnapshotService } from '../../src/git/snapshot-service.ts';
import { parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';
import { MemoryRefStore } from '../../src/store/memory-ref-store.ts';
import { waitUntil } from '../support/wait.ts';
import { commitUpstream, makeUpstream, tempDir } from './helpers/harness.ts';

describe('snapshot anchor packs prebuilt in the background', () => {
  const tmp = tempDir();
  let upstream: string;
  const started: { mirrors: MirrorManager; service: SnapshotService }[] = [];

  /** A manager and snapshot service of their own data directory (anchor step 4). */
  const start = async (name: string, prebuildAnchors: boolean) => {
    const dataDir = join(tmp.path, name);
    const mirrors = new MirrorManager({
      dataDir,
      upstreams: new Upstreams([parseUpstreamSpec(`h=file://${join(tmp.path, 'up')}`)]),
      maxStalenessMs: 0,
      registry: new Registry(),
    });
    await mirrors.start();
    const service = new SnapshotService({
      mirrors,
      blobs: new MemoryBlobStore(),
      refs: new MemoryRefStore(),
      tmpDir: join(dataDir, 'snapshot-tmp'),
      anchorStep: 4,
      prebuildAnchors,
    });
    started.push({ mirrors, service });
    return { mirrors, service };
  };
  const archiveHash = async (service: SnapshotService, digest: string) => {
    const h = createHash('sha256');
    for await (const chunk of await service.blobs.read(digest as `sha256:${string}`)) h.update(chunk);
    return h.digest('hex');
  };

  before(() => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 10); // 10 first-parent commits: anchor at 8
  });
  after(async () => {
    for (const s of started) {
      await s.service.close();
      await s.mirrors.close();
    }
    tmp.cleanup();
  });

  test('built when the mirror is created and when a fetch crosses a step; the first request reuses it', async () => {
    const { mirrors, service } = await start('a', true);
    await mirrors.open('h/app.git', { refs: false }); // creates the mirror
    await waitUntil(() => service.anchors.built === 1, 'the anchor pack of the new mirror', 30_000);
    await service.idle();
    const first = await service.forRef('h/app.git', undefined, 'http://hoard');
    assert.equal(first.generated, true);
    assert.equal(service.anchors.built, 1, 'the first snapshot request built no anchor of its own');

    // A fetch that moves HEAD within the step: the same anchor, nothing built.
    commitUpstream(upstream, 'eleven');
    await mirrors.open('h/app.git'); // fetches (bound 0)
    await service.idle();
    assert.equal(service.anchors.built, 1);
    // Across the next multiple of the step (13 commits: anchor at 12): built after the fetch.
    commitUpstream(upstream, 'twelve');
    commitUpstream(upstream, 'thirteen');
    await mirrors.open('h/app.git');
    await waitUntil(() => service.anchors.built === 2, 'the next anchor after the fetch', 30_000);
    await service.idle();
    const next = await service.forRef('h/app.git', undefined, 'http://hoard');
    assert.equal(service.anchors.built, 2, 'served from the prebuilt anchor');

    // The same bytes as a server that builds its anchor on the request.
    const b = await start('b', false);
    await b.mirrors.open('h/app.git', { refs: false });
    await b.service.idle();
    assert.equal(b.service.anchors.built, 0, 'nothing prebuilt when turned off');
    const other = await b.service.forRef('h/app.git', undefined, 'http://hoard');
    assert.equal(b.service.anchors.built, 1, 'built on the request');
    assert.equal(other.commit, next.commit);
    assert.equal(other.digest, next.digest);
    assert.equal(await archiveHash(b.service, other.digest), await archiveHash(service, next.digest));
  });
});
