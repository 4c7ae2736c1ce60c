// The console's git page: one report per mirror (freshness against its
// bound, activity, size on disk, the latest snapshot), from the git
// feature's mirrors and the snapshot service, at most four gathered at once.

import { mapLimit } from '../../core/pool.ts';
import type { GitFeature } from '../../git/git-feature.ts';
import type { SnapshotFeature } from '../../git/snapshot-feature.ts';
import { iso, type MirrorReport } from './console-views.ts';
import type { DirSizes } from './disk-census.ts';

/** The mirrors' reports; null without the git feature. */
export async function mirrorReports(
  git: GitFeature | undefined,
  snapshots: SnapshotFeature | undefined,
  dirSizes: DirSizes,
): Promise<{ mirrors: MirrorReport[] } | null> {
  if (!git) return null;
  const service = snapshots?.service;
  const bound = git.mirrors.maxStalenessMs;
  const mirrors = await mapLimit(git.mirrors.list(), 4, async (m): Promise<MirrorReport> => {
    const snap = m.cloned && service ? await service.latest(m.key, m.dir).catch(() => undefined) : undefined;
    const hex = snap?.digest.slice('sha256:'.length);
    return {
      key: m.key,
      upstream: m.upstream,
      cloned: m.cloned,
      lastFetchAt: iso(m.lastFetchAt),
      ageSeconds:
        m.ageMs !== null
          ? Math.round(m.ageMs / 1000)
          : m.lastFetchAt !== null
            ? Math.max(0, Math.round((Date.now() - m.lastFetchAt) / 1000))
            : null,
      maxStalenessSeconds: Math.round(bound / 1000),
      fresh: m.fresh,
      fetching: m.fetching,
      staleServes: m.activity.staleServes,
      clonesServed: m.activity.uploadPacks,
      fetchErrors: m.activity.fetchErrors,
      lastError: m.activity.lastError
        ? { at: new Date(m.activity.lastError.at).toISOString(), message: m.activity.lastError.message }
        : null,
      sizeBytes: m.cloned ? await dirSizes.of(m.dir) : null,
      snapshot: snap
        ? {
            commit: snap.commit,
            digest: snap.digest,
            size: snap.size,
            generatedAt: new Date(snap.generatedAt).toISOString(),
            url: `/v1/blobs/sha256/${hex}`,
            stableUrl: `/git/${m.path.replace(/\.git$/, '')}.git/snapshot.tar.zst`,
          }
        : null,
    };
  });
  return { mirrors };
}
