// MirrorManager in-process: which fetch a request may join, resolveRef, and
// the defaultBranchMoved event the snapshot service relies on.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { MirrorManager } from '../../src/git/mirror-manager.ts';
import { parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { commitUpstream, gitSync, head, makeUpstream, tempDir } from './helpers/harness.ts';
import { type HttpUpstream, startHttpUpstream } from './helpers/http-upstream.ts';

describe('MirrorManager', () => {
  const tmp = tempDir();
  let http: HttpUpstream;
  let upstream: string;
  let mirrors: MirrorManager;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 2);
    http = await startHttpUpstream(join(tmp.path, 'up'), 0);
    mirrors = new MirrorManager({
      dataDir: join(tmp.path, 'data'),
      upstreams: new Upstreams([parseUpstreamSpec(`h=${http.url}`)]),
      maxStalenessMs: 0,
      registry: new Registry(),
    });
    await mirrors.start();
    await mirrors.open('h/app.git', { refs: false }); // the clone
    await mirrors.maintain('h/app.git');
  });
  after(async () => {
    await mirrors.close();
    await http.close();
    tmp.cleanup();
  });

  test('a request joins a fetch started after it arrived, never one started before', async () => {
    http.delayMs = 400;
    const c0 = http.infoRefs.get('/app.git') ?? 0;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const t0 = Date.now();
    const a = mirrors.open('h/app.git'); // starts fetch 1
    await sleep(100);
    const b = mirrors.open('h/app.git'); // fetch 1 started before b: waits for it, then starts fetch 2
    await sleep(50);
    const c = mirrors.open('h/app.git'); // fetch 1 is no good either; fetch 2 (started later) is shared
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    assert.deepEqual([ra.staleSeconds, rb.staleSeconds, rc.staleSeconds], [null, null, null]);
    assert.equal((http.infoRefs.get('/app.git') ?? 0) - c0, 2, 'two fetches for three requests');
    assert.ok(Date.now() - t0 >= 800, 'b and c waited for a second fetch');
    http.delayMs = 0;
  });

  test('resolveRef after the freshness check; defaultBranchMoved when a fetch moves HEAD', async () => {
    const moved: { ref: string; from: string | null; to: string }[] = [];
    const onMoved = (e: { ref: string; from: string | null; to: string }) => moved.push(e);
    mirrors.on('defaultBranchMoved', onMoved);
    try {
      const before = head(upstream, 'main');
      const c = commitUpstream(upstream, 'moves main');
      const r = await mirrors.resolveRef('h/app.git');
      assert.equal(r.ref, 'refs/heads/main');
      assert.equal(r.commit, c);
      assert.deepEqual(moved, [
        { key: 'h/app', path: 'h/app.git', dir: r.dir, ref: 'refs/heads/main', from: before, to: c },
      ]);
      commitUpstream(upstream, 'tag target', 'other');
      assert.equal((await mirrors.resolveRef('h/app.git', 'other')).commit, head(upstream, 'other'));
      assert.equal(moved.length, 1, 'a fetch that does not move HEAD emits nothing');
      await assert.rejects(mirrors.resolveRef('h/app.git', 'nope'), { code: 'HOARD_EREF_NOT_FOUND' });
      await assert.rejects(mirrors.resolveRef('h/app.git', '-x'), { code: 'HOARD_EBAD_REQUEST' });
    } finally {
      mirrors.off('defaultBranchMoved', onMoved);
    }
  });

  test('a fetch follows a change of the upstream default branch (HEAD)', async () => {
    const m2 = new MirrorManager({
      dataDir: join(tmp.path, 'data-head'),
      upstreams: new Upstreams([parseUpstreamSpec(`h=${http.url}`)]),
      maxStalenessMs: 0,
      headCheckIntervalMs: 0,
      registry: new Registry(),
    });
    await m2.start();
    try {
      assert.equal((await m2.resolveRef('h/app.git')).ref, 'refs/heads/main');
      const c = commitUpstream(upstream, 'on trunk', 'trunk');
      gitSync(['symbolic-ref', 'HEAD', 'refs/heads/trunk'], upstream);
      const moved = new Promise<{ ref: string; to: string }>((r) => m2.once('defaultBranchMoved', r));
      await m2.open('h/app.git'); // fetches trunk; the HEAD check runs right after
      const e = await moved;
      assert.equal(e.ref, 'refs/heads/trunk');
      assert.equal(e.to, c);
      const r = await m2.resolveRef('h/app.git');
      assert.deepEqual([r.ref, r.commit], ['refs/heads/trunk', c]);
    } finally {
      gitSync(['symbolic-ref', 'HEAD', 'refs/heads/main'], upstream);
      await m2.close();
    }
  });

  test('ensureObjects fetches unknown ids and reports those still missing', async () => {
    const c = commitUpstream(upstream, 'new on a branch', 'feature');
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c]), []);
    const bogus = 'f'.repeat(40);
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [bogus]), [bogus]);
  });
});
