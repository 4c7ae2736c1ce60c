// Cold clones (issue 16): a mirror is created with ONE upstream protocol-v2
// fetch whose pack is teed to the first clients while it arrives. Real git
// clients, a real `git http-backend` upstream (and, for hostile answers, a
// hand-written v2 upstream), real `hoard serve`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FLUSH_PKT, pktLine, sidebandPkts } from '../../src/git/pkt-line.ts';
import { waitUntil } from '../support/wait.ts';
import {
  commitUpstream,
  GIT_ENV,
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
async function serve(data: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const s = await startServer(data, args, env);
  servers.push(s);
  return s;
}
/**
 * The test's servers stopped before its folder goes: a mirror's background
 * work (indexing, the anchor pack prebuilt after publication) may still be
 * writing into the data folder, and removing it under a live server raced
 * (ENOTEMPTY).
 */
async function stopAndClean(tmp: { cleanup(): void }): Promise<void> {
  // SIGTERM, not SIGKILL: a killed server's git children would go on writing.
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  tmp.cleanup();
}
const closers: (() => Promise<void>)[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.kill()));
  await Promise.all(closers.map((c) => c()));
});

function refsOf(bare: string, ...patterns: string[]): string {
  return gitSync(['for-each-ref', '--format=%(objectname) %(refname)', ...patterns], bare);
}

async function metric(s: ServerProcess, re: RegExp): Promise<boolean> {
  return re.test(await (await fetch(`${s.url}/metrics`)).text());
}

const served = (s: ServerProcess) =>
  s.logs.filter((l) => l.msg === 'git: serving a clone from the pack being mirrored').length;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * A proxy in front of an upstream that passes the first fetch answer's first
 * `holdAt` bytes, then holds it until `resume`: cut it off, or go on.
 */
async function holdingProxy(upstream: string, holdAt = 2000) {
  let armed = true;
  let go!: (how: 'cut' | 'go') => void;
  const gate = new Promise<'cut' | 'go'>((r) => {
    go = r;
  });
  const state = { url: '', held: false, resume: (how: 'cut' | 'go') => go(how) };
  const proxy = createServer(async (req, res) => {
    const body = Buffer.concat((await req.toArray()) as Buffer[]);
    const headers: Record<string, string> = {};
    for (const h of ['git-protocol', 'content-type']) if (req.headers[h]) headers[h] = String(req.headers[h]);
    const r = await fetch(`${upstream}${req.url}`, {
      method: req.method,
      headers,
      body: req.method === 'POST' ? body : undefined,
    });
    res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? '' });
    const isFetch = body.includes('command=fetch');
    let sent = 0;
    for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) {
      if (isFetch && armed && sent + c.length > holdAt) {
        armed = false;
        res.write(c.subarray(0, holdAt - sent));
        state.held = true;
        if ((await gate) === 'cut') {
          res.destroy();
          return;
        }
        res.write(c.subarray(holdAt - sent));
        sent += c.length;
        continue;
      }
      sent += c.length;
      res.write(c);
    }
    res.end();
  });
  state.url = await listen(proxy);
  return state;
}

