// Which upstreams a client can make the server reach (SSRF): only configured
// mappings by default; the implicit `<host>/<path>` → `https://…` mapping only
// when the operator turns it on, filtered by host patterns; and an upstream's
// own error text never reaches the client.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GitSettings, gitFeature, resolveGitSettings } from '../../src/git/git-feature.ts';
import { gitChildren } from '../../src/git/git-process.ts';
import { snapshotFeature } from '../../src/git/snapshot-feature.ts';
import { parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { apiFeature } from '../../src/server/api-feature.ts';
import { buildServer, type HoardServer } from '../../src/server/app.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { withSettings } from '../../src/server/feature.ts';
import { waitUntil } from '../support/wait.ts';
import { makeUpstream, type ServerProcess, startServer, tempDir } from './helpers/harness.ts';
import { startHttpUpstream } from './helpers/http-upstream.ts';

async function inProcess(
  settings: GitSettings,
): Promise<{ url: string; data: string; close(): Promise<void> }> {
  const data = mkdtempSync(join(tmpdir(), 'hoard-upol-'));
  const config = resolveConfig({
    listen: '127.0.0.1:0',
    data,
    logLevel: 'silent',
    publicUrl: 'http://hoard.test',
  });
  const server: HoardServer = await buildServer(config, {
    logger: false,
    features: [
      withSettings(apiFeature),
      withSettings(gitFeature, {
        ...settings,
        upstreams: Object.fromEntries(settings.upstreams.map((u) => [u.name, u.url])),
      }),
      withSettings(snapshotFeature),
    ],
  });
  const url = await server.listen();
  return {
    url,
    data,
    async close() {
      await server.close();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Every request a client could use to make the server touch `repo`. */
async function probe(url: string, repo: string): Promise<number[]> {
  const statuses: number[] = [];
  for (const [method, path] of [
    ['GET', `${repo}/info/refs?service=git-upload-pack`],
    ['POST', `${repo}/git-upload-pack`],
    ['GET', `${repo}/snapshot.tar.zst`],
    ['GET', `${repo}/snapshot/${'a'.repeat(40)}.tar.zst`],
  ]) {
    const res = await fetch(`${url}/git/${path}`, {
      method,
      headers: method === 'POST' ? { 'content-type': 'application/x-git-upload-pack-request' } : {},
      body: method === 'POST' ? '0000' : undefined,
    });
    await res.arrayBuffer();
    statuses.push(res.status);
  }
  return statuses;
}

describe('git upstream policy: only configured upstreams by default', () => {
  let srv: Awaited<ReturnType<typeof inProcess>>;
  before(async () => {
    srv = await inProcess(await resolveGitSettings({}, {}));
  });
  after(async () => {
    await srv?.close();
  });

  test('an unconfigured /git/<host>/… is 404 and starts no git child', async () => {
    const before = gitChildren().spawned;
    for (const repo of ['example.com/acme/app.git', 'metadata.google.internal/a/b', '127.0.0.1/a/b.git'])
      assert.deepEqual(await probe(srv.url, repo), [404, 404, 404, 404], repo);
    assert.equal(gitChildren().spawned, before, 'no git child was spawned');
    assert.equal(existsSync(join(srv.data, 'git', 'mirrors', 'example.com')), false);
    const res = await fetch(`${srv.url}/git/example.com/acme/app.git/info/refs?service=git-upload-pack`);
    assert.equal(res.headers.get('x-hoard-error'), 'HOARD_EUPSTREAM_UNKNOWN');
    assert.match(await res.text(), /no upstream is configured/);
  });
});

describe('git upstream policy: implicit mapping turned on, with host patterns', () => {
  let srv: Awaited<ReturnType<typeof inProcess>>;
  before(async () => {
    const settings = await resolveGitSettings(
      { gitAllowAnyHost: true, gitDenyHost: ['*.corp.example'] },
      { HOARD_GIT_ALLOW_HOSTS: 'github.com *.corp.example' },
    );
    assert.equal(settings.implicitUpstreams, true);
    assert.deepEqual(settings.allowHosts, ['github.com', '*.corp.example']);
    srv = await inProcess(settings);
  });
  after(async () => {
    await srv?.close();
  });

  test('denied, not allowed and IP-literal hosts are 404 and start no git child', async () => {
    const before = gitChildren().spawned;
    for (const repo of [
      'git.corp.example/a/b.git', // allowed by a pattern, but denied: deny wins
      'gitlab.com/a/b.git', // not in the allow list
      'localhost.localhost/a/b', // always denied
      'metadata.internal/a/b',
      '169.254.169.254/latest/meta-data',
      '0x7f.1/a/b',
    ])
      assert.deepEqual(await probe(srv.url, repo), [404, 404, 404, 404], repo);
    assert.equal(gitChildren().spawned, before, 'no git child was spawned');
  });
});

describe('git upstream policy: resolution rules', () => {
  test('implicit mapping is off unless asked for; patterns; deny wins', () => {
    const mapped = [parseUpstreamSpec('local=file:///srv/git/')];
    assert.throws(() => new Upstreams(mapped).resolve('github.com/acme/app.git'), {
      code: 'HOARD_EUPSTREAM_UNKNOWN',
    });
    assert.equal(new Upstreams(mapped).resolve('local/app.git'), 'file:///srv/git/app.git');
    const any = new Upstreams([], { implicit: true });
    assert.equal(any.resolve('github.com/acme/app.git'), 'https://github.com/acme/app.git');
    for (const bad of ['x.localhost/a', '10.0.0.1/a', '1.2.3.4444/a', 'svc.internal/a'])
      assert.throws(() => any.resolve(bad), { code: 'HOARD_EUPSTREAM_UNKNOWN' }, bad);
    assert.throws(() => any.resolve('localhost/a/b'), { code: 'HOARD_EBAD_REQUEST' }); // no dot: not a host
    const some = new Upstreams([], {
      implicit: true,
      allowHosts: ['*.github.com', 'github.com'],
      denyHosts: ['evil.github.com'],
    });
    assert.equal(some.resolve('GitHub.com/a/b'), 'https://GitHub.com/a/b');
    assert.equal(some.resolve('a.b.github.com/a/b'), 'https://a.b.github.com/a/b');
    assert.throws(() => some.resolve('evil.github.com/a/b'), { code: 'HOARD_EUPSTREAM_UNKNOWN' });
    assert.throws(() => some.resolve('github.com.evil.example/a/b'), { code: 'HOARD_EUPSTREAM_UNKNOWN' });
    assert.throws(() => new Upstreams([], { implicit: true, allowHosts: ['a/b'] }), {
      code: 'HOARD_ECONFIG',
    });
  });

  test('config file: [git] allow-any-host, allow-hosts, deny-hosts', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.path, 'hoard.toml');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(
        file,
        '[git]\nallow-any-host = true\nallow-hosts = ["github.com"]\ndeny-hosts = ["x.y"]\n',
      );
      const s = await resolveGitSettings({ config: file }, {});
      assert.equal(s.implicitUpstreams, true);
      assert.deepEqual(s.allowHosts, ['github.com']);
      assert.deepEqual(s.denyHosts, ['x.y']);
      writeFileSync(file, '[git]\nallow-hosts = ["bad host"]\n');
      await assert.rejects(resolveGitSettings({ config: file }, {}), { code: 'HOARD_ECONFIG' });
    } finally {
      tmp.cleanup();
    }
  });
});

describe('git upstream policy: upstream errors stay in the log', () => {
  const tmp = tempDir();
  let server: ServerProcess;
  let http: Awaited<ReturnType<typeof startHttpUpstream>>;
  before(async () => {
    const root = join(tmp.path, 'hup');
    makeUpstream(root, 'app', 1);
    http = await startHttpUpstream(root, 0);
    server = await startServer(join(tmp.path, 'data'), ['--git-upstream', `h=${http.url}`]);
  });
  after(async () => {
    await server?.stop();
    await http?.close();
    tmp.cleanup();
  });

  test("a failed clone answers a generic message with a request id; the upstream's text is logged", async () => {
    const port = new URL(http.url).port;
    const res = await fetch(`${server.url}/git/h/missing.git/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 502);
    const body = await res.text();
    assert.match(body, /could not mirror h\/missing\.git: upstream fetch failed \(request id [^)]+\)/);
    assert.ok(!body.includes(port), `no upstream address in ${body}`);
    assert.ok(!/fatal|not found|127\.0\.0\.1/i.test(body), body);
    const id = res.headers.get('x-hoard-request-id');
    assert.ok(id && body.includes(id));
    const snap = await fetch(`${server.url}/git/h/missing.git/snapshot.tar.zst`);
    assert.equal(snap.status, 502);
    const snapBody = await snap.text();
    assert.ok(!snapBody.includes(port) && !/fatal/i.test(snapBody), snapBody);
    // The server's log reaches us through its stdout, after the answers: wait for the lines.
    await waitUntil(
      () => server.logs.some((l) => l.msg === 'git: mirror clone failed' && String(l.err).includes(port)),
      "the upstream's error text in the log",
    );
    await waitUntil(
      () => server.logs.some((l) => l.msg === 'git request failed' && l.reqId === id),
      'the failed request in the log, with its request id',
    );
  });
});
