// `hoard pull [remote] [dir] [--ref name] [--at version] [--exact] [--json]
// [--force] [--concurrency N]`; what is left out comes from
// HOARD_REMOTE/HOARD_REF or the nearest hoard.toml (project-config.ts).

import type { Command } from 'commander';
import { pull } from '../../library/sync.ts';
import { openCliRemote } from '../cli-remote.ts';
import { positiveInteger } from '../options.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { createProgressListener } from '../progress.ts';
import { resolveSyncTarget } from '../project-config.ts';
import { keepYoungGenerationSmall } from '../young-generation.ts';
import { REMOTE_ARG } from './sync-args.ts';

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('bring a directory to a remote ref (or an older version), downloading only what it lacks')
    .argument('[remote]', REMOTE_ARG)
    .argument(
      '[dir]',
      'directory to write, created if missing (default: from hoard.toml, else the current directory)',
    )
    .option('--ref <name>', 'ref to read, e.g. team/app/main (required: here, HOARD_REF or hoard.toml)')
    .option(
      '--at <version>',
      'an older version instead of the current one: sha256:<hex> (a snapshot), <ref>~N or ~N, or an ISO time',
    )
    .option(
      '--exact',
      'make the folder equal the version: overwrite local edits, delete local files it lacks (ignored files stay)',
    )
    .option('--json', 'print the result as one JSON object')
    .option('--force', 'on conflicts, overwrite local edits with the remote versions')
    .option('--concurrency <n>', 'parallel downloads (default 8)', positiveInteger)
    .action(
      action(
        async (
          remoteArg: string | undefined,
          dirArg: string | undefined,
          opts: {
            ref?: string;
            at?: string;
            exact?: boolean;
            json?: boolean;
            force?: boolean;
            concurrency?: number;
          },
        ) => {
          keepYoungGenerationSmall();
          const t = await resolveSyncTarget({ dir: dirArg, remote: remoteArg, ref: opts.ref });
          // A CLI process: nothing else waits on its event loop (see OpenRemoteOptions).
          await using remote = await openCliRemote(t.remote);
          const r = await pull({
            dir: t.dir,
            remote,
            ref: t.ref,
            force: opts.force,
            at: opts.at,
            exact: opts.exact,
            concurrency: opts.concurrency,
            onProgress: await createProgressListener({ json: opts.json }),
            onWarning: (m) => info(`warning: ${m}`),
          });
          const what = opts.at !== undefined ? `${r.ref} at ${opts.at}` : r.ref;
          if (opts.json) printJson(r);
          else if (r.upToDate) process.stdout.write(`${t.dir} is up to date with ${what} (${r.snapshot})\n`);
          else
            process.stdout.write(
              `pulled ${what} <- ${r.snapshot}: ${r.filesDownloaded} file(s) downloaded (${formatBytes(r.bytesDownloaded)}), ` +
                `${r.filesDeleted} deleted in ${r.durationMs} ms\n`,
            );
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
