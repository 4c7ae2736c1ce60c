// Which folder, remote and ref a `hoard push` / `pull` / `status` means when
// its arguments leave them out. Precedence, per value:
//
//   1. the command line (positional <dir>/<remote>, --ref);
//   2. the environment (HOARD_REMOTE, HOARD_REF);
//   3. the nearest `hoard.toml`, searched upward from the folder given (or
//      from the working directory when none is).
//
// The folder defaults to the one hoard.toml names (`dir`, relative to the
// file) or the file's own folder, so `hoard push` from anywhere in a project
// syncs the same folder. Only the nearest file counts (no merging of files
// up the tree: one place to look when a value surprises). Unknown keys are
// errors naming the file, so a typo never silently syncs somewhere else.

import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { HoardError } from '../core/errors.ts';
import { isErrno } from '../store/fs-atomic.ts';

export const PROJECT_FILE = 'hoard.toml';

export interface ProjectConfig {
  /** The hoard.toml read. */
  file: string;
  remote?: string;
  ref?: string;
  /** Absolute folder to sync. */
  dir?: string;
}

/** Where a value came from: `argument`, `--ref`, `HOARD_REMOTE`, a hoard.toml path, or `default`. */
export type Source = string;

export interface SyncTarget {
  dir: string;
  remote: string;
  ref: string;
  /** The hoard.toml used, if any. */
  config?: string;
  sources: { dir: Source; remote: Source; ref: Source };
}

const KEYS = new Set(['remote', 'ref', 'dir']);

/** The nearest hoard.toml at or above `start`, parsed; undefined when there is none. */
export async function findProjectConfig(start: string): Promise<ProjectConfig | undefined> {
  for (let d = resolve(start); ; d = dirname(d)) {
    const file = join(d, PROJECT_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      // Not here (or `start` itself is not a folder yet, e.g. a pull target): look higher.
      if (!isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw err;
      if (dirname(d) === d) return undefined;
      continue;
    }
    return parseProjectConfig(file, text);
  }
}

async function parseProjectConfig(file: string, text: string): Promise<ProjectConfig> {
  // Loaded only when a hoard.toml is there (most runs name everything on the command line).
  const { parse: parseToml } = await import('smol-toml');
  let raw: Record<string, unknown>;
  try {
    raw = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `${file} is not valid TOML: ${(err as Error).message}`, {
      hint: 'it holds remote = "…", ref = "…" and optionally dir = "…" (docs/sync.md)',
    });
  }
  const out: ProjectConfig = { file };
  const here = dirname(file);
  for (const [key, value] of Object.entries(raw)) {
    if (!KEYS.has(key))
      throw new HoardError('HOARD_ECONFIG', `unknown key ${JSON.stringify(key)} in ${file}`, {
        hint: 'hoard.toml knows remote, ref and dir',
      });
    if (typeof value !== 'string' || value === '')
      throw new HoardError('HOARD_ECONFIG', `${key} in ${file} must be a non-empty string`);
    if (key === 'dir') out.dir = resolve(here, value);
    // A relative path remote is relative to the file, wherever hoard runs from.
    else if (key === 'remote') out.remote = /^\.\.?\//.test(value) ? resolve(here, value) : value;
    else out.ref = value;
  }
  return out;
}

/**
 * Fills in what the command line left out (see the module header). Throws
 * HOARD_EUSAGE naming every place it looked when a remote or ref is missing.
 */
export async function resolveSyncTarget(
  args: { dir?: string; remote?: string; ref?: string },
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<SyncTarget> {
  const t = await resolvePartial(args, env, cwd);
  if (t.ref === undefined)
    throw new HoardError('HOARD_EUSAGE', `no ref given${t.looked}`, {
      hint: `pass --ref <name>, set HOARD_REF, or put ref = "…" in ${PROJECT_FILE}`,
    });
  const { looked: _, ...target } = t;
  return { ...target, ref: t.ref };
}

/**
 * The remote (and the ref, when known) for commands that read a remote
 * without a folder (`ls`, `log`): the same precedence, searched upward from
 * the working directory.
 */
export async function resolveRemoteTarget(
  args: { remote?: string; ref?: string },
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<{ remote: string; ref: string | undefined; sources: { remote: Source; ref: Source } }> {
  const t = await resolvePartial(args, env, cwd);
  return { remote: t.remote, ref: t.ref, sources: { remote: t.sources.remote, ref: t.sources.ref } };
}

async function resolvePartial(
  args: { dir?: string; remote?: string; ref?: string },
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<Omit<SyncTarget, 'ref'> & { ref: string | undefined; looked: string }> {
  const start = args.dir !== undefined ? resolve(cwd, args.dir) : cwd;
  const config = await findProjectConfig(start);
  const pick = (
    arg: string | undefined,
    argSource: string,
    envName: string,
    fromFile: string | undefined,
  ): [string | undefined, Source] => {
    if (arg !== undefined) return [arg, argSource];
    const e = env[envName];
    if (e !== undefined && e !== '') return [e, envName];
    if (fromFile !== undefined && config) return [fromFile, config.file];
    return [undefined, ''];
  };
  const [remote, remoteSource] = pick(args.remote, 'argument', 'HOARD_REMOTE', config?.remote);
  const [ref, refSource] = pick(args.ref, '--ref', 'HOARD_REF', config?.ref);
  const looked = config ? `; ${config.file} has none` : `; no ${PROJECT_FILE} at or above ${start}`;
  if (remote === undefined)
    throw new HoardError('HOARD_EUSAGE', `no remote given${looked}`, {
      hint: `pass the remote URL, set HOARD_REMOTE, or put remote = "…" in ${PROJECT_FILE}`,
    });
  let dir: string;
  let dirSource: Source;
  if (args.dir !== undefined) [dir, dirSource] = [resolve(cwd, args.dir), 'argument'];
  else if (config) [dir, dirSource] = [config.dir ?? dirname(config.file), config.file];
  else [dir, dirSource] = [cwd, 'default'];
  return {
    dir,
    remote,
    ref,
    ...(config ? { config: config.file } : {}),
    sources: { dir: dirSource, remote: remoteSource, ref: refSource },
    looked,
  };
}
