// `hoard log [remote] [--ref R] [-n N] [--json]`: the versions of a sync
// ref, newest first, with message, who pushed it, and what changed. Remote
// and ref default as for push (HOARD_REMOTE/HOARD_REF, then hoard.toml).

import type { Command } from 'commander';
import { HoardError } from '../../core/errors.ts';
import { type LogEntry, log } from '../../library/history.ts';
import { positiveInteger } from '../options.ts';
import { action, formatBytes, printJson } from '../output.ts';
import { resolveRemoteTarget } from '../project-config.ts';

function describeEntry(e: LogEntry): string {
  const c = e.changes;
  const who = [e.user, e.host].filter(Boolean).join('@');
  const lines = [
    `snapshot ${e.snapshot}${e.merge ? '  (merge)' : ''}`,
    ...(e.merge ? [`Merge:   ${e.parents.map((p) => p.slice(0, 19)).join(' ')}`] : []),
    `Date:    ${e.createdAt}`,
    ...(who ? [`Author:  ${who}`] : []),
    '',
    ...(e.message !== undefined ? e.message.split('\n').map((l) => `    ${l}`) : []),
    `    ${e.files} file(s), ${formatBytes(e.bytes)}; ${c.added} added, ${c.removed} removed, ${c.changed} changed ` +
      `(+${formatBytes(c.bytesAdded)} -${formatBytes(c.bytesRemoved)})`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}

export function registerLog(program: Command): void {
  program
    .command('log')
    .description('list the versions of a sync ref, newest first (merges shown as such)')
    .argument('[remote]', 'remote URL (default: HOARD_REMOTE, else hoard.toml)')
    .option('--ref <name>', 'the ref whose history to show (required: here, HOARD_REF or hoard.toml)')
    .option('-n, --max-count <n>', 'show at most this many versions', positiveInteger)
    .option('--json', 'print the result as one JSON object {ref, head, entries, more}')
    .action(
      action(
        async (remoteArg: string | undefined, opts: { ref?: string; maxCount?: number; json?: boolean }) => {
          const t = await resolveRemoteTarget({ remote: remoteArg, ref: opts.ref });
          const ref = t.ref;
          if (ref === undefined)
            throw new HoardError('HOARD_EUSAGE', 'log needs a ref', {
              hint: 'pass --ref <name>, set HOARD_REF, or put ref = "…" in hoard.toml',
            });
          const r = await log({ remote: t.remote, ref, limit: opts.maxCount });
          if (opts.json) printJson(r);
          else {
            for (const e of r.entries) process.stdout.write(describeEntry(e));
            if (r.more) process.stdout.write('(older versions not shown; raise -n)\n');
          }
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
