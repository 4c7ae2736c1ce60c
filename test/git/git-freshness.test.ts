// The freshness contract of the git proxy against live `hoard serve`
// processes: restarts, restored mirrors, slow and unreachable upstreams,
// concurrent first clones. These run child processes (no injected clock):
// order comes from waiting on conditions, never from sleeps.

import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { waitUntil } from '../support/wait.ts';
import {
  commitUpstream,
  git,
  gitSync,
  head,
  makeUpstream,
  type ServerProcess,
  startServer,
  tempDir,
} from './helpers/harness.ts';
import { startHttpUpstream } from './helpers/http-upstream.ts';

const servers: ServerProcess[] = [];
async function serve(data: string, args: string[]): Promise<ServerProcess> {
  const s = await startServer(data, args);
  servers.push(s);
  return s;
}
after(async () => {
  await Promise.all(servers.map((s) => s.kill()));
});

describe('git freshness', () => {
  test('restart regression: a mirror found on disk is fetched before its refs are served', async () => {
    const tmp = tempDir();
    try {
      const up = makeUpstream(join(tmp.path, 'up'), 'app', 2);
      const data = join(tmp.path, 'data');
      const args = ['--git-upstream', `up=file://${join(tmp.path, 'up')}`]; // default staleness: 10 s
      let s = await serve(data, args);
      await git(['clone', '--quiet', `${s.url}/git/up/app.git`, join(tmp.path, 'c1')]);
      await s.stop();
      const c = commitUpstream(up, 'while the server was down');
      s = await serve(data, args);
      for (const protocol of [2, 0]) {
        const dest = join(tmp.path, `c2-v${protocol}`);
        await git([
          '-c',
          `protocol.version=${protocol}`,
          'clone',
          '--quiet',
          `${s.url}/git/up/app.git`,
          dest,
        ]);
        assert.equal(head(dest), c, `protocol v${protocol}`);
      }
      // One info line summarises the warm-up.
      const summary = () => s.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('git warm-up'));
      await waitUntil(() => summary() !== undefined, 'warm-up summary');
      const line = summary()!;
      assert.equal(line.level, 30);
      assert.equal(line.mirrors, 1);
      await s.stop();
    } finally {
      tmp.cleanup();
    }
  });

  test('restore regression: a mirror copied in from an old copy is not served stale (at start-up and while running)', async () => {
    const tmp = tempDir();
    try {
      const up = makeUpstream(join(tmp.path, 'up'), 'app', 1);
      const data = join(tmp.path, 'data');
      const mirror = join(data, 'git', 'mirrors', 'up', 'app.git');
      const old = join(tmp.path, 'old-mirror');
      const args = ['--git-upstream', `up=file://${join(tmp.path, 'up')}`, '--git-max-staleness', '1h'];
      let s = await serve(data, args);
      await git(['clone', '--quiet', `${s.url}/git/up/app.git`, join(tmp.path, 'c0')]);
      await s.stop();
      cpSync(mirror, old, { recursive: true });
      // The old copy even claims a fetch just now: persisted times must not be trusted.
      const meta = JSON.parse(readFileSync(join(old, 'hoard.json'), 'utf8'));
      writeFileSync(join(old, 'hoard.json'), JSON.stringify({ ...meta, lastFetchAt: Date.now() }));

      // At start-up.
      const c1 = commitUpstream(up, 'after the snapshot');
      rmSync(mirror, { recursive: true });
      cpSync(old, mirror, { recursive: true });
      s = await serve(data, args);
      await git(['clone', '--quiet', `${s.url}/git/up/app.git`, join(tmp.path, 'c1')]);
      assert.equal(head(join(tmp.path, 'c1')), c1, 'restored before start-up');

      // While running: the mirror is fresh (1 h bound), then replaced by the old copy.
      const c2 = commitUpstream(up, 'after the restore');
      rmSync(mirror, { recursive: true });
      cpSync(old, mirror, { recursive: true });
      await git(['clone', '--quiet', `${s.url}/git/up/app.git`, join(tmp.path, 'c2')]);
      assert.equal(head(join(tmp.path, 'c2')), c2, 'restored while running');
      await s.stop();
    } finally {
      tmp.cleanup();
    }
  });

  test('stale lock files left by a killed git are removed at start-up', async () => {
    const tmp = tempDir();
    try {
      const up = makeUpstream(join(tmp.path, 'up'), 'app', 1);
      const data = join(tmp.path, 'data');
      const mirror = join(data, 'git', 'mirrors', 'up', 'app.git');
      const args = ['--git-upstream', `up=file://${join(tmp.path, 'up')}`];
      let s = await serve(data, args);
      await git(['clone', '--quiet', `${s.url}/git/up/app.git`, join(tmp.path, 'c0')]);
      // A clone served from the pack in flight may end before the mirror is indexed and published.
      await waitUntil(() => existsSync(join(mirror, 'HEAD')), 'the mirror published');
      await s.kill();
      gitSync(['pack-refs', '--all'], mirror);
      for (const f of ['packed-refs.lock', 'refs/heads/main.lock', 'config.lock', 'shallow.lock'])
        writeFileSync(join(mirror, f), '');
      const c = commitUpstream(up, 'new');
      s = await serve(data, args);
      await git(['clone', '--quiet', `${s.url}/git/up/app.git`, join(tmp.path, 'c1')]);
      assert.equal(head(join(tmp.path, 'c1')), c);
      assert.equal(existsSync(join(mirror, 'packed-refs.lock')), false);
      assert.equal(existsSync(join(mirror, 'refs/heads/main.lock')), false);
      await s.stop();
    } finally {
      tmp.cleanup();
    }
  });

  test('20 concurrent clones of a repo not yet mirrored: exactly one upstream clone', async () => {
    const tmp = tempDir();
    const upRoot = join(tmp.path, 'up');
    const up = makeUpstream(upRoot, 'app', 5);
    const http = await startHttpUpstream(upRoot, 300);
    try {
      const s = await serve(join(tmp.path, 'data'), ['--git-upstream', `h=${http.url}`]);
      const clones = Array.from({ length: 20 }, (_, i) =>
        git([
          '-c',
          `protocol.version=${i % 2 === 0 ? 2 : 0}`,
          'clone',
          '--quiet',
          `${s.url}/git/h/app.git`,
          join(tmp.path, `c${i}`),
        ]),
      );
      await Promise.all(clones);
      for (let i = 0; i < 20; i++) assert.equal(head(join(tmp.path, `c${i}`)), head(up, 'main'));
      assert.equal(http.infoRefs.get('/app.git'), 1, 'one upstream clone, no fetch');
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(metrics, /hoard_git_clones_total\{result="ok"\} 1\b/);
      await s.stop();
    } finally {
      await http.close();
      tmp.cleanup();
    }
  });

  test('upstream unreachable or hanging: clone succeeds from the mirror, with X-Hoard-Stale and a warning', async () => {
    const tmp = tempDir();
    const upRoot = join(tmp.path, 'up');
    const up = makeUpstream(upRoot, 'app', 2);
    const http = await startHttpUpstream(upRoot, 0);
    try {
      const data = join(tmp.path, 'data');
      let s = await serve(data, ['--git-upstream', `h=${http.url}`]);
      await git(['clone', '--quiet', `${s.url}/git/h/app.git`, join(tmp.path, 'c0')]);
      await s.stop();
      const expected = head(up, 'main');

      // Unreachable: connection refused.
      s = await serve(data, ['--git-upstream', 'h=http://127.0.0.1:9', '--git-max-staleness', '0']);
      const dest = join(tmp.path, 'c1');
      await git(['clone', '--quiet', `${s.url}/git/h/app.git`, dest]);
      assert.equal(head(dest), expected);
      const res = await fetch(`${s.url}/git/h/app.git/info/refs?service=git-upload-pack`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('x-hoard-stale') ?? '', /^\d+$/);
      await res.arrayBuffer();
      // The server's log reaches us through its stdout, after the answer: wait for the line.
      await waitUntil(
        () => s.logs.some((l) => l.level === 40 && String(l.msg).includes('stale')),
        'a stale-serve warning in the log',
      );
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(metrics, /hoard_git_stale_serves_total [1-9]/);
      await s.stop();

      // Hanging: the fetch is abandoned after --git-fetch-timeout, and only then is the
      // mirror served stale. Ordered by the server's own clock (its log line's time), not by
      // when this test learns of the server: the warm-up's fetch starts at start-up.
      http.hang = true;
      const asked0 = http.infoRefs.get('/app.git') ?? 0;
      s = await serve(data, ['--git-upstream', `h=${http.url}`, '--git-fetch-timeout', '1s']);
      const t0 = Date.now();
      const r2 = await fetch(`${s.url}/git/h/app.git/info/refs?service=git-upload-pack`);
      assert.equal(r2.status, 200);
      assert.match(r2.headers.get('x-hoard-stale') ?? '', /^\d+$/);
      await r2.arrayBuffer();
      const answeredAt = Date.now();
      assert.ok(answeredAt - t0 < 5000, `waited ${answeredAt - t0} ms`);
      assert.ok((http.infoRefs.get('/app.git') ?? 0) > asked0, 'the upstream was asked');
      const gaveUp = () => s.logs.find((l) => l.msg === 'git: upstream fetch failed');
      await waitUntil(() => gaveUp() !== undefined, 'the abandoned fetch in the log');
      assert.ok(
        Number(gaveUp()?.time) <= answeredAt,
        'the stale answer came after the hanging fetch was given up',
      );
      // …and it was given up for the timeout, not at once: the warm-up's fetch starts
      // before the server logs its connection limits (a margin for a loaded machine).
      const started = Number(s.logs.find((l) => l.msg === 'connection limits')?.time);
      const hung = Number(gaveUp()?.time) - started;
      assert.ok(hung >= 500, `the fetch was given up ${hung} ms after start-up (timeout 1 s)`);
      await git(['clone', '--quiet', `${s.url}/git/h/app.git`, join(tmp.path, 'c2')]);
      assert.equal(head(join(tmp.path, 'c2')), expected);
      await s.stop();

      // Shutdown does not wait for a hanging fetch (here: the warm-up's, with a long timeout).
      const asked = http.infoRefs.get('/app.git') ?? 0;
      s = await serve(data, ['--git-upstream', `h=${http.url}`, '--git-fetch-timeout', '10m']);
      await waitUntil(
        () => (http.infoRefs.get('/app.git') ?? 0) > asked,
        'the warm-up fetch at the upstream',
      );
      const t1 = Date.now();
      await s.stop();
      assert.ok(Date.now() - t1 < 5000, `stopped in ${Date.now() - t1} ms`);
    } finally {
      await http.close();
      tmp.cleanup();
    }
  });

  test('start-up with 50 mirrors and an unresponsive upstream: ready anyway, a clone still sees current refs', async () => {
    const tmp = tempDir();
    const upRoot = join(tmp.path, 'up');
    const first = makeUpstream(upRoot, 'r00', 3);
    const data = join(tmp.path, 'data');
    const mirrors = join(data, 'git', 'mirrors', 'slow');
    gitSync(['clone', '--mirror', '--quiet', first, join(mirrors, 'r00.git')]);
    for (let i = 1; i < 50; i++) {
      const n = `r${String(i).padStart(2, '0')}`;
      cpSync(first, join(upRoot, `${n}.git`), { recursive: true });
      cpSync(join(mirrors, 'r00.git'), join(mirrors, `${n}.git`), { recursive: true });
    }
    for (let i = 0; i < 50; i++) {
      const n = `r${String(i).padStart(2, '0')}`;
      // r37 is the least recently used: warmed last.
      const lastUsedAt = i === 37 ? 1 : 1_000_000 + i;
      writeFileSync(
        join(mirrors, `${n}.git`, 'hoard.json'),
        JSON.stringify({ path: `slow/${n}.git`, lastUsedAt, lastFetchAt: Date.now() }),
      );
    }
    const c = commitUpstream(join(upRoot, 'r37.git'), 'upstream moved while the server was down');
    const http = await startHttpUpstream(upRoot, 300);
    try {
      // Readiness must not wait for the warm-up: the upstream answers nothing until the
      // server is ready, so a server that waited on it would never get there (no time budget:
      // the order is the proof, whatever the machine's load).
      http.hang = true;
      const s = await serve(data, ['--git-upstream', `slow=${http.url}`]);
      await waitUntil(
        async () => (await fetch(`${s.url}/readyz`).catch(() => null))?.status === 200,
        '/readyz 200',
        60_000,
      );
      assert.ok(
        !s.logs.some((l) => String(l.msg).startsWith('git warm-up')),
        'ready while the warm-up is still waiting on the upstream',
      );
      http.hang = false;
      const dest = join(tmp.path, 'c37');
      await git(['clone', '--quiet', `${s.url}/git/slow/r37.git`, dest]);
      assert.equal(head(dest), c);
      // It waited for its own fetch only, not for the warm-up of the other 49 (still held).
      assert.ok(!s.logs.some((l) => String(l.msg).startsWith('git warm-up')), 'warm-up still running');
      await s.kill();
    } finally {
      await http.close();
      tmp.cleanup();
    }
  });
});
