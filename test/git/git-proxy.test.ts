// The git smart-HTTP proxy against a live `hoard serve` and the real git client.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
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

function pkt(s: string): string {
  return (s.length + 4).toString(16).padStart(4, '0') + s;
}

describe('git proxy: protocol', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let upstream: string;
  let base: string;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 3);
    server = await startServer(join(tmp.path, 'data'), [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
      '--git-max-staleness',
      '0',
    ]);
    base = `${server.url}/git/local`;
  });
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  for (const protocol of [0, 2] as const) {
    test(`clone with protocol v${protocol}, then fetch sees an upstream commit at once (staleness 0)`, async () => {
      const dest = join(tmp.path, `clone-v${protocol}`);
      await git(['-c', `protocol.version=${protocol}`, 'clone', '--quiet', `${base}/app.git`, dest]);
      assert.equal(head(dest), head(upstream, 'main'));
      assert.equal(
        gitSync(['rev-list', '--count', 'HEAD'], dest),
        gitSync(['rev-list', '--count', 'main'], upstream),
      );
      const c = commitUpstream(upstream, `new for v${protocol}`);
      await git(['-c', `protocol.version=${protocol}`, 'fetch', '--quiet', 'origin'], { cwd: dest });
      assert.equal(head(dest, 'origin/main'), c);
      await git(['fsck'], { cwd: dest });
    });
  }

  for (const protocol of [0, 2] as const) {
    test(`v${protocol}: a fetch with a long negotiation (gzip-compressed request bodies) works`, async () => {
      const dest = join(tmp.path, `clone-v${protocol}`);
      // 80 local commits the server does not have: > 1 KiB of "have" lines, which git gzips.
      // They are dated in the future so the negotiation walks all of them before
      // the common base: with one-second timestamps equal to the base's, git may
      // offer the base first, finish early and send a body too small to gzip.
      execFileSync(
        'sh',
        [
          '-c',
          'for i in $(seq 80); do d="$((4000000000 + i)) +0000"; GIT_COMMITTER_DATE="$d" GIT_AUTHOR_DATE="$d" git commit --allow-empty -q -m "local $i"; done',
        ],
        { cwd: dest, env: GIT_ENV },
      );
      const c = commitUpstream(upstream, `negotiation v${protocol}`);
      const r = await git(['-c', `protocol.version=${protocol}`, 'fetch', 'origin'], {
        cwd: dest,
        env: { GIT_TRACE_CURL: '1', GIT_TRACE_CURL_NO_DATA: '1' },
      });
      assert.equal(head(dest, 'origin/main'), c);
      assert.match(r.stderr, /Content-Encoding: gzip/i, 'git sent a gzip-compressed request');
    });
  }

  test('v0 advertisement has the service preamble and no-cache headers', async () => {
    const res = await fetch(`${base}/app.git/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-git-upload-pack-advertisement');
    assert.match(res.headers.get('cache-control') ?? '', /no-cache/);
    const text = await res.text();
    assert.ok(text.startsWith('001e# service=git-upload-pack\n0000'), text.slice(0, 60));
    assert.ok(text.includes('refs/heads/main'));
    assert.equal(res.headers.get('x-hoard-stale'), null);
  });

  test('v2: capabilities without preamble; gzip-compressed ls-refs request', async () => {
    const caps = await fetch(`${base}/app.git/info/refs?service=git-upload-pack`, {
      headers: { 'git-protocol': 'version=2' },
    });
    const text = await caps.text();
    assert.ok(text.startsWith('000eversion 2\n'), text.slice(0, 40));
    const body = `${pkt('command=ls-refs\n')}0001${pkt('peel\n')}${pkt('symrefs\n')}0000`;
    const res = await fetch(`${base}/app.git/git-upload-pack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-git-upload-pack-request',
        'content-encoding': 'gzip',
        'git-protocol': 'version=2',
      },
      body: gzipSync(Buffer.from(body)),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-git-upload-pack-result');
    const refs = await res.text();
    assert.ok(refs.includes(`${head(upstream, 'main')} refs/heads/main`), refs);
  });

  test('a want of a commit the mirror lacks triggers a fetch and is served', async () => {
    // A second server with a long staleness bound: only the unknown want can make it fetch.
    const data = join(tmp.path, 'data-want');
    const s = await startServer(data, [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
      '--git-max-staleness',
      '1h',
    ]);
    try {
      const dest = join(tmp.path, 'clone-want');
      await git(['clone', '--quiet', `${s.url}/git/local/app.git`, dest]);
      const c = commitUpstream(upstream, 'pushed after the mirror was made', 'topic');
      await git(['fetch', '--quiet', 'origin', c], { cwd: dest });
      assert.equal(gitSync(['cat-file', '-t', c], dest), 'commit');
    } finally {
      await s.stop();
    }
  });

  test('a new mirror is tuned for serving: config, multi-pack bitmap, commit-graph', async () => {
    const mirror = join(tmp.path, 'data', 'git', 'mirrors', 'local', 'app.git');
    assert.equal(gitSync(['config', 'uploadpack.allowFilter'], mirror), 'true');
    assert.equal(gitSync(['config', 'uploadpack.allowAnySHA1InWant'], mirror), 'true');
    const done = () =>
      existsSync(join(mirror, 'objects', 'info', 'commit-graphs')) &&
      readdirSync(join(mirror, 'objects', 'pack')).some((f) => f.endsWith('.bitmap'));
    await waitUntil(done, 'maintenance to write a bitmap and a commit-graph');
    assert.ok(!server.logs.some((l) => String(l.msg).includes('maintenance failed')));
    // A filtered (partial) clone is served.
    const dest = join(tmp.path, 'clone-filtered');
    await git(['clone', '--quiet', '--filter=blob:none', `${base}/app.git`, dest]);
    assert.equal(head(dest), head(upstream, 'main'));
  });

  test('push is refused with 403 and a clear message', async () => {
    const dest = join(tmp.path, 'clone-v2');
    gitSync(['commit', '--allow-empty', '-q', '-m', 'local'], dest);
    await assert.rejects(
      git(['push', '--quiet', 'origin', 'HEAD:refs/heads/pushed'], { cwd: dest }),
      (err: Error) => {
        assert.match(err.message, /read-only git mirror/);
        return true;
      },
    );
    assert.equal(existsSync(join(upstream, 'refs', 'heads', 'pushed')), false);
  });

  test('bad repository paths are refused', async () => {
    for (const p of ['local/../x.git', 'local/-x.git', 'local/a.git/b']) {
      const res = await fetch(`${base.replace('/local', '')}/${p}/info/refs?service=git-upload-pack`);
      assert.ok(res.status === 400 || res.status === 404, `${p}: ${res.status}`);
    }
    const res = await fetch(`${server.url}/git/local/missing.git/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 502);
    assert.match(await res.text(), /could not mirror/);
  });
});

describe("git proxy: ls-refs from the mirror's ref files", () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let upstream: string;
  let base: string;
  let mirror: string;

  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 3);
    gitSync(['tag', '-a', '-m', 'annotated', 'v1', 'main~1'], upstream);
    gitSync(['tag', 'light', 'main~2'], upstream);
    gitSync(['branch', 'topic', 'main~1'], upstream);
    // A long bound: the mirror is not refreshed between the requests compared below.
    server = await startServer(join(tmp.path, 'data'), [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
      '--git-max-staleness',
      '1h',
    ]);
    base = `${server.url}/git/local`;
    await git(['clone', '--quiet', '--bare', `${base}/app.git`, join(tmp.path, 'first.git')]);
    mirror = join(tmp.path, 'data', 'git', 'mirrors', 'local', 'app.git');
    // The first clone may be served from the cold fill before the mirror is in place.
    // Its maintenance (bitmap, commit-graph) done, so nothing rewrites refs under the tests.
    await waitUntil(
      () =>
        existsSync(join(mirror, 'HEAD')) &&
        existsSync(join(mirror, 'objects', 'info', 'commit-graphs')) &&
        readdirSync(join(mirror, 'objects', 'pack')).some((f) => f.endsWith('.bitmap')),
      'the mirror in place, its maintenance done',
      20_000,
    );
  });
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  const lsRefsBody = (args: string[]) =>
    Buffer.from(
      `${pkt('command=ls-refs\n')}${pkt('agent=git/2.39.5\n')}${pkt('object-format=sha1\n')}0001${args
        .map((a) => pkt(`${a}\n`))
        .join('')}0000`,
    );
  const post = (body: Buffer, headers: Record<string, string> = {}) =>
    fetch(`${base}/app.git/git-upload-pack`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-git-upload-pack-request',
        'git-protocol': 'version=2',
        ...headers,
      },
      body: new Uint8Array(body),
    });
  const gitAnswer = (args: string[]) =>
    execFileSync('git', ['upload-pack', '--stateless-rpc', mirror], {
      env: { ...GIT_ENV, GIT_PROTOCOL: 'version=2' },
      input: lsRefsBody(args),
    });
  const LOCAL = 'git: ls-refs answered from the ref files';
  /**
   * A request answered from the files, with a prefix no other request uses; resolves with the
   * index of its log line. Log lines arrive after the responses, in order: once this one is
   * in, so is every line of the requests before it.
   */
  const mark = async () => {
    const id = `refs/tags/mark-${Math.random().toString(36).slice(2)}`;
    await (await post(lsRefsBody([`ref-prefix ${id}`]))).arrayBuffer();
    const find = () => server.logs.findIndex((l) => l.msg === LOCAL && JSON.stringify(l.args).includes(id));
    await waitUntil(() => find() >= 0, 'the mark request answered from the files');
    return find();
  };
  /** Requests answered from the files between two marks. */
  const localBetween = (from: number, to: number) =>
    server.logs.slice(from + 1, to).filter((l) => l.msg === LOCAL).length;
  const ARGS = [
    [],
    ['peel', 'symrefs', 'unborn', 'ref-prefix HEAD', 'ref-prefix refs/heads/main', 'ref-prefix refs/tags/'],
    ['symrefs', 'ref-prefix HEAD', 'ref-prefix refs/heads/', 'ref-prefix refs/tags/'],
    ['peel', 'ref-prefix refs/tags/v'],
    ['ref-prefix nothing/'],
  ];

  test("the answer is upload-pack's, byte for byte, without a git process while the refs are packed", async () => {
    // The mirror's refs as the cold fill or maintenance leave them: packed (made sure of here).
    gitSync(['pack-refs', '--all', '--prune'], mirror);
    for (const args of ARGS) {
      const from = await mark();
      const res = await post(lsRefsBody(args));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/x-git-upload-pack-result');
      assert.equal(res.headers.get('cache-control'), 'no-cache, max-age=0, must-revalidate');
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(body.toString('latin1'), gitAnswer(args).toString('latin1'), JSON.stringify(args));
      assert.equal(localBetween(from, await mark()), 1, `answered from the files: ${JSON.stringify(args)}`);
    }
    // gzip-compressed, as git sends larger requests.
    const args = ARGS[1];
    const res = await post(gzipSync(lsRefsBody(args)), { 'content-encoding': 'gzip' });
    assert.equal(Buffer.from(await res.arrayBuffer()).toString('latin1'), gitAnswer(args).toString('latin1'));
    // A real clone and a fetch with tag following through it.
    const dest = join(tmp.path, 'clone');
    await git(['clone', '--quiet', `${base}/app.git`, dest]);
    assert.equal(head(dest), head(upstream, 'main'));
    assert.equal(gitSync(['rev-parse', 'v1^{}'], dest), head(upstream, 'main~1'));
  });

  test('a loose ref in the answer (a refresh moved it): git answers, the same bytes', async () => {
    gitSync(['pack-refs', '--all', '--prune'], mirror);
    gitSync(['update-ref', 'refs/heads/topic', head(mirror, 'main')], mirror);
    const from = await mark();
    for (const args of [ARGS[0], ARGS[2]]) {
      const res = await post(lsRefsBody(args));
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(body.toString('latin1'), gitAnswer(args).toString('latin1'), JSON.stringify(args));
      assert.ok(body.includes(`${head(mirror, 'main')} refs/heads/topic`), 'the loose value');
    }
    assert.equal(localBetween(from, await mark()), 0, 'each shows the loose refs/heads/topic: git answered');
  });

  test('after a fetch moved refs (loose files), the mirror packs them again: ls-refs from the files', async () => {
    gitSync(['pack-refs', '--all', '--prune'], mirror);
    const next = commitUpstream(upstream, 'lands later');
    // A want of a commit the mirror lacks: the server fetches (main moves: a loose ref).
    const want = Buffer.from(
      `${pkt('command=fetch\n')}${pkt('object-format=sha1\n')}0001${pkt(`want ${next}\n`)}${pkt('ofs-delta\n')}${pkt('done\n')}0000`,
    );
    const res = await post(want);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const loose = () =>
      readdirSync(join(mirror, 'refs'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    await waitUntil(() => loose().length === 0, 'the refs packed again after the fetch').catch(() => {});
    assert.deepEqual(
      loose().map((e) => e.name),
      [],
      'packed again after the fetch',
    );
    const args = [
      'peel',
      'symrefs',
      'unborn',
      'ref-prefix HEAD',
      'ref-prefix refs/heads/main',
      'ref-prefix refs/tags/',
    ];
    const from = await mark();
    const body = Buffer.from(await (await post(lsRefsBody(args))).arrayBuffer());
    assert.equal(body.toString('latin1'), gitAnswer(args).toString('latin1'));
    assert.ok(body.includes(`${next} refs/heads/main`), 'the fetched tip');
    assert.equal(localBetween(from, await mark()), 1, 'answered from the files');
  });

  test('hostile or unusual requests: git decides, as before', async () => {
    gitSync(['pack-refs', '--all', '--prune'], mirror);
    const from = await mark();
    // An argument ls-refs does not know: upload-pack refuses it (400), nothing from the files.
    let res = await post(lsRefsBody(['ref-prefix refs/heads/', 'frobnicate']));
    assert.equal(res.status, 400);
    // A capability the files answer cannot honour (another object format): git's answer.
    const sha256 = Buffer.from(`${pkt('command=ls-refs\n')}${pkt('object-format=sha256\n')}00010000`);
    res = await post(sha256);
    assert.ok(res.status >= 400, `status ${res.status}`);
    // Non-ASCII and odd prefixes: git's bytes.
    for (const args of [['ref-prefix refs/h\u00e9ads/'], ['ref-prefix  refs/heads/'], ['ref-prefix']]) {
      res = await post(lsRefsBody(args));
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status === 200) assert.equal(body.toString('latin1'), gitAnswer(args).toString('latin1'));
    }
    // Truncated: no flush at the end.
    const cut = lsRefsBody(['peel']);
    res = await post(cut.subarray(0, cut.length - 4));
    assert.ok(res.status === 200 || res.status === 400, `status ${res.status}`);
    await res.arrayBuffer();
    // v0 requests are not ls-refs: a v0 client's info/refs is still git's advertisement.
    res = await post(lsRefsBody(['peel']), { 'git-protocol': '' });
    await res.arrayBuffer();
    assert.equal(localBetween(from, await mark()), 0, 'none of these was answered from the files');
  });
});

/** Pids of upload-pack / pack-objects processes working in `dir` (zombies excluded). */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (!readlinkSync(`/proc/${p}/cwd`).startsWith(dir)) continue;
      if (!/upload-pack|pack-objects/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'))) continue;
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))) continue;
      pids.push(Number(p));
    } catch {}
  }
  return pids;
}

describe('git proxy: client disconnect', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  test('a client that goes away mid-pack: upload-pack and pack-objects are killed', async () => {
    const upstream = makeUpstream(join(tmp.path, 'up'), 'big', 1);
    gitSync(['config', 'core.compression', '0'], upstream); // fast to make and to clone
    // 24 MiB of incompressible bytes: more than socket and stream buffers hold.
    const big = execFileSync('sh', ['-c', 'head -c 25165824 /dev/urandom | git hash-object -w --stdin'], {
      cwd: upstream,
      encoding: 'utf8',
    }).trim();
    const tree = gitSync(['mktree'], upstream, `100644 blob ${big}\tbig.bin\n`);
    const c = gitSync(['commit-tree', tree, '-p', 'main', '-m', 'big'], upstream);
    gitSync(['update-ref', 'refs/heads/main', c], upstream);
    server = await startServer(join(tmp.path, 'data'), [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
    ]);
    const mirror = join(tmp.path, 'data', 'git', 'mirrors', 'local', 'big.git');
    const caps = await fetch(`${server.url}/git/local/big.git/info/refs?service=git-upload-pack`, {
      headers: { 'git-protocol': 'version=2' },
    });
    await caps.arrayBuffer();
    // node:http, so that going away really closes the connection.
    const body = `${pkt('command=fetch\n')}0001${pkt(`want ${c}\n`)}${pkt('done\n')}0000`;
    const req = request(`${server.url}/git/local/big.git/git-upload-pack`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-git-upload-pack-request', 'git-protocol': 'version=2' },
    });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.end(body);
    });
    assert.equal(res.statusCode, 200);
    await new Promise((r) => res.once('data', r));
    res.pause();
    assert.ok(processesIn(mirror).length > 0, 'upload-pack is running');
    req.destroy();
    await waitUntil(() => processesIn(mirror).length === 0, 'the git processes to end').catch(() => {});
    assert.deepEqual(processesIn(mirror), [], 'no git left in the mirror');
  });
});

describe('git proxy: push-through', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let upstream: string;
  before(async () => {
    upstream = makeUpstream(join(tmp.path, 'up'), 'app', 1);
    server = await startServer(join(tmp.path, 'data'), [
      '--git-upstream',
      `local=file://${join(tmp.path, 'up')}`,
      '--git-allow-push-through',
    ]);
  });
  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  test('push-through to an HTTP upstream forwards Basic credentials, never a Bearer token', async () => {
    const root = join(tmp.path, 'hup');
    const up2 = makeUpstream(root, 'app', 1);
    gitSync(['config', 'http.receivepack', 'true'], up2);
    const http = await startHttpUpstream(root, 0);
    const s = await startServer(join(tmp.path, 'data2'), [
      '--git-upstream',
      `h=${http.url}`,
      '--git-allow-push-through',
    ]);
    try {
      const dest = join(tmp.path, 'h1');
      await git(['clone', '--quiet', `${s.url}/git/h/app.git`, dest]);
      gitSync(['commit', '--allow-empty', '-q', '-m', 'over http'], dest);
      await git(
        [
          '-c',
          'http.extraHeader=Authorization: Bearer hoard-secret',
          'push',
          '--quiet',
          'origin',
          'HEAD:main',
        ],
        {
          cwd: dest,
        },
      );
      assert.equal(head(up2, 'main'), head(dest));
      assert.ok(
        http.authorizations.every((a) => !a.includes('hoard-secret')),
        'bearer token not forwarded',
      );
    } finally {
      await s.stop();
      await http.close();
    }
  });

  test('with --git-allow-push-through a push reaches the upstream and the next clone sees it', async () => {
    const dest = join(tmp.path, 'c1');
    await git(['clone', '--quiet', `${server.url}/git/local/app.git`, dest]);
    gitSync(['commit', '--allow-empty', '-q', '-m', 'pushed through'], dest);
    const c = head(dest);
    await git(['push', '--quiet', 'origin', 'HEAD:main'], { cwd: dest });
    assert.equal(head(upstream, 'main'), c);
    const dest2 = join(tmp.path, 'c2');
    await git(['clone', '--quiet', `${server.url}/git/local/app.git`, dest2]);
    assert.equal(head(dest2), c);
  });
});
