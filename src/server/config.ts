// Server configuration: one resolved object built from, in order of
// precedence, command-line flags > HOARD_* environment variables > a config
// file (--config hoard.toml or .json) > DEFAULTS. docs/configuration.md lists
// every key; keep the two in step.

import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { DEFAULTS, parseDuration, parseSize } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';

export interface ServerConfig {
  /** `host:port` (port 0 picks a free one). */
  listen: string;
  /** Data directory: the disk tier, the refs when there is no shared remote. */
  dataDir: string;
  /** Shared authoritative tier (s3://, gs://, file://, http(s)://), or undefined. */
  remote: string | undefined;
  maxMemoryBytes: number;
  maxBlobBytes: number;
  /** Disk tier bound in bytes; 0 = unbounded. */
  maxDiskBytes: number;
  /** Tokens file (issue 6); undefined = loopback clients only. */
  tokensFile: string | undefined;
  /** Reads without a token are allowed. */
  publicRead: boolean;
  logLevel: string;
  drainTimeoutMs: number;
  /** After SIGTERM, /readyz answers 503 this long before the listener closes (load balancers notice). */
  drainDelayMs: number;
  /** Unreferenced blobs younger than this are never collected (authoritative disk). */
  gcGraceMs: number;
  /** Ref-name prefixes of cache refs (may expire when unused). */
  cacheRefPrefixes: string[];
  /** Cache refs unused this long are deleted; 0 = never. */
  cacheRefTtlMs: number;
  /** Request line and headers must arrive within this (408 and close otherwise). */
  headersTimeoutMs: number;
  /** A request body that receives nothing for this long is cut; 0 = never. */
  bodyIdleTimeoutMs: number;
  /** Idle kept-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
  /** Most connections at once; 0 = derived from the descriptor limit (connection-limits.ts). */
  maxConnections: number;
}

/** Raw settings as they come from flags, env or a file: strings, numbers or booleans. */
export type RawSettings = Partial<Record<SettingKey, string | number | boolean | undefined>>;

type SettingKey =
  | 'listen'
  | 'data'
  | 'remote'
  | 'maxMemory'
  | 'maxBlobSize'
  | 'maxDisk'
  | 'tokens'
  | 'publicRead'
  | 'logLevel'
  | 'drainTimeout'
  | 'drainDelay'
  | 'gcGrace'
  | 'cacheRefPrefixes'
  | 'cacheRefTtl'
  | 'headersTimeout'
  | 'bodyIdleTimeout'
  | 'keepAliveTimeout'
  | 'maxConnections';

/** Setting → environment variable. */
export const ENV_VARS: Record<SettingKey, string> = {
  listen: 'HOARD_LISTEN',
  data: 'HOARD_DATA',
  remote: 'HOARD_REMOTE',
  maxMemory: 'HOARD_MAX_MEMORY',
  maxBlobSize: 'HOARD_MAX_BLOB_SIZE',
  maxDisk: 'HOARD_MAX_DISK',
  tokens: 'HOARD_TOKENS',
  publicRead: 'HOARD_PUBLIC_READ',
  logLevel: 'HOARD_LOG_LEVEL',
  drainTimeout: 'HOARD_DRAIN_TIMEOUT',
  drainDelay: 'HOARD_DRAIN_DELAY',
  gcGrace: 'HOARD_GC_GRACE',
  cacheRefPrefixes: 'HOARD_CACHE_REF_PREFIXES',
  cacheRefTtl: 'HOARD_CACHE_REF_TTL',
  headersTimeout: 'HOARD_HEADERS_TIMEOUT',
  bodyIdleTimeout: 'HOARD_BODY_IDLE_TIMEOUT',
  keepAliveTimeout: 'HOARD_KEEP_ALIVE_TIMEOUT',
  maxConnections: 'HOARD_MAX_CONNECTIONS',
};

const KEYS = Object.keys(ENV_VARS) as SettingKey[];

/** `max-memory`, `max_memory` and `maxMemory` all name the same setting. */
function normalizeKey(key: string): SettingKey | undefined {
  const camel = key.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase());
  return KEYS.find((k) => k === camel);
}

export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): RawSettings {
  const out: RawSettings = {};
  for (const k of KEYS) {
    const v = env[ENV_VARS[k]];
    if (v !== undefined && v !== '') out[k] = v;
  }
  return out;
}

