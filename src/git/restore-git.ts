// The git runner of every step of a restore (restore.ts): GIT_DIR and
// GIT_WORK_TREE explicit (no discovery of an enclosing repository), no system
// or global config (git-process.ts), hooks and fsmonitor off, only http(s)
// transports, and the bearer token as environment configuration, never in
// argv.

import { join } from 'node:path';
import { configEnv, runGit } from './git-process.ts';

/**
 * Configuration of every git step of a restore (on top of no system/global
 * config, see git-process.ts). Nothing the archive or the caller's config
 * says can run a command: no hooks, no fsmonitor, no submodule recursion,
 * no transport but http(s).
 */
const SAFE_CONFIG: [string, string][] = [
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', 'false'],
  ['submodule.recurse', 'false'],
  // No `git maintenance run --auto` after the fetch: a fresh clone needs none.
  ['maintenance.auto', 'false'],
  ['protocol.allow', 'never'],
  ['protocol.http.allow', 'always'],
  ['protocol.https.allow', 'always'],
];

export type Git = (args: string[], okCodes?: number[]) => Promise<{ stdout: string; code: number }>;

/** The git runner of a restore in `dir` (see SAFE_CONFIG; the token as env config, not argv). */
export function restoreGit(dir: string, token: string | undefined, signal: AbortSignal): Git {
  const pairs = [...SAFE_CONFIG];
  if (token) pairs.push(['http.extraHeader', `Authorization: Bearer ${token}`]);
  const env = { ...configEnv(pairs), GIT_DIR: join(dir, '.git'), GIT_WORK_TREE: dir };
  return (args, okCodes) => runGit(args, { cwd: dir, env, okCodes, signal });
}
