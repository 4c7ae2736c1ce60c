// What every `--help` ends with: the exit codes (from the error module's
// EXIT table, so they cannot drift) and the environment variables the CLI
// reads. Required options are marked where commander lists them.

import type { Command, Help, Option } from 'commander';
import { EXIT } from '../core/errors.ts';

const EXIT_MEANING: Record<keyof typeof EXIT, string> = {
  ok: 'success',
  error: 'error (the message and its HOARD_E… code are on stderr, with a hint)',
  notFound: 'ref or version not found (HOARD_EREF_NOT_FOUND)',
  conflict:
    'conflict: changed here and on the remote, or a stale version (HOARD_ESYNC_CONFLICT, HOARD_EREF_CONFLICT)',
  noSpace: 'no space left on a disk (HOARD_ENO_SPACE)',
};

export const ENVIRONMENT: readonly (readonly [string, string])[] = [
  ['HOARD_TOKEN', 'bearer token for http(s):// remotes (keep it out of URLs and argv)'],
  ['HOARD_REMOTE', 'remote of push, pull and status when not given (before hoard.toml)'],
  ['HOARD_REF', 'ref of push, pull and status when --ref is not given (before hoard.toml)'],
  ['HOARD_PROGRESS', 'auto (bar on a terminal, plain lines otherwise), bar, plain or off'],
  ['HOARD_USER', 'who a push records for `hoard log` (default: the login name)'],
  ['HOARD_DEBUG', 'print the cause of an error too'],
];

function helpFooter(): string {
  const codes = (Object.keys(EXIT) as (keyof typeof EXIT)[]).map((k) => `  ${EXIT[k]}  ${EXIT_MEANING[k]}`);
  const width = Math.max(...ENVIRONMENT.map(([n]) => n.length));
  const env = ENVIRONMENT.map(([n, d]) => `  ${n.padEnd(width)}  ${d}`);
  return `\nExit codes:\n${codes.join('\n')}\n\nEnvironment:\n${env.join('\n')}\n`;
}

/** Marks required options in every command's help and adds the footer; call before registering commands. */
export function configureHelp(program: Command): void {
  program.configureHelp({
    optionDescription(this: Help, option: Option): string {
      const base = Object.getPrototypeOf(this).optionDescription.call(this, option) as string;
      return option.mandatory ? `(required) ${base}` : base;
    },
  });
  program.addHelpText('afterAll', helpFooter());
}