describe('git cold clone: one upstream pack, teed', () => {
  test('first v2 clones are served from the pack being mirrored; v0, shallow and filtered clones wait; one upstream fetch', async () => {
    const tmp = tempDir();
    const upRoot = join(tmp.path, 'up');
    const up = makeUpstream(upRoot, 'app', 12);
    gitSync(['branch', 'dev', 'main~3'], up);
    gitSync(['tag', '-a', 'v1', '-m', 'v1', 'main~2'], up);
    gitSync(['tag', 'light', 'main~5'], up);
    const pull = commitUpstream(up, 'a pull request', 'tmp-pr');
    gitSync(['update-ref', 'refs/pull/1/head', pull], up);
    gitSync(['update-ref', '-d', 'refs/heads/tmp-pr'], up);
    // Every upstream answer is delayed, so the clients' requests arrive while the fill runs; the
    // pack is held after its first bytes until both v2 clones read it (a delay alone raced on a
    // loaded machine: the whole pack could arrive and be published before a client's fetch).
    const http = await startHttpUpstream(upRoot, 400);
    closers.push(() => http.close());
    const proxy = await holdingProxy(http.url, 64);
    try {
      const s = await serve(join(tmp.path, 'data'), ['--git-upstream', `h=${proxy.url}`]);
      const url = `${s.url}/git/h/app.git`;
      const d = (n: string) => join(tmp.path, n);
      const clones = Promise.all([
        git(['-c', 'protocol.version=2', 'clone', '--quiet', '--bare', url, d('full')]),
        git([
          '-c',
          'protocol.version=2',
          'clone',
          '--quiet',
          '--single-branch',
          '-b',
          'dev',
          url,
          d('single'),
        ]),
        git(['-c', 'protocol.version=0', 'clone', '--quiet', '--bare', url, d('v0')]),
        git(['-c', 'protocol.version=2', 'clone', '--quiet', '--depth', '1', `${url}`, d('shallow')]),
        git(['-c', 'protocol.version=2', 'clone', '--quiet', '--filter=blob:none', url, d('filtered')]),
      ]);
      clones.catch(() => {});
      await waitUntil(() => proxy.held && served(s) === 2, 'both v2 clones reading the pack being mirrored');
      proxy.resume('go');
      await clones;
      const expected = refsOf(up, 'refs/heads', 'refs/tags');
      assert.equal(
        refsOf(d('full'), 'refs/heads', 'refs/tags'),
        expected,
        'the full clone has every branch and tag',
      );
      assert.equal(refsOf(d('v0'), 'refs/heads', 'refs/tags'), expected);
      assert.equal(head(d('single')), head(up, 'dev'));
      assert.equal(head(d('shallow')), head(up, 'main'));
      assert.equal(gitSync(['rev-parse', '--is-shallow-repository'], d('shallow')), 'true');
      assert.equal(head(d('filtered')), head(up, 'main'));
      for (const c of ['full', 'single']) gitSync(['fsck', '--connectivity-only'], d(c));
      assert.equal(served(s), 2, 'the full and the single-branch clone were served from the pack in flight');
      assert.equal(http.infoRefs.get('/app.git'), 1, 'one upstream advertisement');
      assert.equal(http.uploadPacks.get('/app.git'), 2, 'one ls-refs and one fetch upstream');
      assert.ok(await metric(s, /hoard_git_clones_total\{result="ok"\} 1\b/));
      // The mirror holds what the fetch brought: branches and tags, HEAD on main, no pull refs.
      const mirror = join(tmp.path, 'data', 'git', 'mirrors', 'h', 'app.git');
      assert.equal(refsOf(mirror), expected);
      assert.equal(gitSync(['symbolic-ref', 'HEAD'], mirror), 'refs/heads/main');
      assert.equal(gitSync(['config', 'uploadpack.allowFilter'], mirror), 'true');
      // Served from the mirror afterwards, without the upstream.
      await git(['clone', '--quiet', '--bare', url, d('warm')]);
      assert.equal(refsOf(d('warm'), 'refs/heads', 'refs/tags'), expected);
      assert.equal(http.uploadPacks.get('/app.git'), 2);
    } finally {
      await stopAndClean(tmp);
    }
  });

  test('the first clones end once the pack has arrived, before the mirror is indexed; requests meanwhile are served from the same fill or wait; then the mirror is published', async () => {
    const tmp = tempDir();
    const upRoot = join(tmp.path, 'up');
    const up = makeUpstream(upRoot, 'app', 40);
    gitSync(['tag', '-a', 'v1', '-m', 'v1', 'main~2'], up);
    // The server's git is a wrapper that holds the mirror's index-pack (the only one hoard runs
    // with --max-input-size) until the test writes a line into a FIFO; every other git call
    // goes straight to the real git. (The clients' own index-packs are run by their git, not
    // through PATH.)
    const gate = join(tmp.path, 'gate');
    execFileSync('mkfifo', [gate]);
    const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    const bin = join(tmp.path, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'git'),
      `#!/bin/sh\ncase "$1 $*" in\n  "index-pack "*--max-input-size=*) read line < '${gate}' ;;\nesac\nexec '${realGit}' "$@"\n`,
      { mode: 0o755 },
    );
    let held = true;
    const release = () => {
      if (held) writeFileSync(gate, 'go\n'); // blocks until the held index-pack opened the FIFO
      held = false;
    };
    try {
      const data = join(tmp.path, 'data');
      const mirror = join(data, 'git', 'mirrors', 'h', 'app.git');
      const s = await serve(data, ['--git-upstream', `h=file://${upRoot}`], {
        PATH: `${bin}:${process.env.PATH}`,
      });
      const url = `${s.url}/git/h/app.git`;
      const clone = (n: string, v = 2) =>
        git(['-c', `protocol.version=${v}`, 'clone', '--quiet', '--bare', url, join(tmp.path, n)]);
      await clone('c1');
      const expected = refsOf(up, 'refs/heads', 'refs/tags');
      assert.equal(refsOf(join(tmp.path, 'c1'), 'refs/heads', 'refs/tags'), expected);
      gitSync(['fsck', '--connectivity-only'], join(tmp.path, 'c1'));
      // The client's git peeled the tag itself (the fill does not pass the upstream's peeled values on).
      assert.equal(
        gitSync(['rev-parse', 'v1^{commit}'], join(tmp.path, 'c1')),
        gitSync(['rev-parse', 'main~2'], up),
      );
      assert.equal(existsSync(mirror), false, 'the mirror is not published while it is indexed');
      // A v2 clone now is served from the same fill; a v0 clone waits for the mirror.
      await clone('c2');
      await waitUntil(() => served(s) === 2, 'the second clone served from the fill (its log line)');
      let v0done = false;
      const v0 = clone('c3', 0).then(() => {
        v0done = true;
      });
      assert.equal(existsSync(mirror), false);
      assert.equal(v0done, false, 'the v0 clone waits for the mirror');
      release();
      await v0;
      assert.ok(existsSync(join(mirror, 'HEAD')), 'published before the waiting clone was served');
      assert.equal(refsOf(mirror), expected);
      assert.equal(refsOf(join(tmp.path, 'c3'), 'refs/heads', 'refs/tags'), expected);
      assert.ok(await metric(s, /hoard_git_clones_total\{result="ok"\} 1\b/));
      assert.equal(
        s.logs.filter((l) => l.msg === 'git: cloning new mirror').length,
        1,
        'one mirror creation served all three',
      );
    } finally {
      if (held) {
        // A failed assertion: let a held index-pack go (a FIFO write would block without a reader).
        const fd = openSync(gate, constants.O_RDWR | constants.O_NONBLOCK);
        writeSync(fd, 'go\n');
        closeSync(fd);
      }
      await stopAndClean(tmp);
    }
  });

  test('upstream cut off mid-pack: the client reading it fails, nothing is published, the next clone succeeds', async () => {
    const tmp = tempDir();
    const upRoot = join(tmp.path, 'up');
    const up = makeUpstream(upRoot, 'app', 40);
    const http = await startHttpUpstream(upRoot, 0);
    closers.push(() => http.close());
    const proxy = await holdingProxy(http.url);
    try {
      const data = join(tmp.path, 'data');
      const s = await serve(data, ['--git-upstream', `h=${proxy.url}`]);
      const url = `${s.url}/git/h/app.git`;
      const first = git([
        '-c',
        'protocol.version=2',
        'clone',
        '--quiet',
        '--bare',
        url,
        join(tmp.path, 'c1'),
      ]);
      first.catch(() => {});
      await waitUntil(
        () => proxy.held && served(s) === 1,
        'the client reading the pack while the upstream holds it',
      );
      proxy.resume('cut');
      await assert.rejects(first, /upstream fetch failed|remote error|early EOF|fatal/);
      const mirror = join(data, 'git', 'mirrors', 'h', 'app.git');
      assert.equal(existsSync(mirror), false, 'nothing published');
      await waitUntil(
        () => metric(s, /hoard_git_clones_total\{result="error"\} 1\b/),
        'the failed fill counted',
      );
      await git(['-c', 'protocol.version=2', 'clone', '--quiet', '--bare', url, join(tmp.path, 'c2')]);
      assert.equal(head(join(tmp.path, 'c2'), 'main'), head(up, 'main'));
      // The clone may end (served from the pack) before the mirror is indexed and published.
      await waitUntil(() => metric(s, /hoard_git_clones_total\{result="ok"\} 1\b/), 'the mirror published');
      assert.equal(refsOf(mirror), refsOf(up, 'refs/heads', 'refs/tags'));
    } finally {
      await stopAndClean(tmp);
    }
  });
});

