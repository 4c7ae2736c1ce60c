// `hoard ls [remote] [--prefix P] [--json]`: the refs of a remote with their
// targets; sync refs also show when they last changed, files and bytes. The
// remote defaults as for push (HOARD_REMOTE, then hoard.toml).

import type { Command } from 'commander';
import { listRefs } from '../../library/history.ts';
import { action, formatBytes, printJson } from '../output.ts';
import { resolveRemoteTarget } from '../project-config.ts';

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list the refs of a remote (sync refs with last change, files and bytes)')
    .argument('[remote]', 'remote URL (default: HOARD_REMOTE, else hoard.toml)')
    .option('--prefix <prefix>', 'only refs whose names start with this')
    .option('--json', 'print the result as one JSON object {prefix, refs}')
    .action(
      action(
        async (remoteArg: string | undefined, opts: { prefix?: string; json?: boolean }) => {
          const t = await resolveRemoteTarget({ remote: remoteArg });
          const r = await listRefs({ remote: t.remote, prefix: opts.prefix });
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
