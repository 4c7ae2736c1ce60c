// `hoard completion bash|zsh|fish`: the completion script for a shell,
// generated from this program's own commands and options.

import { type Command, InvalidArgumentError } from 'commander';
import { completionScript, SHELLS, type Shell } from '../completion.ts';
import { action } from '../output.ts';

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash: source <(hoard completion bash))')
    .argument('<shell>', `one of ${SHELLS.join(', ')}`, (v: string): Shell => {
      if (!(SHELLS as readonly string[]).includes(v))
        throw new InvalidArgumentError(`expected one of ${SHELLS.join(', ')}`);
      return v as Shell;
    })
    .action(
      action(async (shell: Shell) => {
        process.stdout.write(completionScript(program, shell));
        return 0;
      }),
    );
}
