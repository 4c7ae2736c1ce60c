// How the CLI talks: results on stdout (one JSON object with --json), human
// messages and errors on stderr, exit codes from the error module.

import { exitCodeOf, HoardError, toHoardError } from '../core/errors.ts';

export { formatBytes } from '../core/format-bytes.ts';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function info(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Prints an error with its code and hint, and returns the exit code to use. */
export function reportError(err: unknown, json = false): number {
  const e = err instanceof HoardError ? err : toHoardError(err);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ error: { code: e.code, message: e.message, hint: e.hint, ...(e.details ?? {}) } })}\n`,
    );
  }
  process.stderr.write(`hoard: ${e.message} [${e.code}]\n`);
  if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
  if (process.env.HOARD_DEBUG && e.cause)
    process.stderr.write(`cause: ${String((e.cause as Error).stack ?? e.cause)}\n`);
  return exitCodeOf(e);
}

/** Wraps a command action: errors become messages and exit codes, never stack traces. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<number | undefined>,
  opts: { jsonFlag?: boolean } = {},
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let json = false;
    if (opts.jsonFlag) {
      const cmdOpts = args.find((a) => typeof a === 'object' && a !== null && 'json' in (a as object));
      json = Boolean((cmdOpts as { json?: boolean } | undefined)?.json);
    }
    try {
      const code = await fn(...args);
      process.exitCode = typeof code === 'number' ? code : 0;
    } catch (err) {
      process.exitCode = reportError(err, json);
    }
  };
}
