// The `hoard` program definition: one commander program, one file per
// command under commands/ (main.ts parses argv with it; the completion
// scripts and their test read it).

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerCache } from './commands/cache.ts';
import { registerCat } from './commands/cat.ts';
import { registerCompletion } from './commands/completion.ts';
import { registerDiff } from './commands/diff.ts';
import { registerFsck } from './commands/fsck.ts';
import { registerGc } from './commands/gc.ts';
import { registerGit } from './commands/git.ts';
import { registerLog } from './commands/log.ts';
import { registerLs } from './commands/ls.ts';
import { registerPull } from './commands/pull.ts';
import { registerPush } from './commands/push.ts';
import { registerRm } from './commands/rm.ts';
import { registerServe } from './commands/serve.ts';
import { registerStatus } from './commands/status.ts';
import { configureHelp } from './help.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Commands that look at and edit history: ls, log, diff, cat, rm. */
function registerHistoryCommands(program: Command): void {
  registerLs(program);
  registerLog(program);
  registerDiff(program);
  registerCat(program);
  registerRm(program);
}

export function buildProgram(): Command {
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
  registerFsck(program);
  registerPush(program);
  registerPull(program);
  registerStatus(program);
  registerServe(program);
  registerGc(program);
  registerGit(program);
  registerCache(program);
  registerHistoryCommands(program);
  registerCompletion(program);
  return program;
}
