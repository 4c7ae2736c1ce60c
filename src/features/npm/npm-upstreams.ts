// Which registry a package comes from, and the credentials hoard sends there.
// A package's scope picks a per-scope upstream (like `.npmrc`'s
// `@scope:registry`), else the default one. Tokens are the operator's, kept
// server-side: a client's own Authorization (its hoard token) never goes
// upstream, and an upstream token is only sent to its own origin (a
// document may name tarballs on another host, which must not receive it).

import { HoardError } from '../../core/errors.ts';

export interface Upstream {
  /** Base URL, ending in `/`. */
  readonly url: URL;
}

export class NpmUpstreams {
  readonly #default: Upstream;
  readonly #scopes = new Map<string, Upstream>();
  /** Token by origin + path prefix (normalized base URL). */
  readonly #tokens: { base: string; origin: string; token: string }[] = [];

  constructor(
    defaultUrl: string,
    scopes: Readonly<Record<string, string>>,
    tokens: Readonly<Record<string, string>>,
  ) {
    this.#default = { url: baseUrl(defaultUrl, 'npm upstream') };
    for (const [scope, url] of Object.entries(scopes)) {
      if (!/^@[a-z0-9][a-z0-9._~-]*$/i.test(scope))
        throw new HoardError('HOARD_ECONFIG', `npm scope upstream: invalid scope ${JSON.stringify(scope)}`, {
          hint: 'write it as @scope=https://registry.example/',
        });
      this.#scopes.set(scope.toLowerCase(), { url: baseUrl(url, `npm upstream of ${scope}`) });
    }
    for (const [url, token] of Object.entries(tokens)) {
      const base = baseUrl(url, 'npm upstream token');
      this.#tokens.push({ base: base.href, origin: base.origin, token });
    }
    // Longest base first: the most specific token wins.
    this.#tokens.sort((a, b) => b.base.length - a.base.length);
  }

  /** The upstream of a package (`@scope/name` or `name`). */
  of(name: string): Upstream {
    if (name.startsWith('@')) {
      const up = this.#scopes.get(name.slice(0, name.indexOf('/')).toLowerCase());
      if (up) return up;
    }
    return this.#default;
  }

  /** The default upstream (search and other pass-through endpoints). */
  get default(): Upstream {
    return this.#default;
  }

  /** Authorization for a request to `url`: a token configured for its base (same origin only). */
  authorization(url: URL): Record<string, string> {
    for (const t of this.#tokens)
      if (url.origin === t.origin && url.href.startsWith(t.base))
        return { authorization: `Bearer ${t.token}` };
    // A tarball of the upstream's origin outside its path (registries that
    // serve tarballs from another path on the same host).
    for (const t of this.#tokens) if (url.origin === t.origin) return { authorization: `Bearer ${t.token}` };
    return {};
  }
}

function baseUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new HoardError('HOARD_ECONFIG', `${what}: invalid URL ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new HoardError('HOARD_ECONFIG', `${what}: ${url.protocol} is not http(s)`);
  if (url.username || url.password)
    throw new HoardError('HOARD_ECONFIG', `${what}: put credentials in [npm] upstream-tokens, not the URL`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}

/** The URL of a package document at an upstream: `<base>@scope%2fname` as npm asks for it. */
export function documentUrl(up: Upstream, name: string): URL {
  return new URL(name.replace('/', '%2f'), up.url);
}
