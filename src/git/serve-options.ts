// The `--git-*` flags of `hoard serve`, kept apart from the git server
// plugin so that defining the CLI does not load the mirror manager and its
// dependencies (every `hoard` invocation pays for what main.ts imports).

import type { Command } from 'commander';

export interface GitFlags {
  gitMaxStaleness?: string;
  gitFetchTimeout?: string;
  gitUpstream?: string[];
  gitAllowPushThrough?: boolean;
  gitAllowAnyHost?: boolean;
  gitAllowHost?: string[];
  gitDenyHost?: string[];
  config?: string;
}

/** Adds the git flags to `hoard serve`. */
export function addGitServeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--git-max-staleness <duration>',
      'git: ref advertisements are never older than this (default 10s; 0 = always fetch)',
    )
    .option(
      '--git-fetch-timeout <duration>',
      'git: serve the mirror stale when an upstream fetch takes longer (default 30s)',
    )
    .option(
      '--git-upstream <NAME=URL>',
      'git: map /git/NAME/… to URL/… (repeatable; only mapped repositories are served unless --git-allow-any-host)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--git-allow-any-host',
      'git: also mirror /git/<host>/<path> from https://<host>/<path> for unmapped hosts (off: 404)',
    )
    .option(
      '--git-allow-host <glob>',
      'git: with --git-allow-any-host, only hosts matching these patterns (repeatable, e.g. *.github.com)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--git-deny-host <glob>',
      'git: with --git-allow-any-host, never these hosts (repeatable; localhost, *.internal… always denied)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--git-allow-push-through', 'git: forward pushes to the upstream instead of refusing them');
}
