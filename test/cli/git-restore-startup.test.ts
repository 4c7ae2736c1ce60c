// What `hoard git restore` loads (issue 16: start-up is a fixed part of every
// restore): not undici (its WebAssembly parser compiled at the first request
// was ≈ 150 ms of a restore; the command uses the node:http transport), not
// node:http2 or TLS, and not the snapshot generator. A preload records every
// module the CLI process loads; the restore is pointed at a closed port, so
// the process loads exactly what a restore loads up to its first request,
// and stops there.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closedPort, runRecordingModules } from '../support/loaded-modules.ts';

describe('hoard git restore: start-up', () => {
  let dir: string;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoard-restore-startup-'));
    port = await closedPort();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads neither undici, node:http2, TLS nor the snapshot generator', () => {
    const { status, stderr, urls, builtins } = runRecordingModules(
      ['git', 'restore', `http://127.0.0.1:${port}/git/example.com/a/b`, join(dir, 'ws')],
      dir,
      join(dir, 'modules.json'),
    );
    assert.equal(status, 1, stderr);
    assert.match(stderr, /cannot reach .*ECONNREFUSED/, 'it got as far as its first request');
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
