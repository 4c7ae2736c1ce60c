// `hoard cache save|restore|list|delete`: a CI cache by key on any remote
// (see docs/cache.md). Exit codes: 0 done (a hit, a partial hit, a miss, a
// save of a key that exists), 2 a miss with --fail-on-cache-miss or a delete
// of a key that is not there, 3 a delete that lost a race, 1 anything else.

import { type Command, Option } from 'commander';
import { EXIT } from '../../core/errors.ts';
import * as hoardCache from '../../library/cache.ts';
import { action, formatBytes, info, printJson } from '../output.ts';
import { createProgressListener } from '../progress.ts';

interface Common {
  remote: string;
  scope?: string;
  platform?: boolean;
  json?: boolean;
}

function remoteOption(): Option {
  return new Option('--remote <url>', 'remote URL (file://, s3://, gs://, http(s)://host:port)')
    .env('HOARD_REMOTE')
    .makeOptionMandatory();
}

function scopeOption(): Option {
  return new Option('--scope <name>', 'namespace of the entries (a token may be limited to one)').default(
    'default',
  );
}

const PLATFORM_HELP = 'make the OS and CPU part of the version (entries of other platforms never match)';

/** The options of every command that names one entry: where, which scope, which version, output. */
function entryOptions(cmd: Command): Command {
  return cmd
    .addOption(remoteOption())
    .addOption(scopeOption())
    .option('--platform', PLATFORM_HELP)
    .option('--json', 'print the result as one JSON object');
}

/** `--restore-keys` may be given several times, and each value may hold several lines (as actions/cache's input). */
function collectLines(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0),
  ];
}

export function registerCache(program: Command): void {
  const cache = program
    .command('cache')
    .description('save and restore folders by key (a CI cache; incremental, deduplicated per file)');

  entryOptions(cache.command('save'))
    .description('store paths under a key (an existing key is left alone: keys are immutable)')
    .argument('<key>', 'the cache key, e.g. npm-linux-<hash of the lockfile>')
    .argument('<paths...>', 'folders or files (relative to here, absolute, or ~/…)')
    .action(
      action(
        async (key: string, paths: string[], opts: Common) => {
          // A save creates a file:// store as push does; the other commands only read one.
          const r = await hoardCache.save({
            remote: opts.remote,
            key,
            paths,
            scope: opts.scope,
            platform: opts.platform,
            onProgress: await createProgressListener({ json: opts.json }),
            onWarning: (m) => info(`warning: ${m}`),
          });
          if (opts.json) printJson(r);
          else if (r.exists)
            process.stdout.write(
              `cache entry ${JSON.stringify(key)} already exists; not saved (keys are immutable)\n`,
            );
          else if (!r.saved) process.stdout.write(`nothing to save for ${JSON.stringify(key)}\n`);
          else
            process.stdout.write(
              `saved ${JSON.stringify(key)}: ${r.filesTotal} file(s), ${formatBytes(r.bytesTotal)}; ` +
                `uploaded ${r.filesUploaded} (${formatBytes(r.bytesUploaded)}) in ${r.durationMs} ms\n`,
            );
          return 0;
        },
        { jsonFlag: true },
      ),
    );

  entryOptions(cache.command('restore'))
    .description('restore paths from the entry of a key, else the newest entry matching a restore key')
    .argument('<key>', 'the key to restore (exact match first, then as a prefix)')
    .argument('<paths...>', 'the same paths the entry was saved with (they make its version)')
    .option(
      '--restore-keys <prefix>',
      'key prefix to try when the key has no entry, newest first (repeat, or one per line)',
      collectLines,
      [],
    )
    .option('--lookup-only', 'only say whether an entry matches; write nothing')
    .option('--fail-on-cache-miss', 'exit 2 when no entry matches')
    .option('--delete', 'also delete files under the paths that the entry does not hold')
    .action(
      action(
        async (
          key: string,
          paths: string[],
          opts: Common & {
            restoreKeys: string[];
            lookupOnly?: boolean;
            failOnCacheMiss?: boolean;
            delete?: boolean;
          },
        ) => {
          const r = await hoardCache.restore({
            remote: opts.remote,
            key,
            paths,
            restoreKeys: opts.restoreKeys,
            scope: opts.scope,
            platform: opts.platform,
            lookupOnly: opts.lookupOnly,
            delete: opts.delete,
            onProgress: await createProgressListener({ json: opts.json }),
            onWarning: (m) => info(`warning: ${m}`),
          });
          if (opts.json) printJson(r);
          else if (r.hit === 'miss')
            process.stdout.write(`cache miss: no entry for ${JSON.stringify(key)}\n`);
          else {
            const what = r.hit === 'exact' ? 'cache hit' : `partial hit (${JSON.stringify(r.matchedKey)})`;
            process.stdout.write(
              r.lookupOnly
                ? `${what}: ${JSON.stringify(key)} (lookup only, nothing restored)\n`
                : `${what}: ${r.filesTotal} file(s), ${r.filesKept} already present, ${r.filesRestored} written, ` +
                    `${formatBytes(r.bytesDownloaded)} downloaded in ${r.durationMs} ms\n`,
            );
          }
          if (r.hit === 'miss' && opts.failOnCacheMiss) {
            info(`hoard: no cache entry matches ${JSON.stringify(key)} [--fail-on-cache-miss]`);
            return EXIT.notFound;
          }
          return 0;
        },
        { jsonFlag: true },
      ),
    );

  cache
    .command('list')
    .description('list the entries of a scope, newest first')
    .addOption(remoteOption())
    .addOption(scopeOption())
    .option('--prefix <key-prefix>', 'only keys starting with this')
    .option('--json', 'print the result as one JSON object {entries: [...]}')
    .action(
      action(
        async (opts: Common & { prefix?: string }) => {
          const entries = await hoardCache.list({
            remote: opts.remote,
            scope: opts.scope,
            prefix: opts.prefix,
          });
          if (opts.json) printJson({ scope: opts.scope, entries });
          else
            for (const e of entries)
              process.stdout.write(
                `${e.createdAt ?? '?'}  ${e.version.slice(0, 12)}  ${e.key}  ${e.paths ? e.paths.join(' ') : ''}\n`,
              );
          return 0;
        },
        { jsonFlag: true },
      ),
    );

  entryOptions(cache.command('delete'))
    .description('delete the entries of a key (every version, or the one of the paths given)')
    .argument('<key>', 'the exact key')
    .argument('[paths...]', 'only the entry saved with these paths')
    .action(
      action(
        async (key: string, paths: string[], opts: Common) => {
          const r = await hoardCache.delete({
            remote: opts.remote,
            key,
            scope: opts.scope,
            paths,
            platform: opts.platform,
          });
          if (opts.json) printJson(r);
          else for (const d of r.deleted) process.stdout.write(`deleted ${d.ref}\n`);
          return 0;
        },
        { jsonFlag: true },
      ),
    );
}
