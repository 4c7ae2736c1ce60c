// `hoard ls <remote> [--prefix P] [--json]`: the refs of a remote with their
// targets; sync refs also show when they last changed, files and bytes.

import type { Command } from 'commander';
import { listRefs } from '../../library/history.ts';
import { action, formatBytes, printJson } from '../output.ts';

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list the refs of a remote (sync refs with last change, files and bytes)')
    .argument('<remote>', 'remote URL')
    .option('--prefix <prefix>', 'only refs whose names start with this')
    .option('--json', 'print the result as one JSON object {prefix, refs}')
    .action(
      action(
        async (remoteUrl: string, opts: { prefix?: string; json?: boolean }) => {
          const r = await listRefs({ remote: remoteUrl, prefix: opts.prefix });
          if (opts.json) printJson(r);
          else
            for (const ref of r.refs) {
              const sync =
                ref.kind === 'snapshot'
                  ? `  ${ref.updatedAt}  ${ref.files} file(s), ${formatBytes(ref.bytes ?? 0)}`
                  : '  (blob)';
              process.stdout.write(`${ref.name}  ${ref.target}  version ${ref.version}${sync}\n`);
            }
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
