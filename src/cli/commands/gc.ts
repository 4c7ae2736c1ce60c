// `hoard gc --data DIR [--grace 1h] [--keep-versions N] [--max-disk SIZE] [--dry-run] [--json]`:
// removes blobs no ref reaches (see src/server/gc.ts), least recently used
// first. Safe on a live server's data directory: blobs used or written within
// the grace period are kept, and deletion of a blob being read does not
// disturb its reader (the open descriptor pins it).

import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULTS, parseDuration, parseSize } from '../../core/defaults.ts';
import { HoardError } from '../../core/errors.ts';
import { action, info, printJson } from '../output.ts';

export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('remove blobs of a filesystem store that no ref reaches')
    .requiredOption('--data <dir>', 'data directory of a server (or the path of a file:// remote)')
    .option('--grace <duration>', 'keep unreferenced blobs used more recently than this (default 1h)')
    .option(
      '--keep-versions <n>',
      'versions of each synced ref to keep: 1 = the current one (default); N = it and the N-1 before it',
    )
    .option('--max-disk <size>', 'stop once the store is at most this big (default: remove all garbage)')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .option('--json', 'print the report as one JSON object')
    .action(
      action(
        async (opts: {
          data: string;
          grace?: string;
          keepVersions?: string;
          maxDisk?: string;
          dryRun?: boolean;
          json?: boolean;
        }) => {
          let graceMs: number;
          let targetBytes = 0;
          let keepVersions = 1;
          try {
            if (opts.keepVersions !== undefined) {
              keepVersions = Number(opts.keepVersions);
              if (!/^\d+$/.test(opts.keepVersions) || keepVersions < 1 || keepVersions > 10_000)
                throw new Error(
                  `--keep-versions must be an integer from 1 to 10000, got ${JSON.stringify(opts.keepVersions)}`,
                );
            }
            graceMs = opts.grace === undefined ? DEFAULTS.gcGraceMs : parseDuration(opts.grace);
            if (opts.maxDisk) targetBytes = parseSize(opts.maxDisk);
          } catch (err) {
            throw new HoardError('HOARD_EUSAGE', (err as Error).message);
          }
          const { collectGarbage } = await import('../../server/gc.ts');
          const { serveEntryReferences } = await import('../serve-features.ts');
          const report = await collectGarbage(resolve(opts.data), {
            entryReferences: await serveEntryReferences(),
            keepVersions,
            graceMs,
            targetBytes,
            dryRun: opts.dryRun,
          });
          if (opts.json) printJson({ ...report, removed: report.removed.map((r) => r.digest) });
          else
            info(
              `${opts.dryRun ? 'would remove' : 'removed'} ${report.removed.length} blobs (${report.bytesRemoved} bytes); ` +
                `${report.live} live, ${report.keptRecent} unreferenced but recent, of ${report.blobsScanned} scanned`,
            );
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
