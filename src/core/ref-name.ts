// Ref names: the only mutable names in hoard (`team/app/main`,
// `cache/node-modules/linux`). They become object keys and file paths, so the
// alphabet is conservative and every segment is checked.

import { HoardError } from './errors.ts';

const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9._@+=-]*$/;
export const MAX_REF_NAME_LENGTH = 512;

export function validateRefName(name: unknown): string {
  const fail = (why: string): never => {
    throw new HoardError('HOARD_EREF_NAME_INVALID', `invalid ref name ${JSON.stringify(name)}: ${why}`, {
      hint: 'use /-separated segments of letters, digits and . _ - @ + = (not starting with . or -)',
    });
  };
  if (typeof name !== 'string' || name.length === 0) return fail('empty');
  if (name.length > MAX_REF_NAME_LENGTH) return fail(`longer than ${MAX_REF_NAME_LENGTH} characters`);
  for (const seg of name.split('/')) {
    if (seg === '') return fail('empty segment');
    if (!SEGMENT_RE.test(seg)) return fail(`bad segment ${JSON.stringify(seg)}`);
    if (seg.endsWith('.lock') || seg.endsWith('.tmp')) return fail('segments may not end in .lock or .tmp');
  }
  return name;
}

/** Validates a list prefix: any leading part of a ref name (may end mid-segment or in `/`). */
export function validateRefPrefix(prefix: unknown): string {
  if (
    typeof prefix !== 'string' ||
    !/^[A-Za-z0-9._@+=/-]*$/.test(prefix) ||
    prefix.split('/').includes('..')
  ) {
    throw new HoardError('HOARD_EREF_NAME_INVALID', `invalid ref prefix ${JSON.stringify(prefix)}`);
  }
  return prefix;
}
