// `hoard serve`: the cache server. Settings: flags > HOARD_* env > --config
// file > defaults (docs/configuration.md). SIGTERM/SIGINT drain: /readyz
// turns 503, in-flight requests finish (bounded by the drain timeout), exit 0.

import type { Command } from 'commander';
import { loadLayers, type RawSettings, serverConfigFrom } from '../../server/config.ts';
import { action, info } from '../output.ts';
import { SERVE_FEATURES, SERVE_SETTINGS } from '../serve-features.ts';
import { addSettingFlags } from '../setting-flags.ts';

export function registerServe(program: Command): void {
  const serve = program.command('serve').description('run the hoard cache server (blob and ref API v1)');
  // Every setting's flag comes from the schema (src/cli/serve-features.ts).
  addSettingFlags(serve, SERVE_SETTINGS)
    .option('--config <file>', 'config file (.toml or .json); also HOARD_CONFIG')
    .action(
      action(async (flags: RawSettings & { config?: string }) => {
        const layers = await loadLayers(SERVE_SETTINGS, flags);
        const config = serverConfigFrom(layers);
        // Loaded here, not at the top: other commands should not pay for the server.
        const { buildServer } = await import('../../server/app.ts');
        const features = await Promise.all(SERVE_FEATURES.map((f) => f.use(layers)));
        const server = await buildServer(config, { features });
        const url = await server.listen();
        // The signal handlers come before the announcement: a script that reads "serving"
        // and signals at once must find them installed, not the default action.
        const stopped = new Promise<void>((resolve) => {
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
        server.app.log.info({ url, data: config.dataDir, remote: config.remote ?? null }, 'hoard serving');
        server.flushLog(); // scripts and tests wait for this line
        // Always said, whatever the log level: scripts and tests read the address from here.
        info(
          `hoard: serving ${url} (data ${config.dataDir}${config.remote ? `, remote ${config.remote}` : ''})`,
        );
        await stopped;
        server.app.log.info('stopped');
        return 0;
      }),
    );
}
