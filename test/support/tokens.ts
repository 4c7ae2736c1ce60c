// Tokens files for tests that run a server with auth: one list of tokens,
// written as the TOML (default) or JSON the server's tokens loader reads
// (src/server/auth.ts, docs/configuration.md), so no test hand-writes
// `[[token]]` tables and a change to the file's shape is made in one place.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface TestToken {
  name: string;
  /** The secret itself; or give `sha256` (hex of its hash) instead. */
  token?: string;
  sha256?: string;
  scopes: ('read' | 'write')[];
  refs?: string[];
}

/** The tokens as TOML, one `[[token]]` table each. */
export function tokensToml(tokens: readonly TestToken[]): string {
  // JSON strings are valid TOML basic strings for the plain ASCII tests use.
  const value = (v: string | string[]) =>
    Array.isArray(v) ? `[${v.map((s) => JSON.stringify(s)).join(', ')}]` : JSON.stringify(v);
  return tokens
    .map((t) => {
      const lines = ['[[token]]', `name = ${value(t.name)}`];
      if (t.token !== undefined) lines.push(`token = ${value(t.token)}`);
      if (t.sha256 !== undefined) lines.push(`sha256 = ${value(t.sha256)}`);
      lines.push(`scopes = ${value(t.scopes)}`);
      if (t.refs !== undefined) lines.push(`refs = ${value(t.refs)}`);
      return `${lines.join('\n')}\n`;
    })
    .join('\n');
}

/** Writes the tokens to `<dir>/tokens.toml` (or `tokens.json`); returns its path. */
export async function writeTokensFile(
  dir: string,
  tokens: readonly TestToken[],
  format: 'toml' | 'json' = 'toml',
): Promise<string> {
  const path = join(dir, `tokens.${format}`);
  await writeFile(path, format === 'json' ? JSON.stringify({ tokens }) : tokensToml(tokens));
  return path;
}
