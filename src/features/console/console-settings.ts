// The web console's settings (`[console]` table, `--console-*` flags,
// HOARD_CONSOLE_*), apart from the feature so the CLI can declare its flags
// without loading it.

import { defineSettings, setting } from '../../core/settings.ts';

export const consoleSettings = defineSettings('console', 'Web console', {
  sampleIntervalMs: setting.duration({
    key: 'sample-interval',
    default: 10_000,
    positive: true,
    doc: 'how often the console samples request rates and tier sizes for its charts (an hour of samples is kept in memory, at most 3600)',
  }),
  sessionTtlMs: setting.duration({
    key: 'session-ttl',
    default: 12 * 3_600_000,
    positive: true,
    doc: 'how long a browser stays signed in to the console (sessions live in memory: a restart signs everyone out)',
  }),
});
