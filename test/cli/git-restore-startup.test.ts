// What `hoard git restore` loads (issue 16: start-up is a fixed part of every
// restore): not undici (its WebAssembly parser compiled at the first request
// was ≈ 150 ms of a restore; the command uses the node:http transport), not
// node:http2 or TLS, and not the snapshot generator. A preload records every
// module the CLI process loads; the restore is pointed at a closed port, so
// the process loads exactly what a restore loads up to its first request,
// and stops there.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const BIN = join(import.meta.dirname, '../../bin/hoard.js');

/** Preload: every module URL the process loads, and its built-ins, written at exit. */
const PRELOAD = `
import module from 'node:module';
import { writeFileSync } from 'node:fs';
const urls = [];
module.registerHooks({ load(url, ctx, next) { urls.push(url); return next(url, ctx); } });
process.on('exit', () => writeFileSync(process.env.HOARD_TEST_MODULES, JSON.stringify({
  urls, builtins: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),
})));
`;

describe('hoard git restore: start-up', () => {
  let dir: string;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoard-restore-startup-'));
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads neither undici, node:http2, TLS nor the snapshot generator', () => {
    const out = join(dir, 'modules.json');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        `data:text/javascript,${encodeURIComponent(PRELOAD)}`,
        BIN,
        'git',
        'restore',
        `http://127.0.0.1:${port}/git/example.com/a/b`,
        join(dir, 'ws'),
      ],
      {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, HOARD_TEST_MODULES: out, HOARD_TOKEN: '' },
      },
    );
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /cannot reach .*ECONNREFUSED/, 'it got as far as its first request');
    const { urls, builtins } = JSON.parse(readFileSync(out, 'utf8')) as {
      urls: string[];
      builtins: string[];
    };
    assert.ok(
      urls.some((u) => u.endsWith('/src/git/restore.ts')),
      'the restore module was loaded',
    );
    assert.ok(
      urls.some((u) => u.endsWith('/src/http/node-http-transport.ts')),
      'the node:http transport was loaded',
    );
    assert.deepEqual(
      urls.filter((u) => u.includes('/node_modules/undici/')),
      [],
      'undici is not loaded',
    );
    assert.deepEqual(
      urls.filter((u) => /\/src\/git\/snapshot-(archive|anchor)\.ts$/.test(u)),
      [],
      'the snapshot generator is not loaded',
    );
    for (const m of ['http2', 'tls', 'internal/deps/undici/undici'])
      assert.ok(!builtins.includes(m), `built-in ${m} is not loaded`);
  });
});
