// The `hoard` program definition: one commander program, one file per
// command under commands/ (main.ts parses argv with it; the completion
// scripts and their test read it).
//
// Command modules are loaded lazily: a process that runs one command loads
// only that command's module (buildProgram(argv) registers it alone), so
// `hoard git restore` does not pay for `serve`'s server, features and
// settings schema (≈ 25 MiB of RSS and a third of the start-up, issue 16).
// Whenever the command word is not a known command at argv[2] (`--help`,
// `help push`, a typo that deserves a suggestion, `completion` which reads
// the whole tree), every command is registered, in the order of COMMANDS,
// which is the order of `hoard --help`.

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { configureHelp } from './help.ts';

type Register = (program: Command) => void;

/** Every top-level command: its name and how to load its registration. */
const COMMANDS: [name: string, load: () => Promise<Register>][] = [
  ['fsck', async () => (await import('./commands/fsck.ts')).registerFsck],
  ['push', async () => (await import('./commands/push.ts')).registerPush],
  ['pull', async () => (await import('./commands/pull.ts')).registerPull],
  ['status', async () => (await import('./commands/status.ts')).registerStatus],
  ['serve', async () => (await import('./commands/serve.ts')).registerServe],
  ['gc', async () => (await import('./commands/gc.ts')).registerGc],
  ['git', async () => (await import('./commands/git.ts')).registerGit],
  ['cache', async () => (await import('./commands/cache.ts')).registerCache],
  // History: ls, log, diff, cat, rm.
  ['ls', async () => (await import('./commands/ls.ts')).registerLs],
  ['log', async () => (await import('./commands/log.ts')).registerLog],
  ['diff', async () => (await import('./commands/diff.ts')).registerDiff],
  ['cat', async () => (await import('./commands/cat.ts')).registerCat],
  ['rm', async () => (await import('./commands/rm.ts')).registerRm],
  ['completion', async () => (await import('./commands/completion.ts')).registerCompletion],
];

/** Commands that need the whole program even when named first. */
const NEEDS_ALL = new Set(['completion']);

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/**
 * The program; with `argv` (process.argv), only the command it names when
 * that is a known command (see the header), else every command.
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const word = argv?.[2];
  const one = COMMANDS.find(([name]) => name === word && !NEEDS_ALL.has(name));
  // `hoard --version` alone needs no command at all.
  const version = argv?.length === 3 && (word === '--version' || word === '-V');
  const chosen = version ? [] : one ? [one] : COMMANDS;
  const registers = await Promise.all(chosen.map(([, load]) => load()));
  const program = new Command();
  program
    .name('hoard')
    .description('content-addressed cache and sync for build and CI infrastructure')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .exitOverride((err) => {
      // Usage errors exit 1 like every other error; help/version exit 0.
      process.exit(err.exitCode === 0 ? 0 : 1);
    });
  configureHelp(program);
  for (const register of registers) register(program);
  return program;
}
