// The snapshot feature's settings (`[snapshots]` table, `--snapshots-*`
// flags, HOARD_SNAPSHOTS_*), apart from the feature so the CLI can declare
// its flags without loading it.

import { DEFAULTS } from '../core/defaults.ts';
import { defineSettings, setting } from '../core/settings.ts';

export const snapshotSettings = defineSettings('snapshots', 'Git snapshots', {
  debounceMs: setting.duration({
    key: 'debounce',
    default: DEFAULTS.snapshotDebounceMs,
    doc: "after a fetch moves a repository's default branch, its new snapshot is generated once the branch has been quiet this long",
  }),
  generateConcurrency: setting.integer({
    key: 'generate-concurrency',
    default: DEFAULTS.snapshotGenerateConcurrency,
    min: 1,
    max: 64,
    doc: 'snapshot generations running at once (each runs a single-threaded `git pack-objects`)',
  }),
  prebuildAnchors: setting.boolean({
    key: 'prebuild-anchors',
    default: DEFAULTS.snapshotPrebuildAnchors,
    doc: "build each mirror's anchor pack (its history's deterministic pack, once per 512 commits of the default branch) in the background when the mirror is created or its default branch moves, so a repository's first snapshot request does not wait for it; costs that delta search (≈ 15 s of one core for eslint) per mirror even if no snapshot is ever asked for",
  }),
});
