// The git proxy's settings (`[git]` table, `--git-*` flags, HOARD_GIT_*
// variables), declared once. Kept apart from the proxy itself so that
// defining the CLI's flags loads nothing heavy.

import { DEFAULTS } from '../core/defaults.ts';
import { defineSettings, setting, type ValuesOf } from '../core/settings.ts';

export const gitSettings = defineSettings('git', 'Git proxy', {
  maxStalenessMs: setting.duration({
    key: 'max-staleness',
    default: DEFAULTS.gitMaxStalenessMs,
    doc: 'ref advertisements are never older than this; `0` = always ask the upstream',
  }),
  fetchTimeoutMs: setting.duration({
    key: 'fetch-timeout',
    default: DEFAULTS.gitFetchTimeoutMs,
    doc: 'an upstream fetch taking longer is abandoned and the mirror served stale (flagged)',
  }),
  upstreams: setting.map({
    key: 'upstreams',
    flag: 'git-upstream',
    env: 'HOARD_GIT_UPSTREAMS',
    valueName: 'NAME=URL',
    doc: 'serve `/git/NAME/…` from the mirror of URL (repeatable flag; space-separated in the variable; a `[git.upstreams]` table NAME = "URL" in a file); layers merge by name',
  }),
  implicitUpstreams: setting.boolean({
    key: 'allow-any-host',
    default: DEFAULTS.gitImplicitUpstreams,
    doc: 'also mirror `/git/<host>/<path>` from `https://<host>/<path>` for hosts no upstream maps (off: 404, so clients cannot point the server at internal hosts)',
  }),
  allowHosts: setting.list({
    key: 'allow-hosts',
    flag: 'git-allow-host',
    env: 'HOARD_GIT_ALLOW_HOSTS',
    default: [],
    valueName: 'GLOB',
    doc: 'with `allow-any-host`: only hosts matching these patterns, e.g. `*.github.com` (repeatable flag; empty: any host not denied)',
  }),
  denyHosts: setting.list({
    key: 'deny-hosts',
    flag: 'git-deny-host',
    env: 'HOARD_GIT_DENY_HOSTS',
    default: [],
    valueName: 'GLOB',
    doc: 'with `allow-any-host`: never these hosts (repeatable flag); IP literals, `localhost` and `*.internal`, `*.local`, `*.lan`, `*.home.arpa` are always denied',
  }),
  processTimeoutMs: setting.duration({
    key: 'process-timeout',
    default: DEFAULTS.gitProcessTimeoutMs,
    positive: true,
    doc: 'any git child process (clone, fetch, upload-pack, maintenance) running longer is killed with its process group',
  }),
  warmConcurrency: setting.integer({
    key: 'warm-concurrency',
    default: DEFAULTS.gitWarmConcurrency,
    min: 1,
    max: 64,
    doc: 'mirrors fetched in parallel by the warm-up after start-up',
  }),
  maintenanceIntervalMs: setting.duration({
    key: 'maintenance-interval',
    default: DEFAULTS.gitMaintenanceIntervalMs,
    doc: 'period of mirror maintenance (geometric repack, commit-graph) of mirrors fetched since the last run; `0` = never',
  }),
  unknownObjectFetchesPerWindow: setting.integer({
    key: 'unknown-object-fetches',
    default: DEFAULTS.gitUnknownObjectFetchesPerWindow,
    min: 0,
    max: 1000,
    doc: 'upstream fetches one mirror may start per `unknown-object-window` because a client wanted objects it lacks',
  }),
  unknownObjectFetchWindowMs: setting.duration({
    key: 'unknown-object-window',
    default: DEFAULTS.gitUnknownObjectFetchWindowMs,
    positive: true,
    doc: 'the window of `unknown-object-fetches`',
  }),
  mirrorPullRefs: setting.boolean({
    key: 'mirror-pull-refs',
    default: DEFAULTS.gitMirrorPullRefs,
    doc: 'also mirror and serve `refs/pull/*` (and every other upstream ref); off: only `refs/heads/*` and `refs/tags/*`, what `git clone` fetches (hosts advertise thousands of pull refs, doubling a mirror)',
  }),
  allowPushThrough: setting.boolean({
    default: false,
    doc: 'forward pushes to the upstream instead of refusing them',
  }),
});

export type GitSettingsValues = ValuesOf<(typeof gitSettings)['settings']>;
