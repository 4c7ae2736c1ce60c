// Stand-in for `hoard serve` while its git flags are not wired: the same
// buildServer + git plugin, the same flags, the same "hoard serving" log line.
// Used by test/git/helpers/harness.ts only when bin/hoard.js lacks --git-upstream.

import { Command } from 'commander';
import { addGitServeOptions, gitServerPlugin, resolveGitSettings } from '../../../src/git/server-plugin.ts';
import { buildServer } from '../../../src/server/app.ts';
import { loadConfig } from '../../../src/server/config.ts';

const program = new Command();
program.option('--listen <a>').option('--data <d>').option('--log-level <l>');
addGitServeOptions(program);
program.parse(process.argv);
const flags = program.opts();
const config = await loadConfig({ listen: flags.listen, data: flags.data, logLevel: flags.logLevel });
const git = await resolveGitSettings(flags);
const server = await buildServer(config, { plugins: [gitServerPlugin(git, config.dataDir)] });
const url = await server.listen();
server.app.log.info({ url }, 'hoard serving');
const stop = () => {
  server.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
