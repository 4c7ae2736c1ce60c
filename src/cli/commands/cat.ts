// `hoard cat <remote> <ref>:<path>`: one file of a version to stdout,
// streamed and verified.

import type { Command } from 'commander';
import { catFile } from '../../sync/cat-file.ts';
import { action } from '../output.ts';
import { withRemote } from '../with-remote.ts';

export function registerCat(program: Command): void {
  program
    .command('cat')
    .description('write one file of a version to stdout (streamed, verified against its digest)')
    .argument('<remote>', 'remote URL')
    .argument('<version:path>', '<ref>:<path>, <ref>~N:<path> or sha256:<hex>:<path>')
    .action(
      action(async (remoteUrl: string, spec: string) => {
        await withRemote(remoteUrl, (remote) => catFile({ remote, spec, out: process.stdout }));
        return 0;
      }),
    );
}
