// `hoard pull <remote> <dir> --ref <name> [--json] [--force]`

import type { Command } from 'commander';
import { openRemote } from '../../remote/remote.ts';
import { pull } from '../../sync/pull.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { createProgress } from '../progress.ts';

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('bring a directory to a remote ref, downloading only what it lacks')
    .argument(
      '<remote>',
      'remote URL (file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, http(s)://host:port)',
    )
    .argument('<dir>', 'directory to write (created if missing)')
    .requiredOption('--ref <name>', 'ref to read, e.g. team/app/main')
    .option('--json', 'print the result as one JSON object')
    .option('--force', 'on conflicts, overwrite local edits with the remote versions')
    .action(
      action(
        async (remoteUrl: string, dir: string, opts: { ref: string; json?: boolean; force?: boolean }) => {
          // A CLI process: nothing else waits on its event loop (see OpenRemoteOptions).
          const remote = await openRemote(remoteUrl, { blockingReads: true });
          try {
            const r = await pull({
              dir,
              remote,
              ref: opts.ref,
              force: opts.force,
              progress: await createProgress(!opts.json),
              warn: (m) => info(`warning: ${m}`),
            });
            if (opts.json) printJson(r);
            else if (r.upToDate) process.stdout.write(`${dir} is up to date with ${r.ref} (${r.snapshot})\n`);
            else
              process.stdout.write(
                `pulled ${r.ref} <- ${r.snapshot}: ${r.filesDownloaded} file(s) downloaded (${formatBytes(r.bytesDownloaded)}), ` +
                  `${r.filesDeleted} deleted in ${r.durationMs} ms\n`,
              );
            return 0;
          } finally {
            await remote.close();
          }
        },
        { jsonFlag: true },
      ),
    );
}
