// `hoard git …`: client commands for the git proxy.

import type { Command } from 'commander';
import { registerGitRestore } from './git-restore.ts';

export function registerGit(program: Command): void {
  const git = program.command('git').description('git proxy client commands');
  registerGitRestore(git);
}
