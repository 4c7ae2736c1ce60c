// Loading `hoard serve`'s settings: the config file (--config or
// HOARD_CONFIG; TOML, or JSON by extension) < HOARD_* variables < flags <
// defaults, for every settings group the server's features declare
// (src/core/settings.ts has the rules; src/server/server-settings.ts and each
// feature's settings file the declarations). Paths are resolved against the
// working directory here, once.

import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { HoardError } from '../core/errors.ts';
import {
  type Layer,
  layerFromDocument,
  layerFromEnv,
  layerFromFlags,
  type RawValue,
  resolveGroup,
  type SettingsGroup,
} from '../core/settings.ts';
import { parseListen } from './listen-address.ts';
import { type ServerSettingsValues, serverSettings } from './server-settings.ts';

export { parseListen } from './listen-address.ts';

/** The server's own settings, paths absolute. */
export type ServerConfig = ServerSettingsValues;

/** Raw settings by flag attribute name (`maxMemory`, `data`, `gitMaxStaleness`), as commander parses them. */
export type RawSettings = Record<string, RawValue | undefined>;

/** Reads and parses a config file (TOML, or JSON when it ends in .json). */
export async function readConfigDocument(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `cannot read config file ${path}`, { cause: err });
  }
  try {
    return extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `config file ${path} is not valid: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function definedOnly(flags: RawSettings): Record<string, unknown> {
  return Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined && v !== null));
}

/**
 * The layers of `groups` in precedence order (file, env, flags). `partial`:
 * only some of the server's groups are being read, so other tables of the
 * file are left to their readers instead of being unknown.
 */
export async function loadLayers(
  groups: readonly SettingsGroup[],
  flags: RawSettings & { config?: string },
  env: NodeJS.ProcessEnv = process.env,
  opts: { partial?: boolean } = {},
): Promise<Layer[]> {
  const configPath = flags.config ?? env.HOARD_CONFIG;
  const file = configPath
    ? layerFromDocument(groups, await readConfigDocument(resolve(configPath)), resolve(configPath), opts)
    : new Map();
  return [file, layerFromEnv(groups, env), layerFromFlags(groups, definedOnly(flags))];
}

/** The server group's values from layers, checked and with absolute paths. */
export function serverConfigFrom(layers: readonly Layer[]): ServerConfig {
  const v = resolveGroup(serverSettings, layers);
  parseListen(v.listen);
  return Object.freeze({
    ...v,
    dataDir: resolve(v.dataDir),
    tokensFile: v.tokensFile === undefined ? undefined : resolve(v.tokensFile),
  });
}

/** Settings given as flag-shaped objects (tests, embedders): later objects win. */
export function resolveConfig(...layers: RawSettings[]): ServerConfig {
  return serverConfigFrom(layers.map((l) => layerFromFlags([serverSettings], definedOnly(l))));
}

/** The server's own settings: flags > env > config file (from flags or HOARD_CONFIG) > defaults. */
export async function loadConfig(
  flags: RawSettings & { config?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServerConfig> {
  return serverConfigFrom(await loadLayers([serverSettings], flags, env, { partial: true }));
}
