// Wiring of the git proxy into `hoard serve`: its flags, its settings
// (flags > HOARD_GIT_* env > the `[git]` table of the config file > DEFAULTS)
// and a ServerPlugin ({ prefix: '/git', plugin }) that builds the
// MirrorManager with the server's data directory, logger and metrics registry.

import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { parse as parseToml } from 'smol-toml';
import { DEFAULTS, parseDuration } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';
import { authorizeRequest, type ServerContext } from '../server/context.ts';
import { type GitSubRoute, gitPlugin, pushScopeName } from './git-routes.ts';
import { type GitLogger, MirrorManager } from './mirror-manager.ts';
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

function duration(v: unknown, name: string, fallback: number): number {
  if (v === undefined || v === null || v === '') return fallback;
  try {
    return typeof v === 'number' ? Math.round(v * 1000) : parseDuration(String(v));
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `${name}: ${(err as Error).message}`);
  }
}

async function gitTable(path: string): Promise<Record<string, unknown>> {
  let obj: unknown;
  try {
    const text = await readFile(path, 'utf8');
    obj = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const git = (obj as Record<string, unknown> | null)?.git;
  return typeof git === 'object' && git !== null ? (git as Record<string, unknown>) : {};
}

function flag(v: unknown): boolean {
  return v === true || ['1', 'true', 'yes', 'on'].includes(String(v).toLowerCase());
}

/** A list setting: an array (file) or a space/comma-separated string (env). */
function list(v: unknown, name: string): string[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  throw new HoardError('HOARD_ECONFIG', `${name}: expected a list of host patterns`);
}

/**
 * Resolves the git settings. Config file: a `[git]` table with `max_staleness`,
 * `fetch_timeout`, `allow_push_through`, `implicit_upstreams`, `allow_hosts`,
 * `deny_hosts` and `upstreams` (a table NAME = URL). Env: HOARD_GIT_MAX_STALENESS,
 * HOARD_GIT_FETCH_TIMEOUT, HOARD_GIT_ALLOW_PUSH_THROUGH, HOARD_GIT_IMPLICIT_UPSTREAMS,
 * HOARD_GIT_ALLOW_HOSTS, HOARD_GIT_DENY_HOSTS (space-separated), HOARD_GIT_UPSTREAMS
 * (space-separated NAME=URL). Upstream mappings of all layers are merged, the later
 * layer winning per name; host pattern lists are taken from the first layer that sets them.
 */
export async function resolveGitSettings(
  flags: GitFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<GitSettings> {
  const configPath = flags.config ?? env.HOARD_CONFIG;
  const file = configPath ? await gitTable(resolve(configPath)) : {};
  const pick = (...vals: unknown[]) => vals.find((v) => v !== undefined && v !== '');
  const maxStalenessMs = duration(
    pick(flags.gitMaxStaleness, env.HOARD_GIT_MAX_STALENESS, file.max_staleness ?? file.maxStaleness),
    'git-max-staleness',
    DEFAULTS.gitMaxStalenessMs,
  );
  const fetchTimeoutMs = duration(
    pick(flags.gitFetchTimeout, env.HOARD_GIT_FETCH_TIMEOUT, file.fetch_timeout ?? file.fetchTimeout),
    'git-fetch-timeout',
    DEFAULTS.gitFetchTimeoutMs,
  );
  const push = pick(
    flags.gitAllowPushThrough,
    env.HOARD_GIT_ALLOW_PUSH_THROUGH,
    file.allow_push_through ?? file.allowPushThrough,
  );
  const allowPushThrough = flag(push);
  const implicit = pick(
    flags.gitAllowAnyHost,
    env.HOARD_GIT_IMPLICIT_UPSTREAMS,
    file.implicit_upstreams ?? file['implicit-upstreams'] ?? file.implicitUpstreams,
  );
  const implicitUpstreams = implicit === undefined ? DEFAULTS.gitImplicitUpstreams : flag(implicit);
  const allowHosts =
    list(
      pick(flags.gitAllowHost?.length ? flags.gitAllowHost : undefined, env.HOARD_GIT_ALLOW_HOSTS) ??
        file.allow_hosts ??
        file.allowHosts,
      'git allow_hosts',
    ) ?? [];
  const denyHosts =
    list(
      pick(flags.gitDenyHost?.length ? flags.gitDenyHost : undefined, env.HOARD_GIT_DENY_HOSTS) ??
        file.deny_hosts ??
        file.denyHosts,
      'git deny_hosts',
    ) ?? [];
  // Fails at start-up, not at the first request.
  for (const p of [...allowHosts, ...denyHosts]) hostPattern(p);
  const byName = new Map<string, UpstreamMapping>();
  const fileUp = file.upstreams;
  if (fileUp && typeof fileUp === 'object' && !Array.isArray(fileUp))
    for (const [n, u] of Object.entries(fileUp)) {
      const m = parseUpstreamSpec(`${n}=${String(u)}`);
      byName.set(m.name, m);
    }
  else if (Array.isArray(fileUp))
    for (const s of fileUp) {
      const m = parseUpstreamSpec(String(s));
      byName.set(m.name, m);
    }
  for (const s of (env.HOARD_GIT_UPSTREAMS ?? '').split(/\s+/).filter(Boolean)) {
    const m = parseUpstreamSpec(s);
    byName.set(m.name, m);
  }
  for (const s of flags.gitUpstream ?? []) {
    const m = parseUpstreamSpec(s);
    byName.set(m.name, m);
  }
  return {
    maxStalenessMs,
    fetchTimeoutMs,
    upstreams: [...byName.values()],
    allowPushThrough,
    implicitUpstreams,
    allowHosts,
    denyHosts,
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
        log: app.log.child({ component: 'git' }) as unknown as GitLogger,
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