export async function settingsFromFile(path: string): Promise<RawSettings> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `cannot read config file ${path}`, { cause: err });
  }
  let obj: unknown;
  try {
    obj = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `config file ${path} is not valid: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    throw new HoardError('HOARD_ECONFIG', `config file ${path} must hold a table/object of settings`);
  // A `[server]` table is accepted too, so one file can configure several commands.
  const table = (obj as Record<string, unknown>).server ?? obj;
  const out: RawSettings = {};
  for (const [key, value] of Object.entries(table as Record<string, unknown>)) {
    // Other commands' tables (`[git]` is read by src/git/server-plugin.ts).
    if ((key === 'server' || key === 'git') && table === obj) continue;
    const k = normalizeKey(key);
    if (!k)
      throw new HoardError('HOARD_ECONFIG', `config file ${path}: unknown setting ${JSON.stringify(key)}`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
      throw new HoardError(
        'HOARD_ECONFIG',
        `config file ${path}: ${key} must be a string, number or boolean`,
      );
    out[k] = value;
  }
  return out;
}

function size(v: string | number | boolean | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  try {
    return parseSize(String(v));
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `${name}: ${(err as Error).message}`);
  }
}

function count(v: string | number | boolean | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const s = String(v).trim().toLowerCase();
  if (s === 'auto') return 0;
  const n = Number(s);
  if (s === '' || !Number.isSafeInteger(n) || n < 0)
    throw new HoardError(
      'HOARD_ECONFIG',
      `${name}: expected a whole number or "auto", got ${JSON.stringify(v)}`,
    );
  return n;
}

function bool(v: string | number | boolean | undefined, name: string): boolean {
  if (v === undefined) return false;
  if (typeof v === 'boolean') return v;
  const s = String(v).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new HoardError('HOARD_ECONFIG', `${name}: not a boolean: ${JSON.stringify(v)}`);
}

/** Merges layers (later wins) and validates into a ServerConfig. */
export function resolveConfig(...layers: RawSettings[]): ServerConfig {
  const m: RawSettings = {};
  for (const layer of layers)
    for (const k of KEYS) if (layer[k] !== undefined && layer[k] !== null) m[k] = layer[k];
  const listen = String(m.listen ?? DEFAULTS.listen);
  parseListen(listen);
  const duration = (v: string | number | boolean | undefined, name: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v === 'number') return v * 1000;
    try {
      return parseDuration(String(v));
    } catch (err) {
      throw new HoardError('HOARD_ECONFIG', `${name}: ${(err as Error).message}`);
    }
  };
  return {
    listen,
    dataDir: resolve(String(m.data ?? DEFAULTS.dataDir)),
    remote: m.remote === undefined || m.remote === '' ? undefined : String(m.remote),
    maxMemoryBytes: size(m.maxMemory, 'max-memory', DEFAULTS.memoryTierBytes),
    maxBlobBytes: size(m.maxBlobSize, 'max-blob-size', DEFAULTS.maxBlobBytes),
    maxDiskBytes: size(m.maxDisk, 'max-disk', DEFAULTS.maxDiskBytes),
    tokensFile: m.tokens === undefined || m.tokens === '' ? undefined : resolve(String(m.tokens)),
    publicRead: bool(m.publicRead, 'public-read'),
    logLevel: String(m.logLevel ?? DEFAULTS.logLevel),
    drainTimeoutMs: duration(m.drainTimeout, 'drain-timeout', DEFAULTS.drainTimeoutMs),
    gcGraceMs: duration(m.gcGrace, 'gc-grace', DEFAULTS.gcGraceMs),
    cacheRefPrefixes: String(m.cacheRefPrefixes ?? DEFAULTS.cacheRefPrefixes)
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p.length > 0),
    cacheRefTtlMs: duration(m.cacheRefTtl, 'cache-ref-ttl', DEFAULTS.cacheRefTtlMs),
    drainDelayMs: duration(m.drainDelay, 'drain-delay', DEFAULTS.drainDelayMs),
    headersTimeoutMs: positive(
      duration(m.headersTimeout, 'headers-timeout', DEFAULTS.headersTimeoutMs),
      'headers-timeout',
    ),
    bodyIdleTimeoutMs: duration(m.bodyIdleTimeout, 'body-idle-timeout', DEFAULTS.bodyIdleTimeoutMs),
    keepAliveTimeoutMs: positive(
      duration(m.keepAliveTimeout, 'keep-alive-timeout', DEFAULTS.keepAliveTimeoutMs),
      'keep-alive-timeout',
    ),
    maxConnections: count(m.maxConnections, 'max-connections', 0),
  };
}

/** A timeout that must not be switched off (0 would let a silent client hold a connection forever). */
function positive(ms: number, name: string): number {
  if (ms <= 0) throw new HoardError('HOARD_ECONFIG', `${name}: must be greater than 0`);
  return ms;
}

/** Full resolution: flags > env > config file (path from flags or HOARD_CONFIG) > defaults. */
export async function loadConfig(
  flags: RawSettings & { config?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServerConfig> {
  const fromEnv = settingsFromEnv(env);
  const configPath = flags.config ?? env.HOARD_CONFIG;
  const fromFile = configPath ? await settingsFromFile(resolve(configPath)) : {};
  return resolveConfig(fromFile, fromEnv, flags);
}

/** Splits `host:port`, `[v6]:port`, `:port` or `port`. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(text.trim());
  if (!m) throw new HoardError('HOARD_ECONFIG', `--listen: expected host:port, got ${JSON.stringify(text)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new HoardError('HOARD_ECONFIG', `--listen: port ${port} out of range`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  return { host, port };
}
