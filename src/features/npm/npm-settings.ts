// The npm registry cache's settings (`[npm]` table, `--npm-*` flags,
// HOARD_NPM_* variables), declared once. Kept apart from the feature so that
// defining the CLI's flags loads nothing heavy.

import { defineSettings, setting, type ValuesOf } from '../../core/settings.ts';

/** The public npm registry: the upstream when none is configured. */
export const NPM_PUBLIC_REGISTRY = 'https://registry.npmjs.org/';

export const npmSettings = defineSettings('npm', 'npm registry cache', {
  upstream: setting.string({
    default: NPM_PUBLIC_REGISTRY,
    valueName: 'URL',
    doc: 'the registry `/npm/` is a pull-through cache of (package documents, tarballs)',
  }),
  scopeUpstreams: setting.map({
    key: 'scope-upstreams',
    flag: 'npm-scope-upstream',
    env: 'HOARD_NPM_SCOPE_UPSTREAMS',
    valueName: '@SCOPE=URL',
    doc: "packages of `@SCOPE` come from URL instead (like `.npmrc`'s `@scope:registry`; repeatable flag; a `[npm.scope-upstreams]` table in a file)",
  }),
  upstreamTokens: setting.map({
    key: 'upstream-tokens',
    flag: 'npm-upstream-token',
    env: 'HOARD_NPM_UPSTREAM_TOKENS',
    valueName: 'URL=TOKEN',
    doc: 'Bearer token hoard sends to the upstream at URL (and to tarball URLs of its origin); kept server-side, never sent to clients or logged. Prefer the variable or the config file to the flag (flags show in `ps`)',
  }),
  maxStalenessMs: setting.duration({
    key: 'max-staleness',
    default: 5 * 60_000,
    doc: 'a cached package document younger than this is served without asking the upstream; `0` = always revalidate (ETag / Last-Modified)',
  }),
  fetchTimeoutMs: setting.duration({
    key: 'fetch-timeout',
    default: 10_000,
    positive: true,
    doc: 'a document revalidation taking longer is abandoned and the cached document served stale (`Warning: 110` header, metric)',
  }),
  allowWriteThrough: setting.boolean({
    default: false,
    doc: 'forward writes (`npm publish`, `dist-tag`, `unpublish`) to the upstream with the upstream token instead of answering 405 (needs a write-scoped hoard token)',
  }),
});

export type NpmSettingsValues = ValuesOf<(typeof npmSettings)['settings']>;
