// `hoard serve`: the cache server. Settings: flags > HOARD_* env > --config
// file > defaults (docs/configuration.md). SIGTERM/SIGINT drain: /readyz
// turns 503, in-flight requests finish (bounded by the drain timeout), exit 0.

import type { Command } from 'commander';
import { DEFAULTS } from '../../core/defaults.ts';
import { addGitServeOptions, type GitFlags } from '../../git/serve-options.ts';
import { loadConfig, type RawSettings } from '../../server/config.ts';
import { action, info } from '../output.ts';

interface ServeFlags extends GitFlags {
  listen?: string;
  data?: string;
  remote?: string;
  maxMemory?: string;
  maxBlobSize?: string;
  maxDisk?: string;
  tokens?: string;
  publicRead?: boolean;
  logLevel?: string;
  drainTimeout?: string;
  drainDelay?: string;
  gcGrace?: string;
  cacheRefPrefixes?: string;
  cacheRefTtl?: string;
  headersTimeout?: string;
  bodyIdleTimeout?: string;
  keepAliveTimeout?: string;
  maxConnections?: string;
  config?: string;
  publicUrl?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the hoard cache server (blob and ref API v1)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:7777)')
    .option('--data <dir>', 'data directory: disk tier, and refs without --remote (default ./.hoard-data)')
    .option(
      '--remote <url>',
      'shared authoritative tier: s3://…, gs://…, file://… or http(s):// (another hoard server)',
    )
    .option('--max-memory <size>', 'memory tier bound, e.g. 256MiB')
    .option('--max-blob-size <size>', 'largest blob a PUT may store, e.g. 8GiB')
    .option('--max-disk <size>', 'disk tier bound (0 = unbounded)')
    .option('--tokens <file>', 'tokens file (TOML or JSON); without it only loopback clients are served')
    .option('--public-read', 'allow reads without a token (with --tokens)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .option('--drain-timeout <duration>', 'how long SIGTERM waits for in-flight requests, e.g. 30s')
    .option(
      '--drain-delay <duration>',
      'after SIGTERM, how long /readyz says 503 before the listener closes (default 1s)',
    )
    .option('--cache-ref-prefixes <list>', 'comma-separated ref prefixes of cache refs (default cache/)')
    .option('--cache-ref-ttl <duration>', 'delete cache refs unused this long (default 0 = never)')
    .option('--gc-grace <duration>', 'unreferenced blobs younger than this are never collected (default 1h)')
    .option(
      '--public-url <url>',
      'URL clients reach this server at; baked into snapshot archives as origin (default http://127.0.0.1:7777)',
    )
    .option(
      '--headers-timeout <duration>',
      'request line and headers must arrive within this, else 408 and close (default 20s)',
    )
    .option(
      '--body-idle-timeout <duration>',
      'close a connection whose request body receives nothing this long (default 60s; 0 = never)',
    )
    .option('--keep-alive-timeout <duration>', 'close idle kept-alive connections after this (default 65s)')
    .option(
      '--max-connections <n>',
      'most connections at once (default auto: from the open-file limit, leaving a reserve)',
    )
    .option('--config <file>', 'config file (.toml or .json)')
    .action(
      action(async (flags: ServeFlags) => {
        const raw: RawSettings & { config?: string } = {
          listen: flags.listen,
          data: flags.data,
          remote: flags.remote,
          maxMemory: flags.maxMemory,
          maxBlobSize: flags.maxBlobSize,
          maxDisk: flags.maxDisk,
          tokens: flags.tokens,
          publicRead: flags.publicRead,
          logLevel: flags.logLevel,
          drainTimeout: flags.drainTimeout,
          gcGrace: flags.gcGrace,
          cacheRefPrefixes: flags.cacheRefPrefixes,
          cacheRefTtl: flags.cacheRefTtl,
          drainDelay: flags.drainDelay,
          headersTimeout: flags.headersTimeout,
          bodyIdleTimeout: flags.bodyIdleTimeout,
          keepAliveTimeout: flags.keepAliveTimeout,
          maxConnections: flags.maxConnections,
          config: flags.config,
        };
        const config = await loadConfig(raw);
        // Loaded here, not at the top: other commands should not pay for the server.
        const { buildServer } = await import('../../server/app.ts');
        const { gitServerPlugin, resolveGitSettings } = await import('../../git/server-plugin.ts');
        const { snapshotExtras } = await import('../../git/snapshot-routes.ts');
        const git = await resolveGitSettings(flags);
        // The snapshot archive's origin URL is part of its bytes: it must not
        // depend on which address a request happened to use, or two servers
        // would generate different archives of one commit.
        const publicUrl = flags.publicUrl ?? process.env.HOARD_PUBLIC_URL ?? `http://${DEFAULTS.listen}`;
        const server = await buildServer(config, {
          plugins: [gitServerPlugin(git, config.dataDir, snapshotExtras(config.dataDir, { publicUrl }))],
        });
        const url = await server.listen();
        server.app.log.info({ url, data: config.dataDir, remote: config.remote ?? null }, 'hoard serving');
        // Always said, whatever the log level: scripts and tests read the address from here.
        info(
          `hoard: serving ${url} (data ${config.dataDir}${config.remote ? `, remote ${config.remote}` : ''})`,
        );
        await new Promise<void>((resolve) => {
          let stopping = false;
          const stop = (signal: string) => {
            if (stopping) return;
            stopping = true;
            server.app.log.info({ signal }, 'signal received');
            (signal === 'SIGTERM' ? server.drain() : server.close()).then(resolve, (err) => {
              server.app.log.error({ err }, 'error while closing');
              resolve();
            });
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
        });
        server.app.log.info('stopped');
        return 0;
      }),
    );
  // The git smart-HTTP proxy's flags (--git-*), defined with the proxy in src/git/server-plugin.ts.
  addGitServeOptions(program.commands.find((c) => c.name() === 'serve')!);
}
