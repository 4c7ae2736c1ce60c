// The real Bazel (Debian's bazel-bootstrap, offline) against hoard's
// /bazel HTTP cache: a build of two genrules, `bazel clean`, and the rebuild
// takes both actions from the remote cache. Then one output is evicted from
// hoard's store: the next clean rebuild runs that action again (a miss, not a
// broken hit) and still gets the other from the cache.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sha256 } from '../../../src/core/digest.ts';
import type { TestServer } from '../../server/helpers.ts';
import { hasCommand, startCacheServer } from './cache-server.ts';

const run = promisify(execFile);
const skip = hasCommand('bazel') ? false : 'needs bazel (apt-get install bazel-bootstrap)';

const BUILD = `
genrule(
    name = "hello",
    outs = ["hello.txt"],
    cmd = "echo hello-from-genrule > $@",
)
genrule(
    name = "pair",
    outs = ["a.txt", "b.txt"],
    cmd = "echo a > $(location a.txt); echo bb > $(location b.txt)",
)
`;

describe('bazel (real client) against hoard', { skip }, () => {
  let srv: TestServer;
  let dir: string;
  let ws: string;
  before(async () => {
    srv = await startCacheServer();
    dir = await mkdtemp(join(tmpdir(), 'hoard-bazel-'));
    ws = join(dir, 'ws');
    await mkdir(ws);
    await writeFile(join(ws, 'WORKSPACE'), '');
    await writeFile(join(ws, 'BUILD'), BUILD);
  });
  after(async () => {
    await bazel('shutdown').catch(() => {});
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * One Bazel command. One Bazel server serves them all (a JVM start per
   * command would triple the test's time); it is shut down after the test and
   * exits on its own if that is missed. HOME is the temp dir: no user rc file.
   */
  const bazel = async (...args: string[]) => {
    const startup = [`--output_user_root=${join(dir, 'root')}`, '--max_idle_secs=60'];
    const { stderr } = await run('bazel', [...startup, ...args], {
      cwd: ws,
      env: { PATH: process.env.PATH, HOME: dir },
      maxBuffer: 16 * 1024 * 1024,
    });
    return stderr;
  };
  const build = async () => {
    const out = await bazel(
      'build',
      `--remote_cache=${srv.url}/bazel`,
      '--spawn_strategy=local',
      '//:hello',
      '//:pair',
    );
    const m = /(\d+) remote cache hit/.exec(out);
    return { hits: m ? Number(m[1]) : 0, out };
  };

  it('a clean rebuild takes every action from the cache; an evicted output is a miss, not a broken hit', async () => {
    const first = await build();
    assert.equal(first.hits, 0, first.out);
    await bazel('clean');
    const second = await build();
    assert.equal(second.hits, 2, second.out);
    const hello = join(ws, 'bazel-bin', 'hello.txt');
    assert.equal(await readFile(hello, 'utf8'), 'hello-from-genrule\n');

    // Evict hello.txt's content from every tier; its action entry stays.
    assert.equal(await srv.server.ctx.blobs.delete(sha256('hello-from-genrule\n')), true);
    await bazel('clean');
    const third = await build();
    assert.equal(third.hits, 1, third.out);
    assert.equal(await readFile(hello, 'utf8'), 'hello-from-genrule\n');
    // The re-run uploaded the output again.
    assert.equal(await srv.server.ctx.blobs.has(sha256('hello-from-genrule\n')), true);
  });
});
