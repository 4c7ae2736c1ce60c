// `hoard cat <remote> <ref>:<path>`: one file of a version to stdout,
// streamed and verified.

import type { Command } from 'commander';
import { catFile } from '../../library/history.ts';
import { action } from '../output.ts';

export function registerCat(program: Command): void {
  program
    .command('cat')
    .description('write one file of a version to stdout (streamed, verified against its digest)')
    .argument('<remote>', 'remote URL')
    .argument('<version:path>', '<ref>:<path>, <ref>~N:<path> or sha256:<hex>:<path>')
    .action(
      action(async (remoteUrl: string, spec: string) => {
        await catFile({ remote: remoteUrl, spec, out: process.stdout });
        return 0;
      }),
    );
}
