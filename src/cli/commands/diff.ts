// `hoard diff <remote> --ref R [<from>] [<to>]` (two versions; by default the
// last push against its parent) and `hoard diff <dir>` (the directory against
// its last sync; with no argument, the hoard.toml folder or the current one).
// `--stat` prints counts only, `--json` one object.

import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { HoardError } from '../../core/errors.ts';
import { type DiffResult, diff } from '../../library/history.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { findProjectConfig } from '../project-config.ts';

function printDiff(r: DiffResult, statOnly: boolean): void {
  if (!statOnly) {
    for (const e of r.added) process.stdout.write(`A  ${e.path}  (${formatBytes(e.size)})\n`);
    for (const e of r.removed) process.stdout.write(`D  ${e.path}  (${formatBytes(e.size)})\n`);
    for (const e of r.changed)
      process.stdout.write(`M  ${e.path}  (${formatBytes(e.oldSize)} -> ${formatBytes(e.size)})\n`);
  }
  const s = r.stat;
  process.stdout.write(
    `${s.added} added, ${s.removed} removed, ${s.changed} changed (+${formatBytes(s.bytesAdded)} -${formatBytes(s.bytesRemoved)})\n`,
  );
}

/** A local directory (diff against its last sync) rather than a remote URL. */
async function isLocalDir(arg: string, hasRef: boolean): Promise<boolean> {
  if (/^[a-z][a-z0-9+.-]*:/i.test(arg)) return false;
  // A bare path is a remote when --ref is given (file:// shorthand), else a directory.
  if (hasRef) return false;
  return (await stat(arg).catch(() => undefined))?.isDirectory() ?? false;
}

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description(
      'show added, removed and changed paths between two versions, or a directory and its last sync',
    )
    .argument(
      '[remote|dir]',
      'a remote URL (with --ref), or a synced directory (default: the hoard.toml folder, else the current one)',
    )
    .argument(
      '[from]',
      'older version: sha256:<hex>, <ref>~N, ~N or an ISO time (default: the parent of <to>)',
    )
    .argument('[to]', 'newer version (default: the ref now)')
    .option('--ref <name>', 'the ref (required with a remote; with a directory, which sync to compare with)')
    .option('--remote <url>', 'with a directory: the remote of the sync to compare with')
    .option('--stat', 'counts only')
    .option('--json', 'print the result as one JSON object {ref, from, to, added, removed, changed, stat}')
    .action(
      action(
        async (
          targetArg: string | undefined,
          from: string | undefined,
          to: string | undefined,
          opts: { ref?: string; remote?: string; stat?: boolean; json?: boolean },
        ) => {
          let r: DiffResult;
          const warn = (m: string) => info(`warning: ${m}`);
          const local = (dir: string, ref: string | undefined) =>
            diff({ dir, remote: opts.remote, ref, onWarning: warn });
          if (targetArg === undefined) {
            // The project's folder against its last sync (with its ref when one is known).
            const cfg = await findProjectConfig(process.cwd());
            const dir = cfg ? (cfg.dir ?? dirname(cfg.file)) : process.cwd();
            r = await local(dir, opts.ref ?? (process.env.HOARD_REF || cfg?.ref));
          } else if (opts.remote || (await isLocalDir(targetArg, opts.ref !== undefined))) {
            if (from !== undefined)
              throw new HoardError('HOARD_EUSAGE', 'a directory diff takes no versions', {
                hint: 'use `hoard diff <remote> --ref R <from> <to>` to compare versions',
              });
            r = await local(targetArg, opts.ref);
          } else {
            if (!opts.ref)
              throw new HoardError('HOARD_EUSAGE', 'diff against a remote needs --ref <name>', {
                hint: 'or pass a synced directory to compare it with its last sync',
              });
            r = await diff({ remote: targetArg, ref: opts.ref, from, to });
          }
          if (opts.json) printJson(r);
          else printDiff(r, Boolean(opts.stat));
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
