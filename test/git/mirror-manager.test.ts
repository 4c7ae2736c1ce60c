// MirrorManager in-process: which fetch a request may join and the freshness
// bound (on an injected clock), resolveRef, and the defaultBranchMoved
// subscription the snapshot service relies on.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry, register } from 'prom-client';
import { gitChildren } from '../../src/git/git-process.ts';
import { MirrorManager, type MirrorManagerOptions } from '../../src/git/mirror-manager.ts';
import { parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { waitUntil } from '../support/wait.ts';
import { commitUpstream, gitSync, head, makeUpstream, tempDir } from './helpers/harness.ts';
import { type HttpUpstream, startHttpUpstream } from './helpers/http-upstream.ts';

describe('MirrorManager', () => {
  const tmp = tempDir();
  let http: HttpUpstream;
  let upstream: string;
  let mirrors: MirrorManager;
  /** A started manager of its own data directory, mirroring the HTTP upstream. */
  const startManager = async (data: string, opts: Partial<MirrorManagerOptions> = {}) => {
    const m = new MirrorManager({
      dataDir: join(tmp.path, data),
      upstreams: new Upstreams([parseUpstreamSpec(`h=${http.url}`)]),
      maxStalenessMs: 0,
      registry: new Registry(),
      ...opts,
    });
    await m.start();
    return m;
  };
  /** Upstream fetches (and clones) of app.git so far. */
  const fetches = () => http.infoRefs.get('/app.git') ?? 0;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 2);
    http = await startHttpUpstream(join(tmp.path, 'up'), 0);
    mirrors = await startManager('data');
    await mirrors.open('h/app.git', { refs: false }); // the clone
    await mirrors.maintain('h/app.git');
  });
  after(async () => {
    await mirrors.close();
    await http.close();
    tmp.cleanup();
  });

  test('a request joins a fetch started after it arrived, never one started before', async () => {
    // Arrival order is set by the injected clock, not by sleeps: b arrives 100 ms and c
    // 150 ms (clock time) after fetch 1 started, whenever the scheduler runs them.
    const clock = new ManualClock();
    const m = await startManager('data-join', { clock });
    try {
      await m.open('h/app.git', { refs: false }); // the clone
      clock.advance(1000); // the clone is older than what any request below needs
      http.delayMs = 400;
      const c0 = fetches();
      const t0 = Date.now();
      const a = m.open('h/app.git'); // starts fetch 1
      await waitUntil(() => fetches() > c0, 'fetch 1 at the upstream');
      clock.advance(100);
      const b = m.open('h/app.git'); // fetch 1 started before b: waits for it, then starts fetch 2
      clock.advance(50);
      const c = m.open('h/app.git'); // fetch 1 is no good either; fetch 2 (started later) is shared
      const [ra, rb, rc] = await Promise.all([a, b, c]);
      assert.deepEqual([ra.staleSeconds, rb.staleSeconds, rc.staleSeconds], [null, null, null]);
      assert.equal(fetches() - c0, 2, 'two fetches for three requests');
      // Real time: each fetch is held 400 ms by the upstream, and fetch 2 follows fetch 1.
      assert.ok(Date.now() - t0 >= 800, 'b and c waited for a second fetch');
    } finally {
      http.delayMs = 0;
      await m.close();
    }
  });

  test('a push forwarded upstream while a fetch runs: that fetch leaves the mirror stale, the next request fetches', async () => {
    const clock = new ManualClock();
    const m = await startManager('data-push', { clock, maxStalenessMs: 10_000 });
    let release = () => {};
    try {
      await m.open('h/app.git'); // the clone, fresh as of now
      clock.advance(20_000); // past the bound: the next request fetches
      const c0 = fetches();
      release = http.hold();
      const a = m.open('h/app.git'); // fetch 1, held at the upstream
      await waitUntil(() => fetches() > c0, 'fetch 1 at the upstream');
      m.invalidate('h/app.git'); // a push went through while fetch 1 runs
      release();
      await a;
      const c1 = fetches();
      // Fetch 1 started a moment ago (clock time): fresh by the bound, but it may have read the
      // refs before the push.
      assert.equal((await m.open('h/app.git')).staleSeconds, null);
      assert.equal(fetches(), c1 + 1, 'fetched again after the push');
      assert.equal((await m.open('h/app.git')).staleSeconds, null);
      assert.equal(fetches(), c1 + 1, 'and fresh from then on');
    } finally {
      release();
      await m.close();
    }
  });

  test('a push forwarded upstream while the mirror is created: the cold fill stops answering ref advertisements, and the new mirror is fetched before use', async () => {
    const clock = new ManualClock();
    const m = await startManager('data-push-clone', { clock, maxStalenessMs: 10_000 });
    let release = () => {};
    try {
      const c0 = fetches();
      release = http.hold();
      const a = m.open('h/app.git'); // creates the mirror: its cold fill is held at the upstream
      await waitUntil(() => fetches() > c0, 'the cold fill at the upstream');
      const fill = await m.coldFill('h/app.git');
      assert.ok(fill, 'an HTTP upstream is mirrored by a cold fill');
      assert.equal(m.fillFreshFor(fill, clock.now()), true);
      m.invalidate('h/app.git');
      assert.equal(m.fillFreshFor(fill, clock.now()), false, 'its refs may predate the push');
      release();
      assert.equal((await a).staleSeconds, null);
      assert.equal(fetches(), c0 + 2, 'the creation, then one fetch for the request');
    } finally {
      release(); // a failed assertion must not leave the upstream holding the next tests' requests
      await m.close();
    }
  });

  test('the bound in clock time: fresh for maxStalenessMs after a fetch started, then fetched again', async () => {
    const clock = new ManualClock();
    const m = await startManager('data-bound', { clock, maxStalenessMs: 10_000 });
    try {
      await m.open('h/app.git'); // the clone, fresh as of now
      const c0 = fetches();
      clock.advance(10_000);
      assert.equal((await m.open('h/app.git')).staleSeconds, null);
      assert.equal(fetches(), c0, 'still within the bound: no fetch');
      clock.advance(1);
      assert.equal((await m.open('h/app.git')).staleSeconds, null);
      assert.equal(fetches(), c0 + 1, 'past the bound: one fetch');
      clock.advance(5_000);
      await m.open('h/app.git');
      assert.equal(fetches(), c0 + 1, 'the new fetch counts from its own start');
    } finally {
      await m.close();
    }
  });

  test('resolveRef after the freshness check; defaultBranchMoved when a fetch moves HEAD', async () => {
    const moved: { ref: string; from: string | null; to: string }[] = [];
    const unsubscribe = mirrors.onDefaultBranchMoved((e) => moved.push(e));
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
      unsubscribe();
    }
  });

  test('resolveRef reads the ref files: current after every kind of mirror update, no git process for a ref that did not move', async () => {
    const { dir } = await mirrors.open('h/app.git', { refs: false });
    const gitSays = (rev: string) => gitSync(['rev-parse', '--verify', `${rev}^{commit}`], dir).trim();
    // A fetch writes the moved branch as a loose ref: the next answer names it.
    const c1 = commitUpstream(upstream, 'loose ref');
    assert.equal((await mirrors.resolveRef('h/app.git')).commit, c1);
    // Maintenance packs the refs (the loose file goes): the answer comes from packed-refs.
    await mirrors.maintain('h/app.git');
    assert.equal((await mirrors.resolveRef('h/app.git')).commit, c1);
    assert.equal(gitSays('refs/heads/main'), c1);
    // A loose ref newer than its packed-refs line wins, as in git.
    const c2 = commitUpstream(upstream, 'loose over packed');
    assert.equal((await mirrors.resolveRef('h/app.git')).commit, c2);
    assert.equal((await mirrors.resolveRef('h/app.git', 'main')).commit, c2);
    // An annotated tag peels to its commit; a lightweight one is the commit.
    gitSync(['tag', '-a', '-m', 'release', 'v9', c1], upstream);
    gitSync(['tag', 'light9', c2], upstream);
    const tag = await mirrors.resolveRef('h/app.git', 'v9');
    assert.deepEqual([tag.ref, tag.commit], ['refs/tags/v9', c1]);
    assert.equal((await mirrors.resolveRef('h/app.git', 'refs/tags/light9')).commit, c2);
    await mirrors.maintain('h/app.git'); // both tags in packed-refs now, v9 with its peeled line
    assert.equal((await mirrors.resolveRef('h/app.git', 'v9')).commit, c1);
    assert.equal(gitSays('refs/tags/v9'), c1);
    // A branch that went away upstream (pruned by the fetch) is not found any more.
    commitUpstream(upstream, 'short-lived', 'gone');
    assert.equal((await mirrors.resolveRef('h/app.git', 'gone')).commit, head(upstream, 'gone'));
    gitSync(['branch', '-D', 'gone'], upstream);
    await assert.rejects(mirrors.resolveRef('h/app.git', 'gone'), { code: 'HOARD_EREF_NOT_FOUND' });

    // Without a fetch (a bound not yet reached), resolving refs that did not move starts no git.
    const m = await startManager('data-refs', { maxStalenessMs: 3_600_000 });
    try {
      await m.resolveRef('h/app.git'); // the clone; the first answer peels the id once
      await m.resolveRef('h/app.git', 'v9');
      // The clone's background maintenance runs under the mirror's lock: this
      // waits for it, so its git processes are not counted below.
      await m.maintain('h/app.git');
      const n0 = gitChildren().spawned;
      for (const ref of [undefined, 'main', 'v9', 'refs/heads/main']) await m.resolveRef('h/app.git', ref);
      assert.equal(gitChildren().spawned, n0, 'answered from the ref files');
    } finally {
      await m.close();
    }
  });

  test('a fetch follows a change of the upstream default branch (HEAD)', async () => {
    const m2 = await startManager('data-head', { headCheckIntervalMs: 0 });
    try {
      assert.equal((await m2.resolveRef('h/app.git')).ref, 'refs/heads/main');
      const c = commitUpstream(upstream, 'on trunk', 'trunk');
      gitSync(['symbolic-ref', 'HEAD', 'refs/heads/trunk'], upstream);
      const moved = new Promise<{ ref: string; to: string }>((r) => {
        const unsubscribe = m2.onDefaultBranchMoved((e) => {
          unsubscribe();
          r(e);
        });
      });
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

describe('git metrics', () => {
  test("registered on the registry given (shared by managers on it), never on prom-client's global one", () => {
    const tmp = tempDir();
    try {
      const reg = new Registry();
      const m1 = new MirrorManager({ dataDir: join(tmp.path, 'a'), registry: reg });
      const m2 = new MirrorManager({ dataDir: join(tmp.path, 'b'), registry: reg });
      assert.ok(reg.getSingleMetric('hoard_git_fetches_total'));
      assert.equal(m2.metrics.fetches, m1.metrics.fetches);
      new MirrorManager({ dataDir: join(tmp.path, 'c') });
      assert.equal(register.getSingleMetric('hoard_git_fetches_total'), undefined);
      assert.equal(register.getSingleMetric('hoard_git_requests_total'), undefined);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('MirrorManager: which refs a mirror copies', () => {
  const tmp = tempDir();
  let http: HttpUpstream;
  let upstream: string;
  const manager = (data: string, mirrorAllRefs?: boolean) =>
    new MirrorManager({
      dataDir: join(tmp.path, data),
      upstreams: new Upstreams([parseUpstreamSpec(`h=${http.url}`)]),
      maxStalenessMs: 0,
      registry: new Registry(),
      mirrorAllRefs,
    });
  const refsOf = (dir: string) =>
    gitSync(['for-each-ref', '--format=%(refname)'], dir).split('\n').filter(Boolean).sort();

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 2);
    gitSync(['tag', 'v1', head(upstream)], upstream);
    gitSync(['update-ref', 'refs/pull/7/head', head(upstream)], upstream);
    http = await startHttpUpstream(join(tmp.path, 'up'), 0);
  });
  after(async () => {
    await http.close();
    tmp.cleanup();
  });

  test('branches and tags only by default; refs/pull/* with mirrorAllRefs; an old all-refs mirror loses them', async () => {
    const narrow = manager('narrow');
    await narrow.start();
    const o = await narrow.open('h/app.git', { refs: true });
    assert.deepEqual(refsOf(o.dir), ['refs/heads/main', 'refs/tags/v1']);
    await narrow.close();

    const wide = manager('wide', true);
    await wide.start();
    const w = await wide.open('h/app.git', { refs: true });
    assert.deepEqual(refsOf(w.dir), ['refs/heads/main', 'refs/pull/7/head', 'refs/tags/v1']);
    await wide.close();

    // The same directory opened by a default manager (a restart with the setting off).
    const after = manager('wide');
    await after.start();
    const a = await after.open('h/app.git', { refs: true });
    assert.equal(a.dir, w.dir);
    assert.deepEqual(refsOf(a.dir), ['refs/heads/main', 'refs/tags/v1']);
    await after.close();
  });
});
