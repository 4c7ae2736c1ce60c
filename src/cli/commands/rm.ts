// `hoard rm <remote> --ref R [--expect VERSION] [--json]`: delete a ref by
// compare-and-set; a stale --expect is a conflict (exit 3), nothing deleted.

import type { Command } from 'commander';
import { removeRef } from '../../library/history.ts';
import { action, printJson } from '../output.ts';

export function registerRm(program: Command): void {
  program
    .command('rm')
    .description('delete a ref (compare-and-set: only at the version read or given); blobs stay until gc')
    .argument('<remote>', 'remote URL')
    .requiredOption('--ref <name>', 'the ref to delete')
    .option('--expect <version>', 'delete only if the ref is still at this version (`hoard ls` shows it)')
    .option('--json', 'print the result as one JSON object {ref, target, version}')
    .action(
      action(
        async (remoteUrl: string, opts: { ref: string; expect?: string; json?: boolean }) => {
          const r = await removeRef({ remote: remoteUrl, ref: opts.ref, expect: opts.expect });
          if (opts.json) printJson(r);
          else process.stdout.write(`deleted ${r.ref} (was ${r.target})\n`);
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
