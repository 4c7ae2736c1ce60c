import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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

  describe('remote arguments', () => {
    let work: string;
    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'hoard-cli-'));
      await mkdir(join(work, 'src'));
      await writeFile(join(work, 'src', 'a.txt'), 'a');
    });
    after(() => rm(work, { recursive: true, force: true }));

    /** Runs hoard in `work`, so a relative folder it wrongly created would show up there. */
    const inWork = (args: string[]) =>
      run(process.execPath, [HOARD, ...args], { cwd: work }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );

    it('a scheme-less host:port is a usage error with a hint and creates nothing', async () => {
      for (const remote of ['127.0.0.1:7777', 'localhost:7777']) {
        const res = await inWork(['push', 'src', remote, '--ref', 'x']);
        assert.equal(res.code, 1, res.stderr);
        assert.match(res.stderr, /has no scheme \[HOARD_EREMOTE_URL\]/);
        assert.match(res.stderr, new RegExp(`did you mean http://${remote.replaceAll('.', '\\.')}\\?`));
        const pulled = await inWork(['pull', remote, 'dest', '--ref', 'x']);
        assert.equal(pulled.code, 1, pulled.stderr);
      }
      assert.deepEqual((await readdir(work)).sort(), ['src']);
    });

    it('a bare folder name is refused; ./name is a file:// remote that push creates', async () => {
      const bare = await inWork(['push', 'src', 'store', '--ref', 'x']);
      assert.equal(bare.code, 1, bare.stderr);
      assert.match(bare.stderr, /\.\/store/);
      assert.deepEqual((await readdir(work)).sort(), ['src']);
      const ok = await inWork(['push', 'src', './store', '--ref', 'x', '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(existsSync(join(work, 'store', 'refs', 'x')));
      await rm(join(work, 'store'), { recursive: true });
    });

    it('reading a file:// store that does not exist fails and creates nothing', async () => {
      const missing = join(work, 'no-such-store');
      for (const args of [
        ['pull', `file://${missing}`, 'dest', '--ref', 'x'],
        ['pull', missing, 'dest', '--ref', 'x'],
        ['fsck', `file://${missing}`],
      ]) {
        const res = await inWork(args);
        assert.equal(res.code, 1, `${args.join(' ')}: ${res.stderr}`);
        assert.match(res.stderr, /no hoard store at .*does not exist/);
      }
      assert.deepEqual((await readdir(work)).sort(), ['src']);
    });
  });
});
