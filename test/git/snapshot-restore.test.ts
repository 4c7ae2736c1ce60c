import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { isHoardError } from '../../src/core/errors.ts';
import { gitRestore } from '../../src/git/restore.ts';
import { type Entry, GIT_ENV, git, makeTar, makeUpstream, zst } from '../archive/helpers.ts';
import { type SnapshotTestServer, startSnapshotServer } from '../archive/snapshot-server.ts';

const execFileP = promisify(execFile);
const HOARD = join(import.meta.dirname, '..', '..', 'bin', 'hoard.js');

async function hoard(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return hoardWith({}, ...args);
}

async function hoardWith(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [HOARD, ...args], { env: { ...GIT_ENV, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('hoard git restore', () => {
  let root: string;
  let work: string;
  let bare: string;
  let srv: SnapshotTestServer;
  let url: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-restore-'));
    work = await makeUpstream(root);
    bare = join(root, 'upstreams', 'app.git');
    await git(root, 'clone', '-q', '--bare', work, bare);
    srv = await startSnapshotServer({ upstreams: { up: `file://${join(root, 'upstreams')}` } });
    url = `${srv.url}/git/up/app.git`;
  });
  after(async () => {
    await srv?.close();
    await rm(root, { recursive: true, force: true });
  });

  function pushCommit(msg: string): string {
    execFileSync('sh', ['-c', `printf '%s\\n' "${msg}" > CHANGES`], { cwd: work });
    execFileSync('git', ['add', '-A'], { cwd: work, env: GIT_ENV });
    execFileSync('git', ['commit', '-qm', msg], { cwd: work, env: GIT_ENV });
    execFileSync('git', ['push', '-q', bare, 'HEAD:main'], { cwd: work, env: GIT_ENV });
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: work, encoding: 'utf8' }).trim();
  }

  it('restores a clean work tree at the current commit; log and fetch work through the proxy', async () => {
    const dest = join(root, 'ws1');
    // GIT_TRACE reaches restore's git children (src/git/git-process.ts keeps GIT_TRACE*): which ran.
    const trace = join(root, 'ws1.trace');
    const r = await hoardWith({ GIT_TRACE: trace }, 'git', 'restore', url, dest, '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out).sort(), [
      'bytes',
      'commit',
      'durationMs',
      'fetchedAfterRestore',
      'snapshot',
      'steps',
    ]);
    // The profile: every step, in order, within the whole.
    const order = ['head', 'gitDir', 'extracted', 'indexed', 'verified', 'checkedOut', 'done'];
    for (const [i, step] of order.entries()) {
      assert.ok(Number.isInteger(out.steps[step]), `step ${step}: ${JSON.stringify(out.steps)}`);
      if (i > 0) assert.ok(out.steps[step] >= out.steps[order[i - 1]], JSON.stringify(out.steps));
    }
    assert.ok(out.steps.fetched <= out.steps.checkedOut && out.steps.done <= out.durationMs);
    const upstreamHead = await git(bare, 'rev-parse', 'main');
    assert.equal(out.commit, upstreamHead);
    assert.match(out.snapshot, /^sha256:[0-9a-f]{64}$/);
    assert.ok(out.bytes > 0);
    assert.equal(out.fetchedAfterRestore, true);
    assert.equal(await git(dest, 'status', '--porcelain'), '');
    assert.equal(await git(dest, 'rev-parse', 'HEAD'), upstreamHead);
    assert.equal(await git(dest, 'symbolic-ref', '--short', 'HEAD'), 'main');
    assert.equal(await git(dest, 'rev-parse', '--abbrev-ref', 'main@{upstream}'), 'origin/main');
    assert.equal(await git(dest, 'symbolic-ref', 'refs/remotes/origin/HEAD'), 'refs/remotes/origin/main');
    assert.equal(
      await git(dest, 'rev-list', '--count', 'HEAD'),
      await git(bare, 'rev-list', '--count', 'main'),
    );
    assert.match(await git(dest, 'log', '--oneline', '-3'), /submodule/);
    assert.equal(await git(dest, 'remote', 'get-url', 'origin'), url);
    // The fetch found the branch where the snapshot is: no `git checkout` (restore wrote the
    // branch, HEAD, tracking config and origin/HEAD itself), and the checks above hold.
    const ran: string[] = (await readFile(trace, 'utf8')).match(/built-in: git [a-z-]+/g) ?? [];
    assert.ok(ran.includes('built-in: git fetch'), ran.join());
    assert.ok(!ran.includes('built-in: git checkout'), ran.join());
    assert.equal(await readlink(join(dest, 'src-link')), 'src');
    // The snapshot's commit-graph came along (the fetch's connectivity walk reads it), valid
    // for the objects, and the repository checks clean with it.
    assert.ok((await stat(join(dest, '.git/objects/info/commit-graph'))).isFile());
    await git(dest, 'commit-graph', 'verify');
    await git(dest, 'fsck', '--no-dangling');
    // Nothing left next to it.
    assert.deepEqual(
      (await readdir(root)).filter((n) => n.includes('hoard-restore')),
      [],
    );
    // git fetch through the proxy sees a new upstream commit.
    const next = pushCommit('after restore');
    await git(dest, 'pull', '-q', '--ff-only');
    assert.equal(await git(dest, 'rev-parse', 'HEAD'), next);
    assert.equal(await git(dest, 'status', '--porcelain'), '');
  });

  it('fetches what the snapshot lacks (a commit landing during the download)', async () => {
    const dest = join(root, 'ws2');
    let landed = '';
    const r = await gitRestore({
      url,
      dir: dest,
      rangeBytes: 1024,
      concurrency: 1,
      onStart: () => {
        landed = pushCommit('lands during the download');
      },
    });
    assert.notEqual(r.snapshotCommit, landed);
    assert.equal(r.commit, landed);
    assert.equal(r.fetchedAfterRestore, true);
    assert.equal(await git(dest, 'rev-parse', 'HEAD'), landed);
    assert.equal(await git(dest, 'status', '--porcelain'), '');
  });

  it('restores a tag (detached) and another branch', async () => {
    const first = await git(bare, 'rev-list', '--max-parents=0', 'main');
    await git(bare, 'tag', 'v0', first);
    await git(bare, 'branch', 'release', first);
    const t = join(root, 'ws-tag');
    const rt = await gitRestore({ url, dir: t, ref: 'v0' });
    assert.equal(rt.commit, first);
    assert.equal(await git(t, 'status', '--porcelain'), '');
    const b = join(root, 'ws-branch');
    const rb = await gitRestore({ url, dir: b, ref: 'release' });
    assert.equal(rb.commit, first);
    assert.equal(await git(b, 'symbolic-ref', '--short', 'HEAD'), 'release');
    assert.equal(await git(b, 'status', '--porcelain'), '');
  });

  it('fails clearly for an unknown ref and a non-empty directory, creating nothing', async () => {
    const dest = join(root, 'ws-missing');
    const r = await hoard('git', 'restore', url, dest, '--ref', 'no-such-branch');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /not found/);
    await assert.rejects(readdir(dest));
    const full = join(root, 'ws-full');
    await mkdir(full);
    await writeFile(join(full, 'x'), 'x');
    const r2 = await hoard('git', 'restore', url, full);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /not empty/);
  });
});

