// Which repository's cache a request works in. On GitHub the runtime token
// (a JWT) says so; here ACTIONS_RUNTIME_TOKEN is a hoard token from the
// tokens file, and its ref prefixes say so: a token whose `refs` include
// `cache/actions/<owner>/<repo>` works in the namespace `<owner>/<repo>`
// (the first such prefix), and may write only there (the prefix check of
// every write). A token without such a prefix (no `refs`, `""`,
// `cache/`), a loopback client without a tokens file and anonymous readers
// under --public-read work in the shared namespace `_`.
//
// Two repositories' keys never meet: the same key and version saved by two
// namespaces are two entries, and a restore looks in its own namespace only.

import { validateRefName } from '../../core/ref-name.ts';
import { type AuthPolicy, principalOf } from '../../server/auth.ts';
import { ACTIONS_REF_ROOT } from './cache-keys.ts';

export const SHARED_NAMESPACE = '_';

/** The namespace of the token in `authorization` (an Authorization header value). */
export function namespaceOf(policy: AuthPolicy, authorization: string | undefined): string {
  const p = principalOf(policy, authorization);
  for (const prefix of p?.refPrefixes ?? []) {
    const rest = prefix.startsWith(`${ACTIONS_REF_ROOT}/`)
      ? prefix.slice(ACTIONS_REF_ROOT.length + 1).replace(/\/+$/, '')
      : '';
    if (rest === '') continue;
    try {
      validateRefName(`${ACTIONS_REF_ROOT}/${rest}`);
      return rest;
    } catch {
      // not a usable namespace: look further
    }
  }
  return SHARED_NAMESPACE;
}
