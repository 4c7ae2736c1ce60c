// Wiring of the git proxy into `hoard serve`: its settings (declared in
// git-settings.ts) and a ServerPlugin ({ prefix: '/git', plugin }) that builds the
// MirrorManager with the server's data directory, logger and metrics registry.

import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { resolveGroup } from '../core/settings.ts';
import { loadLayers, type RawSettings } from '../server/config.ts';
import { authorizeRequest, type ServerContext } from '../server/context.ts';
import { type GitSubRoute, gitPlugin, pushScopeName } from './git-routes.ts';
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

/** The proxy's view of the resolved `[git]` group: upstream specs checked and parsed. */
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

/** Hooks for features built on the mirrors (snapshots, issue 8). */
export interface GitServerExtras<Ctx = unknown> {
  /**
   * Extra routes under /git/<repo>/… (e.g. snapshot.tar.zst), given the mirrors, the server
   * context and the (encapsulated) fastify instance, e.g. for an onClose hook.
   */
  routes?: (mirrors: MirrorManager, ctx: Ctx | undefined, app: FastifyInstance) => GitSubRoute[];
  /** Called once the MirrorManager exists (subscribe to 'defaultBranchMoved' here). */
  onMirrors?: (mirrors: MirrorManager, ctx: Ctx | undefined) => void;
}

/** `{ prefix: '/git', plugin }` for buildServer's `deps.plugins`. */
export function gitServerPlugin<Ctx extends { metrics?: { registry?: Registry } }>(
  settings: GitSettings,
  dataDir: string,
  extras: GitServerExtras<Ctx> = {},
): {
  prefix: string;
  plugin: (app: FastifyInstance, opts: { ctx?: Ctx }) => Promise<void>;
} {
  return {
    prefix: '/git',
    plugin: async (app, opts) => {
      const mirrors = new MirrorManager({
        dataDir,
        upstreams: new Upstreams(settings.upstreams, {
          implicit: settings.implicitUpstreams,
          allowHosts: settings.allowHosts,
          denyHosts: settings.denyHosts,
        }),
        maxStalenessMs: settings.maxStalenessMs,
        fetchTimeoutMs: settings.fetchTimeoutMs,
        registry: opts.ctx?.metrics?.registry,
        log: app.log.child({ component: 'git' }),
      });
      extras.onMirrors?.(mirrors, opts.ctx);
      const ctx = opts.ctx as unknown as ServerContext | undefined;
      await gitPlugin(app, {
        mirrors,
        allowPushThrough: settings.allowPushThrough,
        authorizePush: ctx?.auth
          ? (request, key) => authorizeRequest(ctx, request, 'write', pushScopeName(key))
          : undefined,
        routes: extras.routes?.(mirrors, opts.ctx, app),
      });
    },
  };
}
