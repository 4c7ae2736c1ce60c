// Requests for commits a mirror lacks make the server fetch upstream; any
// client can ask for random ids, so those fetches are single-flighted per
// repository and bounded per window. Counted on a real HTTP upstream.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { MirrorManager } from '../../src/git/mirror-manager.ts';
import { parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { waitUntil } from '../support/wait.ts';
import { commitUpstream, makeUpstream, type ServerProcess, startServer, tempDir } from './helpers/harness.ts';
import { type HttpUpstream, startHttpUpstream } from './helpers/http-upstream.ts';

const randomCommit = () => randomBytes(20).toString('hex');

describe('unknown-commit snapshot requests against a live server', () => {
  const tmp = tempDir();
  let http: HttpUpstream;
  let server: ServerProcess;
  const fetches = () => http.infoRefs.get('/app.git') ?? 0;

  before(async () => {
    makeUpstream(join(tmp.path, 'up'), 'app', 2);
    http = await startHttpUpstream(join(tmp.path, 'up'), 0);
    server = await startServer(join(tmp.path, 'data'), ['--git-upstream', `h=${http.url}`]);
    const res = await fetch(`${server.url}/git/h/app.git/info/refs?service=git-upload-pack`); // the clone
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
  after(async () => {
    await server?.stop();
    await http?.close();
    tmp.cleanup();
  });

  test('20 concurrent, then 20 sequential requests for unknown commits: one fetch in flight, a bounded number in all', async () => {
    http.delayMs = 200; // each fetch takes a while: the burst arrives while the first is in flight
    const before = fetches();
    const burst = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${server.url}/git/h/app.git/snapshot/${randomCommit()}.tar.zst`).then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        }),
      ),
    );
    assert.deepEqual(new Set(burst), new Set([404]));
    assert.ok(fetches() - before <= 2, `a burst joins the fetch in flight (${fetches() - before} fetches)`);
    http.delayMs = 0;
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${server.url}/git/h/app.git/snapshot/${randomCommit()}.tar.zst`);
      await r.arrayBuffer();
      assert.equal(r.status, 404);
    }
    const total = fetches() - before;
    assert.ok(
      total <= DEFAULTS.gitUnknownObjectFetchesPerWindow,
      `${total} upstream fetches for 40 unknown commits (budget ${DEFAULTS.gitUnknownObjectFetchesPerWindow})`,
    );
    assert.equal(http.maxInFlight, 1, 'never two upstream requests at once');
    // The server's log reaches us through its stdout, after the answers: wait for the line.
    await waitUntil(
      () => server.logs.some((l) => String(l.msg).includes('budget for unknown objects used up')),
      'the budget warning in the log',
    );
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /hoard_git_unknown_object_fetches_limited_total [1-9]/);
  });
});

describe('unknown-object fetch budget (MirrorManager, injected clock)', () => {
  const tmp = tempDir();
  let http: HttpUpstream;
  let upstream: string;
  let mirrors: MirrorManager;
  // Real time plus a jump the test makes (the budget's window moving on).
  let jumped = 0;
  const fetches = () => http.infoRefs.get('/app.git') ?? 0;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 1);
    http = await startHttpUpstream(join(tmp.path, 'up'), 0);
    mirrors = new MirrorManager({
      dataDir: join(tmp.path, 'data'),
      upstreams: new Upstreams([parseUpstreamSpec(`h=${http.url}`)]),
      registry: new Registry(),
      unknownObjectFetchesPerWindow: 2,
      unknownObjectFetchWindowMs: 10_000,
      clock: { now: () => performance.now() + jumped },
    });
    await mirrors.start();
    await mirrors.open('h/app.git', { refs: false });
  });
  after(async () => {
    await mirrors.close();
    await http.close();
    tmp.cleanup();
  });

  test('at most N fetches per window; the window moves with the clock; a real new commit is still found', async () => {
    const before = fetches();
    for (let i = 0; i < 5; i++)
      assert.equal((await mirrors.ensureObjects('h/app.git', [randomCommit()])).length, 1);
    assert.equal(fetches() - before, 2, 'two fetches, then the budget is used up');
    // Used up: a commit pushed upstream is not fetched for until the window moves on.
    const c = commitUpstream(upstream, 'pushed now');
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c]), [c]);
    assert.equal(fetches() - before, 2);
    jumped += 10_001;
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c]), []);
    assert.equal(fetches() - before, 3);
    // Known objects cost nothing.
    assert.deepEqual(await mirrors.ensureObjects('h/app.git', [c]), []);
    assert.equal(fetches() - before, 3);
  });
});
