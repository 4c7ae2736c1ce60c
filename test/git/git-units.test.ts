// Unit tests of the git proxy's pieces: repo paths and upstream mapping,
// pkt-line request heads, git child processes (timeouts, group kills).

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { resolveGitSettings } from '../../src/git/git-feature.ts';
import { runGit, spawnGit } from '../../src/git/git-process.ts';
import { pktLine, readRequestHead } from '../../src/git/pkt-line.ts';
import { parseRepoPath, parseUpstreamSpec, Upstreams } from '../../src/git/upstreams.ts';
import { waitUntil } from '../support/wait.ts';
import { tempDir } from './helpers/harness.ts';

/** Whether a process is alive (a killed process that nobody reaped yet is a zombie: not running). */
function isRunning(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

describe('upstreams', () => {
  test('repo paths: key without .git, strict validation', () => {
    assert.deepEqual(parseRepoPath('github.com/acme/app.git'), {
      path: 'github.com/acme/app.git',
      key: 'github.com/acme/app',
    });
    assert.deepEqual(parseRepoPath('gh/acme/app'), { path: 'gh/acme/app', key: 'gh/acme/app' });
    for (const bad of [
      'app',
      'a/../b',
      'a/-x',
      'a/.hidden',
      'a/b.git/c',
      'a//b',
      'a/b c',
      'a/x.lock',
      '/a/b',
    ])
      assert.throws(() => parseRepoPath(bad), { code: 'HOARD_EBAD_REQUEST' }, bad);
  });

  test('default https mapping and longest prefix wins', () => {
    const u = new Upstreams(
      [
        parseUpstreamSpec('local=file:///srv/git/'),
        parseUpstreamSpec('gh/acme=https://git.acme.test/mirror'),
      ],
      { implicit: true },
    );
    assert.equal(u.resolve('local/app.git'), 'file:///srv/git/app.git');
    assert.equal(u.resolve('gh/acme/app.git'), 'https://git.acme.test/mirror/app.git');
    assert.equal(u.resolve('github.com/acme/app.git'), 'https://github.com/acme/app.git');
    assert.throws(() => u.resolve('nohost/app.git'), { code: 'HOARD_EBAD_REQUEST' });
    assert.throws(() => parseUpstreamSpec('novalue'), { code: 'HOARD_ECONFIG' });
    assert.throws(() => parseUpstreamSpec('x=ftp://host/'), { code: 'HOARD_ECONFIG' });
    assert.equal(Upstreams.localPath('file:///srv/git/a%20b.git'), '/srv/git/a b.git');
  });
});

describe('pkt-line request head', () => {
  const a = 'a'.repeat(40);
  const b = 'b'.repeat(40);
  test('v0: wants up to the flush; the rest stays in the stream', async () => {
    const body = Buffer.concat([
      pktLine(`want ${a} multi_ack_detailed side-band-64k ofs-delta\n`),
      pktLine(`want ${b}\n`),
      Buffer.from('0000'),
      pktLine(`have ${'c'.repeat(40)}\n`),
      pktLine('done\n'),
    ]);
    const s = Readable.from([body.subarray(0, 7), body.subarray(7, 60), body.subarray(60)], {
      objectMode: false,
    });
    const head = await readRequestHead(s);
    assert.deepEqual(head.wants, [a, b]);
    assert.equal(head.complete, true);
    const rest: Buffer[] = [];
    for await (const c of s) rest.push(c as Buffer);
    assert.deepEqual(Buffer.concat([head.bytes, ...rest]), body);
  });

  test('v2: command and wants after the delimiter', async () => {
    const body = Buffer.concat([
      pktLine('command=fetch\n'),
      pktLine('agent=git/2.39\n'),
      Buffer.from('0001'),
      pktLine('thin-pack\n'),
      pktLine(`want ${a}\n`),
      pktLine(`have ${b}\n`),
      Buffer.from('0000'),
    ]);
    const head = await readRequestHead(Readable.from([body]));
    assert.equal(head.command, 'fetch');
    assert.deepEqual(head.wants, [a]);
  });

  test('a head larger than the cap is passed through unparsed', async () => {
    const body = Buffer.concat(Array.from({ length: 100 }, () => pktLine(`want ${a}\n`)));
    const head = await readRequestHead(Readable.from([body]), 256);
    assert.equal(head.complete, false);
  });
});

describe('git child processes', () => {
  test('runGit reports git failures as HOARD_EGIT with git’s message', async () => {
    await assert.rejects(
      runGit(['rev-parse', '--verify', 'nope'], { cwd: '/' }),
      (err: Error & { code: string }) => {
        assert.equal(err.code, 'HOARD_EGIT');
        assert.match(err.message, /not a git repository|fatal/);
        return true;
      },
    );
  });

  test('a timeout kills the whole process group, grandchildren included', async () => {
    const tmp = tempDir();
    try {
      const pidFile = join(tmp.path, 'pid');
      // A shell alias: git → sh → a background sleep (a grandchild).
      const g = spawnGit(['-c', `alias.slow=!sh -c 'sleep 30 & echo $! > ${pidFile}; wait'`, 'slow'], {
        timeoutMs: 500,
      });
      const exit = await g.done;
      assert.equal(exit.timedOut, true);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      // The group is killed at the timeout; the grandchild's end is seen once the kernel has delivered it.
      await waitUntil(() => !isRunning(pid), `grandchild ${pid} to end`);
    } finally {
      tmp.cleanup();
    }
  });

  test('an abort (client disconnect) kills the process group', async () => {
    const ac = new AbortController();
    const g = spawnGit(['-c', "alias.slow=!sh -c 'sleep 30'", 'slow'], { signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    const exit = await g.done;
    assert.equal(exit.aborted, true);
  });

  test('a niced child gets the nice value for its process and for its session’s autogroup', async () => {
    const tmp = tempDir();
    await runGit(['init', '--bare', '--quiet', tmp.path]);
    // `git cat-file --batch` in a repository waits on stdin: alive until stdin ends.
    const g = spawnGit(['cat-file', '--batch'], { cwd: tmp.path, stdin: true, nice: 19 });
    const plain = spawnGit(['cat-file', '--batch'], { cwd: tmp.path, stdin: true });
    try {
      assert.equal(getPriority(g.child.pid!), 19);
      assert.equal(getPriority(plain.child.pid!), getPriority());
      if (existsSync('/proc/self/autogroup'))
        // Without it, a nice value orders threads within the child's own session only.
        assert.match(readFileSync(`/proc/${g.child.pid}/autogroup`, 'utf8'), /nice 19$/m);
    } finally {
      g.child.stdin!.end();
      plain.child.stdin!.end();
      const exits = await Promise.all([g.done, plain.done]);
      tmp.cleanup();
      assert.deepEqual(
        exits.map((e) => e.code),
        [0, 0],
      );
    }
  });
});

describe('git settings', () => {
  test('flags > env > the [git] table of the config file; upstream mappings merged by name', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.path, 'hoard.toml');
      writeFileSync(
        file,
        '[server]\nlisten = "127.0.0.1:0"\n\n[git]\nmax_staleness = "30s"\nfetch_timeout = "5s"\nallow_push_through = true\n[git.upstreams]\na = "file:///srv/a"\nb = "https://b.example/git"\n',
      );
      const s = await resolveGitSettings(
        { config: file, gitMaxStaleness: '0', gitUpstream: ['b=file:///override'] },
        { HOARD_GIT_FETCH_TIMEOUT: '2s', HOARD_GIT_UPSTREAMS: 'c=file:///c' },
      );
      assert.equal(s.maxStalenessMs, 0);
      assert.equal(s.fetchTimeoutMs, 2000);
      assert.equal(s.allowPushThrough, true);
      assert.deepEqual(Object.fromEntries(s.upstreams.map((u) => [u.name, u.url])), {
        a: 'file:///srv/a',
        b: 'file:///override',
        c: 'file:///c',
      });
      const d = await resolveGitSettings({}, {});
      assert.deepEqual(d, {
        maxStalenessMs: 10_000,
        fetchTimeoutMs: 30_000,
        upstreams: [],
        allowPushThrough: false,
        implicitUpstreams: false,
        allowHosts: [],
        denyHosts: [],
      });
      await assert.rejects(resolveGitSettings({ gitMaxStaleness: 'soon' }, {}), { code: 'HOARD_ECONFIG' });
    } finally {
      tmp.cleanup();
    }
  });
});