describe('git cold clone: an empty upstream', () => {
  test('v2 and v0 clones of an empty repository; the mirror’s HEAD follows the upstream’s unborn branch', async () => {
    const tmp = tempDir();
    try {
      gitSync(['init', '--bare', '--quiet', '-b', 'trunk', join(tmp.path, 'up', 'empty.git')]);
      const data = join(tmp.path, 'data');
      const s = await serve(data, ['--git-upstream', `e=file://${join(tmp.path, 'up')}`]);
      const url = `${s.url}/git/e/empty.git`;
      await git(['-c', 'protocol.version=2', 'clone', '--quiet', url, join(tmp.path, 'c2')]);
      await git(['-c', 'protocol.version=0', 'clone', '--quiet', url, join(tmp.path, 'c0')]);
      assert.equal(gitSync(['symbolic-ref', 'HEAD'], join(tmp.path, 'c2')), 'refs/heads/trunk');
      const mirror = join(data, 'git', 'mirrors', 'e', 'empty.git');
      assert.equal(gitSync(['symbolic-ref', 'HEAD'], mirror), 'refs/heads/trunk');
      assert.equal(refsOf(mirror), '');
      await s.stop();
    } finally {
      await stopAndClean(tmp);
    }
  });
});

describe('git cold clone: a shallow upstream', () => {
  test('mirrored by git clone (its fetch answer starts with shallow-info, not a pack to tee); clones through hoard get what a direct clone gets', async () => {
    const tmp = tempDir();
    try {
      const full = makeUpstream(join(tmp.path, 'full'), 'app', 6);
      const upRoot = join(tmp.path, 'up');
      gitSync(['clone', '--quiet', '--bare', '--depth', '2', `file://${full}`, join(upRoot, 'app.git')]);
      const up = join(upRoot, 'app.git');
      const data = join(tmp.path, 'data');
      const s = await serve(data, ['--git-upstream', `s=file://${upRoot}`]);
      const url = `${s.url}/git/s/app.git`;
      const via = join(tmp.path, 'via');
      await git(['-c', 'protocol.version=2', 'clone', '--quiet', '--bare', url, via]);
      const direct = join(tmp.path, 'direct');
      await git(['clone', '--quiet', '--bare', `file://${up}`, direct]);
      assert.equal(refsOf(via), refsOf(direct));
      assert.equal(readFileSync(join(via, 'shallow'), 'utf8'), readFileSync(join(direct, 'shallow'), 'utf8'));
      gitSync(['fsck', '--connectivity-only'], via);
      assert.equal(served(s), 0, 'not served from a fill');
      await waitUntil(
        () => s.logs.some((l) => l.msg === 'git: mirroring with git clone'),
        'the log line saying why',
      );
      assert.ok(await metric(s, /hoard_git_clones_total\{result="ok"\} 1\b/));
      await s.stop();
    } finally {
      await stopAndClean(tmp);
    }
  });
});

