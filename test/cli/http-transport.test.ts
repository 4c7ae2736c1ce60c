// The CLI's short-lived commands send their requests through node:http, not
// undici (src/cli/main.ts): undici, its WebAssembly parser, node:http2 and
// TLS are never loaded by a push, pull, status, cache restore or ls against
// an http:// remote. Each is pointed at a closed port, so the process loads
// what the command loads up to its first request and stops there.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closedPort, runRecordingModules } from '../support/loaded-modules.ts';

describe('the CLI over http(s): node:http, not undici', () => {
  let dir: string;
  let remote: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoard-cli-transport-'));
    mkdirSync(join(dir, 'folder'));
    writeFileSync(join(dir, 'folder', 'a.txt'), 'a');
    remote = `http://127.0.0.1:${await closedPort()}`;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const commands: [string, string[]][] = [
    ['push', ['push', 'folder', 'REMOTE', '--ref', 'team/x']],
    ['pull', ['pull', 'REMOTE', 'folder', '--ref', 'team/x']],
    ['status', ['status', 'folder', 'REMOTE', '--ref', 'team/x']],
    ['cache restore', ['cache', 'restore', 'k', 'folder', '--remote', 'REMOTE']],
    ['ls', ['ls', 'REMOTE']],
  ];
  for (const [name, args] of commands) {
    it(name, () => {
      const argv = args.map((a) => (a === 'REMOTE' ? remote : a));
      const r = runRecordingModules(argv, dir, join(dir, `${name.replace(' ', '-')}.json`));
      assert.notEqual(r.status, 0, r.stderr);
      assert.match(r.stderr, /cannot reach .*ECONNREFUSED/, 'it got as far as its first request');
      assert.ok(
        r.urls.some((u) => u.endsWith('/src/http/node-http-transport.ts')),
        'the node:http transport was loaded',
      );
      assert.deepEqual(
        r.urls.filter((u) => u.includes('/node_modules/undici/')),
        [],
        'undici is not loaded',
      );
      for (const m of ['http2', 'tls', 'internal/deps/undici/undici'])
        assert.ok(!r.builtins.includes(m), `built-in ${m} is not loaded`);
    });
  }
});
