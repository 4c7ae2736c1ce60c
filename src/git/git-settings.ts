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
  allowPushThrough: setting.boolean({
    default: false,
    doc: 'forward pushes to the upstream instead of refusing them',
  }),
});

export type GitSettingsValues = ValuesOf<(typeof gitSettings)['settings']>;
