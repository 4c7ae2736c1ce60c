// Option value parsers shared by the commands (commander passes strings).

import { InvalidArgumentError } from 'commander';

/** A whole number ≥ 1 (`--concurrency`, `-n`): NaN or 0 would start no work and hang. */
export function positiveInteger(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}