describe('git cold clone: hostile upstream', () => {
  // A hand-written protocol-v2 upstream whose answers the test chooses.
  interface Fake {
    lsRefs: string[];
    pack: () => Buffer[];
    fetches: number;
    /** Capability advertisements served: one per mirror creation started. */
    adverts: number;
  }
  async function fakeUpstream(f: Fake): Promise<string> {
    const server = createServer(async (req, res) => {
      const body = Buffer.concat((await req.toArray()) as Buffer[]);
      if (req.method === 'GET') {
        f.adverts++;
        res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
        res.end(
          Buffer.concat([
            pktLine('version 2\n'),
            pktLine('agent=fake\n'),
            pktLine('ls-refs=unborn\n'),
            pktLine('fetch=shallow\n'),
            pktLine('object-format=sha1\n'),
            FLUSH_PKT,
          ]),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-result' });
      if (body.includes('command=ls-refs')) {
        res.end(Buffer.concat([...f.lsRefs.map((l) => pktLine(`${l}\n`)), FLUSH_PKT]));
        return;
      }
      f.fetches++;
      res.end(Buffer.concat([pktLine('packfile\n'), ...f.pack(), FLUSH_PKT]));
    });
    return listen(server);
  }

  function packOf(repo: string, objects: string[]): Buffer {
    return execFileSync('git', ['pack-objects', '--stdout'], {
      cwd: repo,
      env: GIT_ENV,
      input: `${objects.join('\n')}\n`,
    });
  }

  const tmp = tempDir();
  after(() => tmp.cleanup());
  const up = makeUpstream(join(tmp.path, 'up'), 'src', 3);
  const main = head(up, 'main');
  const all = gitSync(['rev-list', '--objects', 'main'], up)
    .split('\n')
    .map((l) => l.split(' ')[0]);
  const headLines = [`${main} HEAD symref-target:refs/heads/main`, `${main} refs/heads/main`];

  const cases: { name: string; fake: Omit<Fake, 'fetches' | 'adverts'>; fetched: boolean }[] = [
    {
      name: 'a pack missing objects (not connected)',
      fake: { lsRefs: headLines, pack: () => sidebandPkts(1, packOf(up, [main])) },
      fetched: true,
    },
    {
      name: 'a ref naming an object the pack lacks',
      fake: {
        lsRefs: [...headLines, `${'1'.repeat(40)} refs/tags/ghost`],
        pack: () => sidebandPkts(1, packOf(up, all)),
      },
      fetched: true,
    },
    {
      name: 'an error on sideband 3 mid-pack',
      fake: {
        lsRefs: headLines,
        pack: () => [
          ...sidebandPkts(1, packOf(up, all).subarray(0, 100)),
          ...sidebandPkts(3, Buffer.from('internal host db-7.corp failed\n')),
        ],
      },
      fetched: true,
    },
    {
      name: 'a pack that is not a pack',
      fake: { lsRefs: headLines, pack: () => sidebandPkts(1, Buffer.alloc(5000, 7)) },
      fetched: true,
    },
    {
      name: 'a ref name git refuses',
      fake: { lsRefs: [...headLines, `${main} refs/heads/a..b`], pack: () => [] },
      fetched: false,
    },
    {
      name: 'a ref outside the namespaces asked for',
      fake: { lsRefs: [...headLines, `${main} refs/pull/1/head`], pack: () => [] },
      fetched: false,
    },
    {
      name: 'a bad object id',
      fake: { lsRefs: [`xyz refs/heads/main`], pack: () => [] },
      fetched: false,
    },
  ];
  for (const [i, c] of cases.entries())
    test(`${c.name}: the clone fails, nothing is published, the next request retries`, async () => {
      const f: Fake = { ...c.fake, fetches: 0, adverts: 0 };
      const upUrl = await fakeUpstream(f);
      const data = join(tmp.path, `data-${i}`);
      const s = await serve(data, ['--git-upstream', `h=${upUrl}`]);
      const url = `${s.url}/git/h/app.git`;
      const failedCreations = async () =>
        Number(
          /hoard_git_clones_total\{result="error"\} (\d+)/.exec(
            await (await fetch(`${s.url}/metrics`)).text(),
          )?.[1] ?? 0,
        );
      let started = 0;
      for (const n of [1, 2]) {
        await assert.rejects(
          git(['-c', 'protocol.version=2', 'clone', '--quiet', '--bare', url, join(tmp.path, `c-${i}-${n}`)]),
          (err: Error) => {
            assert.doesNotMatch(err.message, /db-7\.corp/, "the upstream's words stay in the log");
            return true;
          },
        );
        assert.ok(f.adverts > started, `clone ${n} started a mirror creation of its own`);
        started = f.adverts;
        // A client served from the pack may fail (its own git's checks) before the mirror's
        // index-pack of the same fill has, and a request arriving meanwhile would be served
        // from that fill: every creation started so far (each asked the upstream for its
        // advertisement once) must have failed before the next clone.
        await waitUntil(
          async () => (await failedCreations()) === f.adverts,
          'every mirror creation started so far failed',
        );
        assert.equal(existsSync(join(data, 'git', 'mirrors', 'h', 'app.git')), false, 'nothing published');
      }
      // A failed creation is not remembered: each clone starts one (a request arriving after
      // one failed may start another), and no pack is fetched before the refs were checked.
      if (c.fetched) assert.ok(f.fetches >= 2, `each clone retried the fill (${f.fetches} fetches)`);
      else assert.equal(f.fetches, 0);
      assert.ok((await failedCreations()) >= 2);
      const res = await fetch(`${url}/info/refs?service=git-upload-pack`);
      assert.equal(res.status, 502);
      assert.match(await res.text(), /could not mirror h\/app\.git: upstream fetch failed/);
      await s.stop();
    });
});
