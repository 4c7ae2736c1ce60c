// The real ccache (Debian's package) against hoard: a small C project is
// compiled twice with the local cache wiped in between; the second build must
// be all remote hits by ccache's own statistics, and produce the same object
// files. Once per layout: subdirs (ccache's default) and flat against
// /ccache/, and bazel against /bazel/ (the Bazel feature keeps ccache's
// entries there). Then with a tokens file: credentials in the URL (HTTP Basic
// with the token as password) and ccache's bearer-token attribute.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { TestServer } from '../../server/helpers.ts';
import { hasCommand, startAuthServer, startCacheServer, TOKENS } from '../bazel/cache-server.ts';

const run = promisify(execFile);
const missing = ['ccache', 'gcc'].filter((c) => !hasCommand(c));
const skip = missing.length > 0 ? `needs ${missing.join(' and ')} (apt-get install ccache gcc)` : false;

const SOURCES: Record<string, string> = {
  'shapes.h': 'int area(int w, int h);\nint perimeter(int w, int h);\n',
  'area.c': '#include "shapes.h"\nint area(int w, int h) { return w * h; }\n',
  'perimeter.c': '#include "shapes.h"\nint perimeter(int w, int h) { return 2 * (w + h); }\n',
  'main.c':
    '#include <stdio.h>\n#include "shapes.h"\nint main(void) { printf("%d %d\\n", area(3, 4), perimeter(3, 4)); return 0; }\n',
};
const UNITS = ['area', 'perimeter', 'main'];

describe('ccache (real client) against hoard', { skip }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hoard-ccache-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Compiles the project with a fresh local cache; returns ccache's counters and the objects. */
  async function build(name: string, remote: string) {
    const src = join(dir, name, 'src');
    const local = join(dir, name, `local-${Math.random().toString(36).slice(2)}`);
    await mkdir(src, { recursive: true });
    for (const [f, text] of Object.entries(SOURCES)) await writeFile(join(src, f), text);
    const config = join(dir, name, 'ccache.conf');
    await writeFile(config, '');
    const env = {
      PATH: process.env.PATH,
      HOME: dir,
      CCACHE_CONFIGPATH: config,
      CCACHE_DIR: local,
      // A loaded test machine may take longer than ccache's 100 ms default to accept.
      CCACHE_REMOTE_STORAGE: `${remote}|connect-timeout=5000|operation-timeout=30000`,
    };
    const objects: Record<string, Buffer> = {};
    for (const unit of UNITS) {
      await run('ccache', ['gcc', '-c', `${unit}.c`, '-o', `${unit}.o`], { cwd: src, env });
      objects[unit] = await readFile(join(src, `${unit}.o`));
    }
    const { stdout } = await run('ccache', ['--print-stats'], { env });
    const stats: Record<string, number> = {};
    for (const line of stdout.split('\n')) {
      const [k, v] = line.split('\t');
      if (k && v !== undefined) stats[k] = Number(v);
    }
    await rm(local, { recursive: true, force: true }); // the local cache is wiped between builds
    return { stats, objects };
  }

  async function twice(name: string, remote: string) {
    const first = await build(name, remote);
    assert.equal(first.stats.remote_storage_error ?? 0, 0, JSON.stringify(first.stats));
    assert.equal(first.stats.remote_storage_hit ?? 0, 0);
    assert.ok(first.stats.remote_storage_write >= UNITS.length, JSON.stringify(first.stats));
    const second = await build(name, remote);
    assert.equal(second.stats.remote_storage_hit, UNITS.length, JSON.stringify(second.stats));
    assert.equal(second.stats.remote_storage_miss ?? 0, 0);
    assert.equal(second.stats.remote_storage_error ?? 0, 0);
    assert.equal(second.stats.cache_miss ?? 0, 0);
    assert.deepEqual(second.objects, first.objects);
  }

  describe('without a tokens file (loopback)', () => {
    let srv: TestServer;
    before(async () => {
      srv = await startCacheServer();
    });
    after(() => srv?.close());

    it('layout=subdirs (the default) against /ccache/: the rebuild is all remote hits', async () => {
      await twice('subdirs', `${srv.url}/ccache/`);
      const refs = await srv.server.ctx.refs.list('cache/ccache/');
      let n = 0;
      for await (const _ of refs) n++;
      // A result and a manifest per unit.
      assert.equal(n, UNITS.length * 2);
    });

    it('layout=flat against /ccache/ reads the same entries', async () => {
      // Same sources and flags as the subdirs build: flat finds its entries on the first build.
      const { stats } = await build('subdirs', `${srv.url}/ccache|layout=flat`);
      assert.equal(stats.remote_storage_hit, UNITS.length, JSON.stringify(stats));
    });

    it('layout=bazel against /bazel/: the rebuild is all remote hits', async () => {
      await twice('bazel', `${srv.url}/bazel|layout=bazel`);
    });
  });

  describe('with a tokens file', () => {
    let srv: TestServer;
    before(async () => {
      srv = await startAuthServer();
    });
    after(() => srv?.close());

    it('credentials in the URL (HTTP Basic, token as password) and the bearer-token attribute', async () => {
      const host = new URL(srv.url).host;
      const first = await build('auth', `http://ci:${TOKENS.ccache}@${host}/ccache/`);
      assert.equal(first.stats.remote_storage_error ?? 0, 0, JSON.stringify(first.stats));
      const second = await build('auth', `http://${host}/ccache/|bearer-token=${TOKENS.read}`);
      assert.equal(second.stats.remote_storage_hit, UNITS.length, JSON.stringify(second.stats));
      // Without credentials every request is refused: to ccache, errors, never hits.
      const none = await build('auth', `http://${host}/ccache/`);
      assert.equal(none.stats.remote_storage_hit ?? 0, 0);
      assert.ok(none.stats.remote_storage_error > 0 || none.stats.remote_storage_miss > 0);
    });
  });
});
