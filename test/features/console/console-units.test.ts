// The console's parts on their own: the sampler on a manual clock, its ring,
// the most-read tally, the largest-blobs selection, HTML escaping, folder
// listings and the session table.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Digest } from '../../../src/core/digest.ts';
import { contentDisposition, safeNext } from '../../../src/features/console/console-feature.ts';
import { featureOf } from '../../../src/features/console/console-overview.ts';
import { type Reading, Ring, Sampler } from '../../../src/features/console/console-sampler.ts';
import { ConsoleSessions, parseCookies } from '../../../src/features/console/console-sessions.ts';
import { escapeHtml, html } from '../../../src/features/console/html.ts';
import { folder, normalizeDir } from '../../../src/features/console/tree-folder.ts';
import { ReadTally } from '../../../src/server/read-tally.ts';
import { largestOf } from '../../../src/store/tier-usage.ts';
import { ManualClock } from '../../support/manual-clock.ts';
import { waitUntil } from '../../support/wait.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;

describe('console sampler', () => {
  it('turns cumulative counters into rates per interval, on the injected clock', async () => {
    const clock = new ManualClock();
    let requests = 0;
    let hits = 0;
    let misses = 0;
    let reads = 0;
    const sampler = new Sampler({
      clock,
      intervalMs: 10_000,
      capacity: 3,
      wall: () => clock.now(),
      read: async (): Promise<Reading> => {
        reads++;
        return {
          features: new Map([['blobs', { requests, hits, misses }]]),
          memoryBytes: requests * 10,
          diskBytes: null,
        };
      },
    });
    sampler.start();
    await waitUntil(() => reads === 1, 'the baseline reading');
    assert.deepEqual(sampler.points(), []);
    requests = 50;
    hits = 30;
    misses = 10;
    clock.advance(10_000);
    await waitUntil(() => sampler.points().length === 1, 'the first point');
    const [p] = sampler.points();
    assert.equal(p.features.blobs.requestsPerSecond, 5);
    assert.equal(p.features.blobs.hitRate, 0.75);
    assert.equal(p.memoryBytes, 500);
    // An idle interval: no reads, so no hit rate.
    clock.advance(10_000);
    await waitUntil(() => sampler.points().length === 2, 'the second point');
    assert.equal(sampler.points()[1].features.blobs.requestsPerSecond, 0);
    assert.equal(sampler.points()[1].features.blobs.hitRate, null);
    // The ring keeps the last `capacity` points, oldest first.
    for (let i = 0; i < 3; i++) {
      requests += 10;
      clock.advance(10_000);
      await waitUntil(() => reads === 4 + i, 'the next reading');
    }
    await waitUntil(() => sampler.points().at(-1)?.at === clock.now(), 'the last point');
    assert.deepEqual(
      sampler.points().map((x) => x.features.blobs.requestsPerSecond),
      [1, 1, 1],
    );
    await sampler.close();
  });

  it('a failing read is reported and skipped', async () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    const s = new Sampler({
      clock,
      intervalMs: 1000,
      capacity: 10,
      read: async () => {
        throw new Error('boom');
      },
      onError: (e) => errors.push(e),
    });
    await s.sample();
    assert.equal(errors.length, 1);
    assert.deepEqual(s.points(), []);
  });

  it('ring wraps around', () => {
    const r = new Ring<number>(3);
    for (let i = 1; i <= 5; i++) r.push(i);
    assert.deepEqual(r.toArray(), [3, 4, 5]);
  });
});

describe('most-read tally and largest blobs', () => {
  it('ranks by reads, stays bounded, and lets a newly hot blob in after a decay', () => {
    const t = new ReadTally(4, 1);
    for (let i = 0; i < 10; i++) t.record(d(1));
    for (let i = 0; i < 5; i++) t.record(d(2));
    t.record(d(3));
    t.record(d(4));
    assert.deepEqual(
      t.top(2).map((e) => [e.digest, e.reads]),
      [
        [d(1), 10],
        [d(2), 5],
      ],
    );
    // Full: new digests are refused until `capacity` refusals halve everyone.
    for (let i = 0; i < 4; i++) t.record(d(100 + i));
    const top = t.top(10);
    assert.ok(top.length <= 4);
    assert.deepEqual(top.map((e) => e.reads).slice(0, 2), [5, 2]);
    for (let i = 0; i < 20; i++) t.record(d(9));
    assert.equal(t.top(1)[0].digest, d(9));
  });

  it('counts one read in sampleEvery, with that weight', () => {
    const t = new ReadTally(16, 8);
    for (let i = 0; i < 7; i++) t.record(d(1));
    assert.deepEqual(t.top(5), [], 'nothing sampled yet');
    t.record(d(1));
    for (let i = 0; i < 160; i++) t.record(d(2));
    assert.deepEqual(
      t.top(5).map((e) => [e.digest, e.reads]),
      [
        [d(2), 160],
        [d(1), 8],
      ],
    );
  });

  it('largestOf keeps the n largest, largest first, ties by digest', () => {
    const items = [5, 1, 9, 3, 9, 7].map((size, i) => ({ digest: d(i), size }));
    assert.deepEqual(
      largestOf(items, 3).map((e) => [e.size, e.digest]),
      [
        [9, d(2)],
        [9, d(4)],
        [7, d(5)],
      ],
    );
    assert.deepEqual(largestOf(items, 0), []);
  });
});

