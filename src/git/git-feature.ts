// The git smart-HTTP proxy as a feature of `hoard serve`: its settings
// (git-settings.ts), the mirror service (MirrorManager) built from the
// server's data directory, metrics registry and logger, and the /git routes.
// Features built on the mirrors (snapshots) get this feature through
// `ctx.use(gitFeature)`: its `mirrors`, and `addRoutes` for routes under
// /git/<repo>/… (added before the server registers routes).

import { resolveGroup } from '../core/settings.ts';
import { loadLayers, type RawSettings } from '../server/config.ts';
import { authorizeRequest } from '../server/context.ts';
import { defineFeature, type Feature } from '../server/feature.ts';
import { pushScopeName } from './git-receive-pack.ts';
import { type GitSubRoute, gitPlugin } from './git-routes.ts';
import { type GitSettingsValues, gitSettings } from './git-settings.ts';
import { MirrorManager } from './mirror-manager.ts';
import type { GitFlags } from './serve-options.ts';
import { hostPattern, parseUpstreamSpec, type UpstreamMapping, Upstreams } from './upstreams.ts';

export interface GitSettings {
  maxStalenessMs: number;
  fetchTimeoutMs: number;
  upstreams: UpstreamMapping[];
  allowPushThrough: boolean;
  /** Unmapped `/git/<host>/<path>` → `https://<host>/<path>` (off by default: 404). */
  implicitUpstreams: boolean;
  /** Host glob patterns the implicit mapping may reach (empty: any not denied). */
  allowHosts: string[];
  /** Host glob patterns the implicit mapping never reaches (added to DEFAULTS.gitImplicitDenyHosts). */
  denyHosts: string[];
}

export type { GitFlags } from './serve-options.ts';

/**
 * Resolves the git settings (src/git/git-settings.ts): flags > HOARD_GIT_*
 * variables > the `[git]` table of the config file > defaults; upstream
 * mappings of all layers merged by name, the later layer winning.
 */
export async function resolveGitSettings(
  flags: GitFlags & RawSettings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<GitSettings> {
  return toGitSettings(
    resolveGroup(gitSettings, await loadLayers([gitSettings], flags, env, { partial: true })),
  );
}

/** The proxy's view of the resolved `[git]` group: upstream specs and host patterns checked. */
export function toGitSettings(v: GitSettingsValues): GitSettings {
  // Bad patterns fail at start-up, not at the first request.
  for (const p of [...v.allowHosts, ...v.denyHosts]) hostPattern(p);
  return {
    maxStalenessMs: v.maxStalenessMs,
    fetchTimeoutMs: v.fetchTimeoutMs,
    upstreams: Object.entries(v.upstreams).map(([name, url]) => parseUpstreamSpec(`${name}=${url}`)),
    allowPushThrough: v.allowPushThrough,
    implicitUpstreams: v.implicitUpstreams,
    allowHosts: [...v.allowHosts],
    denyHosts: [...v.denyHosts],
  };
}

export interface GitFeature extends Feature {
  readonly mirrors: MirrorManager;
  /** Routes under /git/<repo>/… of a feature built on the mirrors; call it from that feature's create. */
  addRoutes(routes: readonly GitSubRoute[]): void;
}

export const gitFeature = defineFeature({
  name: 'git',
  settings: gitSettings,
  create(ctx, values): GitFeature {
    const settings = toGitSettings(values);
    const mirrors = new MirrorManager({
      dataDir: ctx.server.dataDir,
      upstreams: new Upstreams(settings.upstreams, {
        implicit: settings.implicitUpstreams,
        allowHosts: settings.allowHosts,
        denyHosts: settings.denyHosts,
      }),
      maxStalenessMs: settings.maxStalenessMs,
      fetchTimeoutMs: settings.fetchTimeoutMs,
      processTimeoutMs: values.processTimeoutMs,
      warmConcurrency: values.warmConcurrency,
      maintenanceIntervalMs: values.maintenanceIntervalMs,
      mirrorAllRefs: values.mirrorPullRefs,
      unknownObjectFetchesPerWindow: values.unknownObjectFetchesPerWindow,
      unknownObjectFetchWindowMs: values.unknownObjectFetchWindowMs,
      registry: ctx.metrics.registry,
      log: ctx.log,
    });
    const extra: GitSubRoute[] = [];
    return {
      prefix: '/git',
      mirrors,
      addRoutes: (routes) => {
        extra.push(...routes);
      },
      async routes(app) {
        await mirrors.start();
        await gitPlugin(app, {
          mirrors,
          start: false,
          allowPushThrough: settings.allowPushThrough,
          authorizePush: (request, key) => authorizeRequest(ctx.ctx, request, 'write', pushScopeName(key)),
          forwardClientBasicAuth: ctx.auth.tokens === undefined,
          routes: extra,
        });
      },
      close: () => mirrors.close(),
    };
  },
});
