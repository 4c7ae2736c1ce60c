// `hoard serve`: the cache server. Settings: flags > HOARD_* env > --config
// file > defaults (docs/configuration.md). SIGTERM/SIGINT drain: /readyz
// turns 503, in-flight requests finish (bounded by the drain timeout), exit 0.

import { hostname } from 'node:os';
import type { Command } from 'commander';
import { resolveGroup } from '../../core/settings.ts';
import { gitSettings } from '../../git/git-settings.ts';
import { loadLayers, parseListen, type RawSettings, serverConfigFrom } from '../../server/config.ts';
import { action, info } from '../output.ts';
import { SERVE_SETTINGS } from '../serve-settings.ts';
import { addSettingFlags } from '../setting-flags.ts';

export function registerServe(program: Command): void {
  const serve = program.command('serve').description('run the hoard cache server (blob and ref API v1)');
  // Every setting's flag comes from the schema (src/cli/serve-settings.ts).
  addSettingFlags(serve, SERVE_SETTINGS)
    .option('--config <file>', 'config file (.toml or .json); also HOARD_CONFIG')
    .action(
      action(async (flags: RawSettings & { config?: string }) => {
        const layers = await loadLayers(SERVE_SETTINGS, flags);
        const config = serverConfigFrom(layers);
        // Loaded here, not at the top: other commands should not pay for the server.
        const { buildServer } = await import('../../server/app.ts');
        const { gitServerPlugin, toGitSettings } = await import('../../git/server-plugin.ts');
        const { snapshotExtras } = await import('../../git/snapshot-routes.ts');
        const git = toGitSettings(resolveGroup(gitSettings, layers));
        // The snapshot archive's origin URL is part of its bytes: it must not
        // depend on which address a request happened to use, or two servers
        // would generate different archives of one commit.
        const publicUrl = config.publicUrl ?? defaultPublicUrl(config.listen);
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
}

/**
 * --public-url's default: the address the server listens on (a wildcard
 * address becomes this machine's host name). With port 0 the port is known
 * only after listening, so each snapshot request's own base URL is used
 * instead (fine for tests; servers sharing a bucket set --public-url).
 */
export function defaultPublicUrl(listen: string): string | undefined {
  const { host, port } = parseListen(listen);
  if (port === 0) return undefined;
  const name = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
  return `http://${name}:${port}`;
}
