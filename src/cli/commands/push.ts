// `hoard push [dir] [remote] [--ref name] [--json] [--force] [--message TEXT]
// [--verify] [--skip-changing] [--concurrency N]`; what is left out comes
// from HOARD_REMOTE/HOARD_REF or the nearest hoard.toml (project-config.ts).

import module from 'node:module';
import type { Command } from 'commander';
import { push } from '../../library/sync.ts';
import { openCliRemote } from '../cli-remote.ts';
import { positiveInteger } from '../options.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { createProgressListener } from '../progress.ts';
import { resolveSyncTarget } from '../project-config.ts';
import { keepYoungGenerationSmall, scavengeOnMainThread } from '../young-generation.ts';
import { REMOTE_ARG } from './sync-args.ts';

export function registerPush(program: Command): void {
  program
    .command('push')
    .description('upload a directory to a remote ref, sending only the blobs the remote lacks')
    .argument('[dir]', 'directory to push (default: from hoard.toml, else the current directory)')
    .argument('[remote]', REMOTE_ARG)
    .option('--ref <name>', 'ref to update, e.g. team/app/main (required: here, HOARD_REF or hoard.toml)')
    .option('--json', 'print the result as one JSON object')
    .option('--force', 'on conflicts, overwrite the remote versions with the local ones')
    .option('--message <text>', 'message stored in the snapshot record (shown by `hoard log`)')
    .option(
      '--verify',
      'ask the remote about every blob of the tree (not only changed ones) and re-upload what it lacks, even when up to date',
    )
    .option(
      '--skip-changing',
      'leave out files that keep changing while being pushed (with a warning; the remote keeps their last version) instead of failing',
    )
    .option('--concurrency <n>', 'parallel uploads (default 8)', positiveInteger)
    .action(
      action(
        async (dirArg: string | undefined, remoteArg: string | undefined, opts: PushFlags) =>
          exitWhenWritten(await runPush(dirArg, remoteArg, opts)),
        { jsonFlag: true },
      ),
    );
}

interface PushFlags {
  ref?: string;
  json?: boolean;
  force?: boolean;
  message?: string;
  verify?: boolean;
  skipChanging?: boolean;
  concurrency?: number;
}

/** The push; the remote it opened is closed when this returns. */
async function runPush(
  dirArg: string | undefined,
  remoteArg: string | undefined,
  opts: PushFlags,
): Promise<number> {
  keepYoungGenerationSmall();
  scavengeOnMainThread();
  const t = await resolveSyncTarget({ dir: dirArg, remote: remoteArg, ref: opts.ref });
  // A CLI process: nothing else waits on its event loop (see OpenRemoteOptions).
  await using remote = await openCliRemote(t.remote, { create: true });
  const r = await push({
    dir: t.dir,
    remote,
    ref: t.ref,
    force: opts.force,
    message: opts.message,
    verify: opts.verify,
    skipChanging: opts.skipChanging,
    concurrency: opts.concurrency,
    onProgress: await createProgressListener({ json: opts.json }),
    onWarning: (m) => info(`warning: ${m}`),
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
        `${r.filesReused} reused (${formatBytes(r.bytesReused)}) in ${r.durationMs} ms` +
        `${r.skipped ? `; ${r.skipped.length} changing file(s) left out` : ''}\n`,
    );
  return 0;
}

/**
 * Ends the process once its output is written. What a natural exit does
 * after a large push is teardown nobody needs (~30 ms at 50,000 files:
 * the heap freed page by page): every write was
 * awaited, and made durable, before the result was printed. The compile
 * cache is written as a natural exit would.
 */
function exitWhenWritten(code: number): Promise<number> {
  module.flushCompileCache?.();
  return new Promise(() => process.stdout.write('', () => process.exit(code)));
}
