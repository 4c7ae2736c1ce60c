// The settings of `hoard serve` itself (the top level of the config file):
// declared once here, from which its flags, HOARD_* variables, config keys
// and docs/configuration.md's table are derived (src/core/settings.ts).
// Defaults come from src/core/defaults.ts, where the internal constants that
// are deliberately not settings live too.

import { DEFAULTS } from '../core/defaults.ts';
import { defineSettings, type SettingsGroup, setting, type ValuesOf } from '../core/settings.ts';

export const serverSettings = defineSettings(undefined, 'Server', {
  listen: setting.string({
    default: DEFAULTS.listen,
    valueName: 'HOST:PORT',
    doc: 'address to listen on; `[::1]:7777`, `:7777` and port `0` (any free port) work. An address in use (or not local, or a privileged port) is `HOARD_ELISTEN` naming it, with a hint; nothing is left running',
  }),
  dataDir: setting.string({
    key: 'data',
    default: DEFAULTS.dataDir,
    valueName: 'DIR',
    doc: 'data directory: the disk tier, and the refs when there is no `--remote`',
  }),
  remote: setting.optionalString({
    valueName: 'URL',
    doc: 'shared authoritative tier: `s3://bucket/prefix`, `gs://bucket/prefix`, `file:///path` or `http(s)://host:port` (another hoard server)',
  }),
  publicUrl: setting.optionalString({
    valueName: 'URL',
    doc: 'the URL clients reach this server at, written into snapshot archives as `origin` (servers sharing a bucket must agree on it); default: the address it listens on',
  }),
  maxMemoryBytes: setting.size({
    key: 'max-memory',
    default: DEFAULTS.memoryTierBytes,
    doc: 'memory tier bound (LRU by bytes)',
  }),
  memoryMaxBlobBytes: setting.size({
    key: 'memory-max-blob-size',
    default: DEFAULTS.memoryTierMaxBlobBytes,
    doc: 'larger blobs never enter the memory tier (they would evict everything else)',
  }),
  maxBlobBytes: setting.size({
    key: 'max-blob-size',
    default: DEFAULTS.maxBlobBytes,
    doc: 'largest blob a PUT may store (413 above)',
  }),
  maxDiskBytes: setting.size({
    key: 'max-disk',
    default: DEFAULTS.maxDiskBytes,
    doc: 'disk tier bound, `0` = unbounded (see [Bounded disk](#bounded-disk))',
  }),
  gcGraceMs: setting.duration({
    key: 'gc-grace',
    default: DEFAULTS.gcGraceMs,
    doc: 'unreferenced blobs used or written more recently are never collected',
  }),
  gcKeepVersions: setting.integer({
    key: 'gc-keep-versions',
    default: 1,
    min: 1,
    max: 10_000,
    doc: 'versions of each synced ref (snapshot) that garbage collection and the disk bound keep: `1` keeps the current version only; `N` also keeps the N-1 before it (their trees and files), so `hoard log`, `pull --at` and `diff` reach that far back after a gc',
  }),
  cacheRefPrefixes: setting.list({
    default: DEFAULTS.cacheRefPrefixes.split(','),
    doc: 'ref-name prefixes of cache refs (comma-separated; an array in a file)',
  }),
  cacheRefTtlMs: setting.duration({
    key: 'cache-ref-ttl',
    default: DEFAULTS.cacheRefTtlMs,
    doc: 'cache refs not read or written through this server for this long are deleted; `0` = never',
  }),
  tokensFile: setting.optionalString({
    key: 'tokens',
    valueName: 'FILE',
    doc: 'tokens file (TOML or JSON, see [Auth](#auth)); without it only loopback clients are served',
  }),
  publicRead: setting.boolean({ default: false, doc: 'with `--tokens`: reads need no token' }),
  authFailureLimit: setting.integer({
    default: DEFAULTS.authFailureLimit,
    doc: 'invalid tokens one client address (an IPv6 /64) may present per minute; past it, every request of that address carrying credentials gets 429 `HOARD_EAUTH_LOCKED` for a minute (loopback is exempt); `0` = no lockout',
  }),
  logLevel: setting.choice({
    default: DEFAULTS.logLevel,
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    valueName: 'LEVEL',
    doc: 'log level of the JSON log on stdout',
  }),
  scrubBytesPerSecond: setting.size({
    key: 'scrub-rate',
    default: DEFAULTS.scrubBytesPerSecond,
    doc: 'background re-hash of the disk tier, bytes per second (`16MiB` or `16MiB/s`); `0` = off',
  }),
  headersTimeoutMs: setting.duration({
    key: 'headers-timeout',
    default: DEFAULTS.headersTimeoutMs,
    positive: true,
    doc: 'the request line and headers must all arrive within this, or the server answers 408 and closes; see [Connection limits](#connection-limits)',
  }),
  bodyIdleTimeoutMs: setting.duration({
    key: 'body-idle-timeout',
    default: DEFAULTS.bodyIdleTimeoutMs,
    doc: 'a connection whose request body receives nothing for this long is closed; `0` = never',
  }),
  keepAliveTimeoutMs: setting.duration({
    key: 'keep-alive-timeout',
    default: DEFAULTS.keepAliveTimeoutMs,
    positive: true,
    doc: 'idle kept-alive connections are closed after this',
  }),
  maxConnections: setting.integer({
    default: 0,
    auto: true,
    doc: 'most connections at once; `auto` (`0`) is the smaller of 10,000 and the open-file limit minus a reserve',
  }),
  readWorkers: setting.integer({
    default: 0,
    min: 0,
    max: 64,
    auto: true,
    autoMeans: -1,
    valueName: 'N|auto',
    doc: 'extra processes that answer `GET`/`HEAD /v1/blobs/sha256:…` of blobs in the disk tier on the same TCP address (`SO_REUSEPORT`), handing every other request to this one; `auto` = CPU cores − 1. `0`: one process. Set it on a server whose small reads are CPU-bound (see [Read workers](#read-workers))',
  }),
  maxJsonBodyBytes: setting.size({
    key: 'max-json-body',
    default: DEFAULTS.maxJsonBodyBytes,
    doc: 'largest JSON request body (refs, `POST /v1/blobs/missing`)',
  }),
  blobBatchMaxBytes: setting.size({
    key: 'max-batch-bytes',
    default: DEFAULTS.blobBatchMaxBytes,
    doc: 'most blob bytes one `POST /v1/blobs/batch` response carries (blobs past it are answered "not sent"; at most 4 GiB - 1)',
  }),
  drainTimeoutMs: setting.duration({
    key: 'drain-timeout',
    default: DEFAULTS.drainTimeoutMs,
    doc: 'how long SIGTERM waits for in-flight requests before closing their connections',
  }),
  drainDelayMs: setting.duration({
    key: 'drain-delay',
    default: DEFAULTS.drainDelayMs,
    doc: 'after SIGTERM, how long `/readyz` answers 503 (everything else still served) before the listener closes',
  }),
});

export type ServerSettingsValues = ValuesOf<(typeof serverSettings)['settings']>;
export type { SettingsGroup };