describe('console rendering helpers', () => {
  it('escapes every interpolated value, in text and attributes', () => {
    const evil = `"><img src=x onerror='alert(1)'>&`;
    assert.equal(escapeHtml(evil), '&quot;&gt;&lt;img src=x onerror=&#39;alert(1)&#39;&gt;&amp;');
    const out = html`<a title="${evil}">${evil}${[evil, html`<b>${evil}</b>`]}</a>`.value;
    assert.ok(!out.includes('<img'));
    assert.equal(out.split('<b>').length, 2, 'nested Html stays markup');
  });

  it('folder listings: direct files, folders with totals, symlinks', () => {
    const tree = {
      entries: [
        { path: 'README.md', kind: 'file' as const, size: 6, digest: d(1) },
        { path: 'empty', kind: 'dir' as const },
        { path: 'src/a.ts', kind: 'file' as const, size: 10, digest: d(2) },
        { path: 'src/deep/b.ts', kind: 'exec' as const, size: 5, digest: d(3) },
        { path: 'src/link', kind: 'symlink' as const, target: '../README.md' },
      ],
    };
    const top = folder(tree, '').entries;
    assert.deepEqual(
      top.map((e) => [e.name, e.kind, e.size, e.files]),
      [
        ['empty', 'dir', 0, 0],
        ['src', 'dir', 15, 3],
        ['README.md', 'file', 6, undefined],
      ],
    );
    assert.deepEqual(
      folder(tree, 'src').entries.map((e) => [e.name, e.kind]),
      [
        ['deep', 'dir'],
        ['a.ts', 'file'],
        ['link', 'symlink'],
      ],
    );
    assert.equal(normalizeDir('/src/'), 'src');
    for (const bad of ['a/../b', 'a//b', './a'])
      assert.throws(() => normalizeDir(bad), /invalid folder path/);
  });

  it('routes map to features; the console and health routes are not traffic', () => {
    assert.equal(featureOf('/v1/blobs/sha256/:hex'), 'blobs');
    assert.equal(featureOf('/v1/refs/*'), 'refs');
    assert.equal(featureOf('/git/*'), 'git');
    assert.equal(featureOf('/turbo/v8/artifacts/:hash'), 'turbo');
    for (const r of ['/v1/status', '/ui/', '/healthz', '/metrics', 'unmatched', '/'])
      assert.equal(featureOf(r), undefined, r);
  });

  it('next= stays on the console; download names are safe header values', () => {
    assert.equal(safeNext('/ui/refs?prefix=a'), '/ui/refs?prefix=a');
    for (const bad of ['https://x', '//x/ui/', '/ui/\\x', '/ui/\nSet-Cookie:x', '/v1/status', ''])
      assert.equal(safeNext(bad), '/ui/', bad);
    assert.equal(
      contentDisposition('dir/ré"sumé;.txt'),
      `attachment; filename="r__sum__.txt"; filename*=UTF-8''r%C3%A9%22sum%C3%A9%3B.txt`,
    );
  });

  it('sessions: bounded, expiring, looked up by id only', () => {
    let now = 0;
    const s = new ConsoleSessions({ ttlMs: 1000, max: 2, now: () => now });
    const a = s.create('a');
    const b = s.create('b');
    assert.equal(s.lookup(a.id)?.principal, 'a');
    const c = s.create('c'); // evicts the oldest
    assert.equal(s.lookup(a.id), undefined);
    assert.equal(s.lookup(b.id)?.principal, 'b');
    assert.equal(s.lookup('x'), undefined);
    now = 1000;
    assert.equal(s.lookup(c.id), undefined, 'expired');
    assert.deepEqual(
      [...parseCookies('a=1; b=2; a=3; junk; =x')],
      [
        ['a', '1'],
        ['b', '2'],
      ],
    );
  });
});
