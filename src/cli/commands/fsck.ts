// `hoard fsck --data DIR [--repair] [--json]`: verify a filesystem store.

import { resolve } from 'node:path';
import type { Command } from 'commander';
import { fsck } from '../../store/fsck.ts';
import { action, info, printJson } from '../output.ts';

export function registerFsck(program: Command): void {
  program
    .command('fsck')
    .description('verify every blob of a filesystem store against its digest')
    .requiredOption('--data <dir>', 'data directory of the store (or the path of a file:// remote)')
    .option('--repair', 'move corrupt blobs to <data>/quarantine/ and remove stray temp files')
    .option('--json', 'print the report as one JSON object')
    .action(
      action(
        async (opts: { data: string; repair?: boolean; json?: boolean }) => {
          const report = await fsck(resolve(opts.data), { repair: opts.repair });
          if (opts.json) printJson(report);
          else {
            info(`checked ${report.blobsChecked} blobs (${report.bytesChecked} bytes)`);
            for (const c of report.corrupt)
              info(
                `corrupt: ${c.digest} (content hashes to ${c.actual})${c.quarantined ? ' — quarantined' : ''}`,
              );
            for (const t of report.strayTempFiles) info(`stray temp file: tmp/${t}`);
            for (const r of report.danglingRefs) info(`dangling ref: ${r.name} -> ${r.target}`);
            info(report.clean ? 'store is clean' : 'store has problems');
          }
          const repaired =
            opts.repair && report.corrupt.every((c) => c.quarantined) && report.danglingRefs.length === 0;
          return report.clean || repaired ? 0 : 1;
        },
        { jsonFlag: true },
      ),
    );
}
