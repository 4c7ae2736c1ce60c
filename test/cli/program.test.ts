// The program loads only the command it runs: `hoard git restore` must not
// pay for the server (its RSS and start-up, issue 16), while --help, `help`,
// a mistyped command and `completion` still see every command.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildProgram } from '../../src/cli/program.ts';
import { hoard, tempDir } from '../sync/helpers.ts';

const argv = (...words: string[]) => ['node', 'hoard', ...words];
const names = async (words: string[]) => (await buildProgram(argv(...words))).commands.map((c) => c.name());

describe('lazily loaded commands', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let hook: string;
  before(async () => {
    tmp = await tempDir('hoard-program-');
    // Preloaded into a CLI process: lists every module it loaded, at exit.
    hook = join(tmp.dir, 'loaded.mjs');
    writeFileSync(
      hook,
      `import module from 'node:module';
const seen = [];
module.registerHooks({ load(url, ctx, next) { seen.push(url); return next(url, ctx); } });
process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(seen) + '\\n'));
`,
    );
  });
  after(() => tmp.cleanup());

  it('registers only the command named first', async () => {
    assert.deepEqual(await names(['git', 'restore', 'http://x/git/a/b', 'd']), ['git']);
    assert.deepEqual(await names(['push', '--help']), ['push']);
    assert.deepEqual(await names(['--version']), []);
  });

  it('registers every command for help, unknown words and completion', async () => {
    const all = await names([]);
    for (const n of ['push', 'pull', 'serve', 'git', 'cache', 'ls', 'completion'])
      assert.ok(all.includes(n), n);
    for (const words of [['--help'], ['help', 'push'], ['pus'], ['completion', 'bash'], ['--version', 'x']])
      assert.deepEqual(await names(words), all, words.join(' '));
  });

  it('a `git restore` process loads neither the server nor the other commands', async () => {
    const r = await hoard(['git', 'restore', '--help'], { nodeArgs: ['--import', hook] });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /restore a working clone/);
    const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '));
    assert.ok(line, r.stderr);
    const loaded = (JSON.parse(line.slice('LOADED '.length)) as string[]).filter(
      (u) => !u.startsWith('node:'),
    );
    assert.ok(loaded.some((u) => u.endsWith('/src/cli/commands/git-restore.ts')));
    for (const u of loaded) {
      assert.doesNotMatch(u, /\/src\/(server|sync|features)\/|\/node_modules\/fastify\//, u);
      assert.doesNotMatch(u, /\/src\/cli\/commands\/(serve|push|pull)\.ts$/, u);
    }
  });

  it('`hoard pus` still suggests push, and --help lists every command', async () => {
    const typo = await hoard(['pus']);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /Did you mean push\?/);
    const help = await hoard(['--help']);
    assert.equal(help.code, 0);
    for (const n of ['push', 'serve', 'git', 'completion'])
      assert.match(help.stdout, new RegExp(`\\n  ${n} `));
  });
});
