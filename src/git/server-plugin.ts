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
import { type GitSubRoute, gitPlugin } from './git-routes.ts';
import { type GitLogger, MirrorManager } from './mirror-manager.ts';
import type { GitFlags } from './serve-options.ts';
import { parseUpstreamSpec, type UpstreamMapping, Upstreams } from './upstreams.ts';

export interface GitSettings {
  maxStalenessMs: number;
  fetchTimeoutMs: number;
  upstreams: UpstreamMapping[];
  allowPushThrough: boolean;
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

/**
 * Resolves the git settings. Config file: a `[git]` table with `max_staleness`,
 * `fetch_timeout`, `allow_push_through` and `upstreams` (a table NAME = URL).
 * Env: HOARD_GIT_MAX_STALENESS, HOARD_GIT_FETCH_TIMEOUT, HOARD_GIT_ALLOW_PUSH_THROUGH,
 * HOARD_GIT_UPSTREAMS (space-separated NAME=URL). Upstream mappings of all layers
 * are merged, the later layer winning per name.
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
  const allowPushThrough = push === true || ['1', 'true', 'yes', 'on'].includes(String(push).toLowerCase());
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
  return { maxStalenessMs, fetchTimeoutMs, upstreams: [...byName.values()], allowPushThrough };
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
        upstreams: new Upstreams(settings.upstreams),
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
        authorizePush: ctx?.auth ? (request) => authorizeRequest(ctx, request, 'write') : undefined,
        routes: extras.routes?.(mirrors, opts.ctx, app),
      });
    },
  };
}
