// `hoard fsck [<remote>] [--data DIR] [--repair] [--json]`: check a store.
// Any remote: every blob each ref's snapshot record and tree name must be
// present. A filesystem store (`--data DIR` or a file:// remote) also has
// every blob re-hashed. Exit 0: clean (or every problem repaired); 1: problems
// remain (the report says which), or the check could not run.

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { HoardError } from '../../core/errors.ts';
import { openRemote } from '../../remote/remote.ts';
import { type FsckReport, fsck, fsckProblemsRemain, fsckStores } from '../../store/fsck.ts';
import { action, info, printJson } from '../output.ts';

interface FsckOptions {
  data?: string;
  repair?: boolean;
  json?: boolean;
}

async function run(
  remoteUrl: string | undefined,
  opts: FsckOptions,
): Promise<FsckReport & { remote: string }> {
  if ((remoteUrl === undefined) === (opts.data === undefined))
    throw new HoardError('HOARD_EUSAGE', 'fsck needs exactly one of <remote> or --data <dir>', {
      hint: 'e.g. `hoard fsck s3://bucket/prefix` or `hoard fsck --data /var/lib/hoard`',
    });
  if (opts.data !== undefined) {
    const root = resolve(opts.data);
    return { remote: root, ...(await fsck(root, { repair: opts.repair })) };
  }
  const remote = await openRemote(remoteUrl!);
  try {
    // A file:// remote is a filesystem store: its blobs can be re-hashed in place.
    if (remote.url.startsWith('file:'))
      return { remote: remote.url, ...(await fsck(fileURLToPath(remote.url), { repair: opts.repair })) };
    return { remote: remote.url, ...(await fsckStores(remote.blobs, remote.refs)) };
  } finally {
    await remote.close();
  }
}

function printHuman(report: FsckReport & { remote: string }, repair: boolean): void {
  if (report.contentChecked) info(`checked ${report.blobsChecked} blobs (${report.bytesChecked} bytes)`);
  info(
    `checked ${report.refsChecked} refs (${report.opaqueRefs} not snapshots), ${report.treesChecked} trees, ` +
      `${report.blobsReferenced} blobs they name`,
  );
  for (const c of report.corrupt)
    info(`corrupt: ${c.digest} (content hashes to ${c.actual})${c.quarantined ? ' — quarantined' : ''}`);
  for (const t of report.strayTempFiles) info(`stray temp file: tmp/${t}`);
  for (const m of report.missing) {
    info(`${repair ? 'lost' : 'missing'}: ${m.digest} (${m.kind === 'target' ? 'ref target' : m.kind})`);
    for (const n of m.neededBy) {
      const paths =
        n.paths.length > 0 ? `: ${n.paths.join(', ')}${n.morePaths ? ` and ${n.morePaths} more` : ''}` : '';
      info(`  needed by ${n.ref}${paths}`);
    }
  }
  for (const u of report.unreadable) info(`unreadable ${u.kind} ${u.digest} of ${u.ref}: ${u.reason}`);
  if (report.missing.some((m) => m.kind === 'file'))
    info(
      `fix: from a directory that has these files, run \`hoard push --verify <dir> ${report.remote} --ref <ref>\``,
    );
  info(report.clean ? 'store is clean' : 'store has problems');
}

export function registerFsck(program: Command): void {
  program
    .command('fsck')
    .description(
      'check a store: every blob each ref needs is present (any remote); blob contents too (filesystem stores)',
    )
    .argument(
      '[remote]',
      'remote URL (file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, http(s)://host:port)',
    )
    .option('--data <dir>', 'data directory of a server (or the path of a file:// remote)')
    .option(
      '--repair',
      'move corrupt blobs to <data>/quarantine/, remove stray temp files, and list what is lost',
    )
    .option('--json', 'print the report as one JSON object')
    .addHelpText(
      'after',
      '\nExit status: 0 when the store is clean (or --repair fixed every problem), 1 when problems remain or the check could not run.',
    )
    .action(
      action(
        async (remoteUrl: string | undefined, opts: FsckOptions) => {
          const report = await run(remoteUrl, opts);
          if (opts.json) printJson(report);
          else printHuman(report, Boolean(opts.repair));
          return fsckProblemsRemain(report, Boolean(opts.repair)) ? 1 : 0;
        },
        { jsonFlag: true },
      ),
    );
}