describe('hoard git restore against a hostile server', () => {
  let root: string;
  let server: Server;
  let base: string;
  let archive: Buffer = Buffer.alloc(0);
  let etagOverride: string | undefined;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-restore-evil-'));
    server = createServer((req, res) => {
      const hex = createHash('sha256').update(archive).digest('hex');
      const etag = etagOverride ?? `"${hex}"`;
      if (req.url?.endsWith('/snapshot.tar.zst')) {
        res.writeHead(200, {
          etag,
          'content-location': `/v1/blobs/sha256/${hex}`,
          'x-hoard-commit': 'a'.repeat(40),
          'content-length': archive.byteLength,
        });
        res.end(req.method === 'HEAD' ? undefined : archive);
        return;
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const s = Number(m?.[1] ?? 0);
      const e = Math.min(archive.byteLength - 1, Number(m?.[2] ?? archive.byteLength - 1));
      res.writeHead(206, {
        etag,
        'content-range': `bytes ${s}-${e}/${archive.byteLength}`,
        'content-length': e - s + 1,
      });
      res.end(archive.subarray(s, e + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/git/evil/repo`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(root, { recursive: true, force: true });
  });

  const cases: [string, Entry[]][] = [
    ['an entry ../x', [{ name: '../x', body: 'pwned' }]],
    ['an absolute path', [{ name: '/tmp/hoard-evil-absolute', body: 'pwned' }]],
    [
      'a symlink to /etc followed by a file through it',
      [
        { name: 'etc', type: 'symlink', linkname: '/etc' },
        { name: 'etc/hoard-evil', body: 'pwned' },
      ],
    ],
  ];
  for (const [what, entries] of cases) {
    it(`refuses ${what} and writes nothing outside the staging dir`, async () => {
      archive = zst(await makeTar(entries));
      etagOverride = undefined;
      const parent = join(root, `p-${what.replace(/\W+/g, '-')}`);
      await mkdir(parent);
      await assert.rejects(gitRestore({ url: base, dir: join(parent, 'ws'), noFetch: true }), (e) => {
        assert.ok(isHoardError(e, 'HOARD_EARCHIVE_UNSAFE'), String(e));
        return true;
      });
      assert.deepEqual(await readdir(parent), [], 'no target dir, no staging dir left');
      await assert.rejects(readdir('/tmp/hoard-evil-absolute'));
      await assert.rejects(readdir('/etc/hoard-evil'));
    });
  }

  it('refuses bytes that do not match the digest', async () => {
    archive = zst(await makeTar([{ name: 'ok.txt', body: 'fine' }]));
    etagOverride = `"${'0'.repeat(64)}"`;
    const parent = join(root, 'p-digest');
    await mkdir(parent);
    await assert.rejects(gitRestore({ url: base, dir: join(parent, 'ws'), noFetch: true }), (e) =>
      isHoardError(e, 'HOARD_EDIGEST_MISMATCH'),
    );
    assert.deepEqual(await readdir(parent), []);
  });

  it('the extractor CLI message is clear', async () => {
    archive = zst(await makeTar([{ name: '../x', body: 'pwned' }]));
    etagOverride = undefined;
    const r = await hoard('git', 'restore', base, join(root, 'cli-ws'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unsafe archive entry "\.\.\/x".*HOARD_EARCHIVE_UNSAFE/);
  });
});
