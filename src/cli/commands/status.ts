// `hoard status [dir] [remote] [--ref name] [--json]`: what a push and a pull
// would do, without transferring anything (one ref read, one stat walk).

import type { Command } from 'commander';
import { type StatusResult, status } from '../../library/sync.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { resolveSyncTarget } from '../project-config.ts';
import { REMOTE_ARG } from './sync-args.ts';

const SAY: Record<StatusResult['summary'], string> = {
  'up-to-date': 'up to date: nothing to push or pull',
  ahead: 'local changes to push; the remote has not moved',
  behind: 'the remote has changes to pull; no local changes',
  diverged: 'local changes to push and remote changes to pull (push or pull merges them)',
  unsynced: 'never synced with this ref here',
};

function describe(r: StatusResult): string {
  const out = [`${r.dir} <-> ${r.ref} on ${r.remote}: ${SAY[r.summary]}`];
  out.push(`  synced:  ${r.synced ? `${r.synced.snapshot} at ${r.synced.syncedAt}` : '(never)'}`);
  out.push(`  remote:  ${r.head ? r.head.snapshot : '(no such ref)'}`);
  for (const e of r.local.added) out.push(`  A  ${e.path}  (${formatBytes(e.size)})`);
  for (const e of r.local.removed) out.push(`  D  ${e.path}`);
  for (const e of r.local.changed)
    out.push(`  M  ${e.path}  (${formatBytes(e.oldSize)} -> ${formatBytes(e.size)})`);
  out.push(`  would push: ${r.wouldPush ? 'yes' : 'no'}; would pull: ${r.wouldPull ? 'yes' : 'no'}`);
  return `${out.join('\n')}\n`;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('say what a push or pull would do, without transferring (one ref read, one stat walk)')
    .argument('[dir]', 'synced directory (default: from hoard.toml, else the current directory)')
    .argument('[remote]', REMOTE_ARG)
    .option('--ref <name>', 'the ref (required: here, HOARD_REF or hoard.toml)')
    .option(
      '--json',
      'print the result as one JSON object {dir, remote, ref, summary, synced, head, wouldPush, wouldPull, local}',
    )
    .action(
      action(
        async (
          dirArg: string | undefined,
          remoteArg: string | undefined,
          opts: { ref?: string; json?: boolean },
        ) => {
          const t = await resolveSyncTarget({ dir: dirArg, remote: remoteArg, ref: opts.ref });
          const r = await status({
            dir: t.dir,
            remote: t.remote,
            ref: t.ref,
            onWarning: (m) => info(`warning: ${m}`),
          });
          if (opts.json) printJson(r);
          else process.stdout.write(describe(r));
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
