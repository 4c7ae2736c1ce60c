// `hoard push <dir> <remote> --ref <name> [--json] [--force] [--message TEXT] [--verify]`

import type { Command } from 'commander';
import { openRemote } from '../../remote/remote.ts';
import { push } from '../../sync/push.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { createProgress } from '../progress.ts';

export function registerPush(program: Command): void {
  program
    .command('push')
    .description('upload a directory to a remote ref, sending only the blobs the remote lacks')
    .argument('<dir>', 'directory to push')
    .argument(
      '<remote>',
      'remote URL (file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, http(s)://host:port)',
    )
    .requiredOption('--ref <name>', 'ref to update, e.g. team/app/main')
    .option('--json', 'print the result as one JSON object')
    .option('--force', 'on conflicts, overwrite the remote versions with the local ones')
    .option('--message <text>', 'message stored in the snapshot record')
    .option(
      '--verify',
      'ask the remote about every blob of the tree (not only changed ones) and re-upload what it lacks, even when up to date',
    )
    .action(
      action(
        async (
          dir: string,
          remoteUrl: string,
          opts: { ref: string; json?: boolean; force?: boolean; message?: string; verify?: boolean },
        ) => {
          const remote = await openRemote(remoteUrl, { create: true, blockingReads: true });
          try {
            const r = await push({
              dir,
              remote,
              ref: opts.ref,
              force: opts.force,
              message: opts.message,
              verify: opts.verify,
              progress: await createProgress(!opts.json),
              warn: (m) => info(`warning: ${m}`),
            });
            if (!opts.json && r.verified) {
              const v = r.verified;
              process.stdout.write(
                `verified ${v.blobsChecked} blob(s) on the remote: ${v.blobsReuploaded} re-uploaded` +
                  `${v.stillMissing.length > 0 ? `, ${v.stillMissing.length} still missing` : ''}\n`,
              );
            }
            if (opts.json) printJson(r);
            else if (r.upToDate) process.stdout.write(`${r.ref} is up to date (${r.snapshot})\n`);
            else
              process.stdout.write(
                `pushed ${r.ref} -> ${r.snapshot}: ${r.filesUploaded} file(s) uploaded (${formatBytes(r.bytesUploaded)}), ` +
                  `${r.filesReused} reused (${formatBytes(r.bytesReused)}) in ${r.durationMs} ms\n`,
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
