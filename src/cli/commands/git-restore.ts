// `hoard git restore <server-url>/git/<repo> <dir> [--ref R] [--json]`: the
// command; the work is in src/git/restore.ts, loaded only when it runs.

import type { Command } from 'commander';
import { DEFAULTS } from '../../core/defaults.ts';
import type { GitRestoreResult } from '../../git/restore.ts';
import { positiveInteger } from '../options.ts';
import { action, info, printJson } from '../output.ts';
import { keepYoungGenerationSmall } from '../young-generation.ts';

export function registerGitRestore(git: Command): void {
  git
    .command('restore')
    .description('restore a working clone from the server snapshot (parallel ranged download), then fetch')
    .argument('<url>', 'the repository through hoard: <server-url>/git/<repo>')
    .argument('<dir>', 'directory to create (must not exist or be empty)')
    .option('--ref <ref>', 'branch or tag (default: the upstream HEAD branch)')
    .option(
      '--json',
      'print a JSON summary {commit, snapshot, bytes, durationMs, fetchedAfterRestore, steps}',
    )
    .option(
      '--concurrency <n>',
      `parallel range downloads (default ${DEFAULTS.restoreConcurrency})`,
      positiveInteger,
    )
    .action(
      action(
        async (url: string, dir: string, opts: { ref?: string; json?: boolean; concurrency?: number }) => {
          // Thousands of index entries and stat objects while extracting: without this V8 grew
          // the young generation and a restore's peak RSS varied 100-129 MiB (issue 16).
          keepYoungGenerationSmall();
          const { gitRestore } = await import('../../git/restore.ts');
          const tty = process.stderr.isTTY && !opts.json;
          const cliProgress = tty ? (await import('cli-progress')).default : undefined;
          const bar = cliProgress
            ? new cliProgress.SingleBar(
                { format: 'restore [{bar}] {percentage}% {value}/{total} bytes', stream: process.stderr },
                cliProgress.Presets.shades_classic,
              )
            : undefined;
          let result: GitRestoreResult;
          try {
            result = await gitRestore({
              url,
              dir,
              ref: opts.ref,
              token: process.env.HOARD_TOKEN || undefined,
              concurrency: opts.concurrency,
              onStart: (total) => bar?.start(total, 0),
              onProgress: (n) => bar?.update(n),
            });
          } finally {
            bar?.stop();
          }
          if (opts.json)
            printJson({
              commit: result.commit,
              snapshot: result.snapshot,
              bytes: result.bytes,
              durationMs: result.durationMs,
              fetchedAfterRestore: result.fetchedAfterRestore,
              steps: result.steps,
            });
          else
            info(
              `restored ${dir} at ${result.commit} from ${result.snapshot} (${result.bytes} bytes, ${result.durationMs} ms${result.fetchedAfterRestore ? ', fetched' : ', not fetched'})`,
            );
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
