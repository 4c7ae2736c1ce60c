// Every command that talks HTTP reports an unreachable server the same way,
// because they all go through src/http/http-client.ts: the URL, the cause
// and a hint, with HOARD_EUNAVAILABLE — never "fetch failed [HOARD_EINTERNAL]".

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const BIN = join(import.meta.dirname, '../../bin/hoard.js');

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('an unreachable server', () => {
  let dir: string;
  let base: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoard-unreachable-'));
    base = `http://127.0.0.1:${await closedPort()}`;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const commands: [string, () => string[]][] = [
    ['pull', () => ['pull', base, join(dir, 'pulled'), '--ref', 'x']],
    ['ls', () => ['ls', base]],
    ['git restore', () => ['git', 'restore', `${base}/git/example.com/a/b`, join(dir, 'restored')]],
  ];
  for (const [name, args] of commands)
    it(`${name}: names the URL, the cause and a hint`, () => {
      const r = spawnSync(process.execPath, [BIN, ...args()], {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, HOARD_TOKEN: '' },
      });
      assert.equal(r.status, 1, r.stderr);
      assert.ok(r.stderr.includes(`cannot reach ${base}`), r.stderr);
      assert.match(r.stderr, /ECONNREFUSED/);
      assert.match(r.stderr, /\[HOARD_EUNAVAILABLE\]/);
      assert.match(r.stderr, /hint: is a hoard server running at/);
      assert.doesNotMatch(r.stderr, /HOARD_EINTERNAL|fetch failed/);
    });
});
