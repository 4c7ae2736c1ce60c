// Shell completion generated from the program definition: each shell's
// script names every command and every option of every command (read from
// the same commander program, so a new option without completion fails
// here); the scripts parse in their shell; bash completes for real.
// Also: --help ends with the exit codes and the environment (HOARD_TOKEN),
// and marks required options.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { hoard, tempDir } from '../sync/helpers.ts';

function commands(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  return [{ path, cmd }, ...cmd.commands.flatMap((c) => commands(c, [...path, c.name()]))];
}

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

const program = await buildProgram();

describe('shell completion', () => {
  const scripts: Record<string, string> = {};
  let tmp: { dir: string; cleanup: () => Promise<void> };
  const all = commands(program);
  before(async () => {
    tmp = await tempDir('hoard-completion-');
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await hoard(['completion', shell]);
      assert.equal(r.code, 0, r.stderr);
      scripts[shell] = r.stdout;
      writeFileSync(join(tmp.dir, `hoard.${shell}`), r.stdout);
    }
  });
  after(() => tmp.cleanup());

  it('the program has the commands of issue 18', () => {
    const names = all.map((c) => c.path.join(' '));
    for (const n of ['push', 'pull', 'status', 'ls', 'log', 'diff', 'cat', 'rm', 'completion', 'git restore'])
      assert.ok(names.includes(n), n);
  });

  for (const shell of ['bash', 'zsh', 'fish']) {
    it(`${shell}: names every command and every option`, () => {
      const s = scripts[shell];
      for (const { path, cmd } of all) {
        if (path.length > 0)
          assert.match(s, new RegExp(`\\b${path.at(-1)}\\b`), `${shell}: ${path.join(' ')}`);
        for (const o of cmd.options) {
          const long = o.long!.replace(/^--/, '');
          // fish writes `-l name`, the others `--name`.
          const form = shell === 'fish' ? `-l ${long}` : `--${long}`;
          assert.ok(s.includes(form), `${shell}: ${path.join(' ') || 'hoard'} ${o.long}`);
        }
      }
    });
  }

  it('bash: the script parses and completes commands, subcommands, options and files', () => {
    const file = join(tmp.dir, 'hoard.bash');
    execFileSync('bash', ['-n', file]);
    const complete = (...words: string[]) =>
      execFileSync(
        'bash',
        [
          '-c',
          `source ${file}; cd ${tmp.dir}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _hoard; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: 'utf8' },
      )
        .split('\n')
        .filter(Boolean);
    assert.deepEqual(complete('hoard', 'st'), ['status']);
    assert.deepEqual(complete('hoard', 'git', 'r'), ['restore']);
    assert.deepEqual(complete('hoard', 'pull', '--ref', 'x', '--ex'), ['--exact']);
    assert.deepEqual(complete('hoard', 'push', '--skip'), ['--skip-changing']);
    assert.deepEqual(complete('hoard', 'push', 'hoard.b'), ['hoard.bash']);
  });

  it('zsh and fish: the scripts parse', (t) => {
    for (const shell of ['zsh', 'fish']) {
      if (!has(shell)) {
        t.diagnostic(`${shell} is not installed here: its script was checked for names only`);
        continue;
      }
      const r = spawnSync(shell, ['-n', join(tmp.dir, `hoard.${shell}`)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${shell} -n: ${r.stderr}`);
    }
    if (has('fish')) {
      const out = execFileSync(
        'fish',
        [
          '-c',
          `source ${join(tmp.dir, 'hoard.fish')}; complete -C 'hoard pu'; complete -C 'hoard git re'; complete -C 'hoard pull --ex'`,
        ],
        { encoding: 'utf8' },
      );
      assert.deepEqual(
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t')[0]),
        ['pull', 'push', 'restore', '--exact'],
      );
    }
  });

  it('an unknown shell is a usage error', async () => {
    const r = await hoard(['completion', 'tcsh']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /expected one of bash, zsh, fish/);
  });
});

describe('--help', () => {
  it('shows exit codes, HOARD_TOKEN and which options are required', async () => {
    const r = await hoard(['rm', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--ref <name>\s+\(required\) the ref to delete/);
    assert.match(
      r.stdout,
      /Exit codes:\n {2}0 {2}success\n {2}1 {2}error.*\n {2}2 {2}ref or version not found.*\n {2}3 {2}conflict.*\n {2}4 {2}no space left/,
    );
    assert.match(r.stdout, /HOARD_TOKEN +bearer token/);
    const top = await hoard(['--help']);
    assert.match(top.stdout, /Exit codes:/);
    assert.match(top.stdout, /HOARD_REMOTE/);
  });
});
