// The composition root of `hoard serve`: the features it runs, in order (a
// feature built on another comes after it). Adding a feature is one file (or
// folder) exporting a defineFeature() and one line here. Each entry names
// its settings group eagerly (flags, env, config file and
// docs/configuration.md come from these) and loads its code lazily, so
// commands other than `serve` never pay for the server's features.

import { type Layer, resolveGroup, type SettingsGroup, type SettingsShape } from '../core/settings.ts';
import { actionsCacheSettings } from '../features/actions-cache/actions-cache-settings.ts';
import { consoleSettings } from '../features/console/console-settings.ts';
import { npmSettings } from '../features/npm/npm-settings.ts';
import { gitSettings } from '../git/git-settings.ts';
import { snapshotSettings } from '../git/snapshot-settings.ts';
import type { EntryReferences } from '../server/entry-references.ts';
import type { Feature, FeatureDefinition, FeatureUse } from '../server/feature.ts';
import { serverSettings } from '../server/server-settings.ts';

interface FeatureEntry {
  readonly settings: SettingsGroup | undefined;
  /** Loads the feature and binds it to its settings' values from the layers. */
  use(layers: readonly Layer[]): Promise<FeatureUse>;
  /** Loads the feature's definition (for what it declares statically, e.g. entryReferences). */
  definition(): Promise<FeatureDefinition>;
}

function entry<S extends SettingsShape, F extends Feature>(
  settings: SettingsGroup<S> | undefined,
  load: () => Promise<FeatureDefinition<S, F>>,
): FeatureEntry {
  return {
    settings,
    definition: load as () => Promise<FeatureDefinition>,
    async use(layers) {
      const { withSettings } = await import('../server/feature.ts');
      return withSettings(await load(), settings ? resolveGroup(settings, layers) : {});
    },
  };
}

export const SERVE_FEATURES: readonly FeatureEntry[] = [
  entry(undefined, async () => (await import('../server/api-feature.ts')).apiFeature),
  entry(gitSettings, async () => (await import('../git/git-feature.ts')).gitFeature),
  entry(snapshotSettings, async () => (await import('../git/snapshot-feature.ts')).snapshotFeature),
  entry(undefined, async () => (await import('../features/gradle/gradle-feature.ts')).gradleFeature),
  entry(undefined, async () => (await import('../features/bazel/bazel-feature.ts')).bazelFeature),
  entry(undefined, async () => (await import('../features/ccache/ccache-feature.ts')).ccacheFeature),
  entry(undefined, async () => (await import('../features/turbo/turbo-feature.ts')).turboFeature),
  entry(undefined, async () => (await import('../features/nx/nx-feature.ts')).nxFeature),
  entry(npmSettings, async () => (await import('../features/npm/npm-feature.ts')).npmFeature),
  entry(
    actionsCacheSettings,
    async () => (await import('../features/actions-cache/actions-cache-feature.ts')).actionsCacheFeature,
  ),
  entry(consoleSettings, async () => (await import('../features/console/console-feature.ts')).consoleFeature),
];

/** Every settings group of `hoard serve`: the server's own, then each feature's. */
export const SERVE_SETTINGS: readonly SettingsGroup[] = [
  serverSettings,
  ...SERVE_FEATURES.flatMap((f) => (f.settings ? [f.settings] : [])),
];

/** Every entry format the features declare references for (gc follows them; server/entry-references.ts). */
export async function serveEntryReferences(): Promise<EntryReferences[]> {
  const defs = await Promise.all(SERVE_FEATURES.map((f) => f.definition()));
  return defs.flatMap((d) => d.entryReferences ?? []);
}
