import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const HOARD = fileURLToPath(new URL('../../bin/hoard.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));

describe('hoard CLI', () => {
  it('--version prints the package version', async () => {
    const { stdout } = await run(process.execPath, [HOARD, '--version']);
    assert.equal(stdout.trim(), pkg.version);
  });

  it('--help lists the commands', async () => {
    const { stdout } = await run(process.execPath, [HOARD, '--help']);
    assert.match(stdout, /Usage: hoard/);
    assert.match(stdout, /fsck/);
  });

  it('an unknown command exits 1 with a message', async () => {
    await assert.rejects(
      run(process.execPath, [HOARD, 'frobnicate']),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /unknown command/);
        return true;
      },
    );
  });

  it('git restore refuses a --concurrency that is not a whole number ≥ 1', async () => {
    for (const bad of ['abc', '0', '2.5']) {
      await assert.rejects(
        run(process.execPath, [
          HOARD,
          'git',
          'restore',
          'http://127.0.0.1:1/git/x',
          '/nonexistent/x',
          '--concurrency',
          bad,
        ]),
        (e: { code: number; stderr: string }) => {
          assert.equal(e.code, 1);
          assert.match(e.stderr, /--concurrency/);
          return true;
        },
      );
    }
  });

  it('runs under an older system node by re-executing the pinned Node 24', {
    skip: !existsSync('/usr/bin/node'),
  }, async () => {
    const { stdout } = await run('/usr/bin/node', [HOARD, '--version']);
    assert.equal(stdout.trim(), pkg.version);
  });
});
