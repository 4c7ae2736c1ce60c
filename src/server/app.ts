// buildServer(config, { features }): the hoard cache server — its stores
// (memory → disk → shared tier), auth, metrics, connection limits and life
// cycle — and the features it runs (feature.ts), each created with its
// dependencies and given its own route context. The list of features comes
// from the composition root, src/cli/serve-features.ts; without one, the
// server runs the blob/ref API alone.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import Fastify, { LogController } from 'fastify';
import type { Clock } from '../core/clock.ts';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError, httpStatusOf, isNoSpaceErrno, NoSpaceError, toHoardError } from '../core/errors.ts';
import { openRemote, type Remote } from '../remote/remote.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { FsRefStore } from '../store/fs-ref-store.ts';
import { MemoryBlobStore } from '../store/memory-blob-store.ts';
import type { RefStore } from '../store/ref-store.ts';
import { apiFeature } from './api-feature.ts';
import { type AuthPolicy, loadTokens } from './auth.ts';
import { AuthFailureLimiter } from './auth-failures.ts';
import { blobFastPath } from './blob-fast-path.ts';
import { BoundedDiskStore } from './bounded-disk-store.ts';
import { parseListen, type ServerConfig } from './config.ts';
import { applyConnectionLimits, guardBodyIdle, httpServerOptions } from './connection-limits.ts';
import { authorizeRequest, type RouteAuthConfig, type ServerContext } from './context.ts';
import { DiskIndex } from './disk-index.ts';
import {
  type Feature,
  type FeatureContext,
  type FeatureKey,
  type FeatureUse,
  withSettings,
} from './feature.ts';
import { liveSet } from './gc.ts';
import { ServerMetrics } from './metrics.ts';
import type { WorkerStats } from './read-worker-messages.ts';
import { ReadWorkers, readWorkerCount, reusePortBalances } from './read-workers.ts';
import { RefExpiry } from './ref-expiry.ts';
import {
  logDestination,
  loggedUrl,
  logsRequests,
  primaryLoggerOptions,
  requestLogFields,
} from './request-log.ts';
import { Scrubber } from './scrub.ts';
import { TieredBlobStore, type TierHooks } from './tiered-blob-store.ts';

export interface ServerDeps {
  /** An already opened shared remote (tests wrap one to count reads); else config.remote is opened. */
  shared?: Remote;
  /** The features to run, in order (default: the blob/ref API alone). */
  features?: readonly FeatureUse[];
  /** Log destination override (tests pass false to silence). */
  logger?: boolean;
  /** Extra tier hooks (tests); the disk bound is the bounded disk store's own. */
  hooks?: TierHooks;
  /** The failed-token lockout's clock (tests advance it instead of waiting a minute). */
  clock?: Clock;
}

export interface HoardServer {
  app: FastifyInstance;
  ctx: ServerContext;
  /** The disk tier's LRU index, when --max-disk is set. */
  index: DiskIndex | undefined;
  /** The read workers (--read-workers), once listening; undefined without them. */
  readonly readWorkers: ReadWorkers | undefined;
  /** The running instance of a feature (tests, embedders). */
  feature<F extends Feature>(def: FeatureKey<F>): F;
  /** Starts listening; resolves with the base URL (http://host:port). */
  listen(): Promise<string>;
  /** Stops accepting, lets in-flight requests finish (bounded by drainTimeoutMs), closes the stores. */
  close(): Promise<void>;
  /** SIGTERM: /readyz turns 503 at once; after drainDelayMs, close(). */
  drain(): Promise<void>;
  /** Writes the buffered log lines out now (after a line scripts wait for, like "serving"). */
  flushLog(): void;
  /** Every route registered, as registered (test/server/route-inventory.test.ts holds it to docs/security.md). */
  readonly routes: readonly RegisteredRoute[];
}

/** One registered route: its methods, full URL pattern and the auth scope it declares (undefined: none declared). */
export interface RegisteredRoute {
  readonly methods: readonly string[];
  readonly url: string;
  readonly scope: string | undefined;
}

export async function buildServer(config: ServerConfig, deps: ServerDeps = {}): Promise<HoardServer> {
  const metrics = new ServerMetrics();
  // The data directory is a local disk: its tiny metadata reads skip the thread pool (sync-metadata.ts).
  // Small PUTs and batched uploads are made durable through the store's journal (blob-journal.ts).
  const disk = await FsBlobStore.open(config.dataDir, { syncStat: true, journal: true });
  const memory = new MemoryBlobStore({
    maxBytes: config.maxMemoryBytes,
    maxBlobBytes: config.memoryMaxBlobBytes,
  });
  const shared =
    deps.shared ?? (config.remote ? await openRemote(config.remote, { create: true }) : undefined);
  const refs: RefStore = shared ? shared.refs : await FsRefStore.open(config.dataDir, { syncReads: true });
  // The disk bound: an LRU index of the disk tier (a cache with a shared
  // remote, the authoritative store without one; see disk-index.ts).
  let index: DiskIndex | undefined;
  const entryReferences = (deps.features ?? []).flatMap((u) => u.def.entryReferences ?? []);
  if (config.maxDiskBytes > 0) {
    index = new DiskIndex(disk, {
      maxBytes: config.maxDiskBytes,
      mode: shared ? 'cache' : 'authoritative',
      liveSet: (onDisk) =>
        liveSet(disk, refs, { keep: onDisk, entryReferences, keepVersions: config.gcKeepVersions }),
      graceMs: config.gcGraceMs,
      onEvict: () => metrics.evictions.inc({ tier: 'disk' }),
    });
    await index.open();
    metrics.trackDisk(index);
  }
  metrics.trackMemory(memory);
  const blobs = new TieredBlobStore({
    memory,
    // With --max-disk the disk store owns its bound (index, reservations, eviction).
    disk: index ? new BoundedDiskStore(disk, index) : disk,
    shared: shared?.blobs,
    hooks: metrics.tierHooks(deps.hooks),
    // The same local disk: read with synchronous calls, not thread-pool hand-offs (while it is fast).
    syncReads: true,
  });
  const auth: AuthPolicy = {
    tokens: config.tokensFile ? await loadTokens(config.tokensFile) : undefined,
    publicRead: config.publicRead,
  };
  const state = { ready: false, draining: false };
  let workers: ReadWorkers | undefined;
  // What a read worker served: counted and remembered here, where the registry and the disk index live.
  const onWorkerStats = (st: WorkerStats) => {
    for (const r of st.requests)
      metrics.observeRequests(r.method, r.route, r.status, r.seconds, r.bytesIn, r.bytesOut);
    for (const [digest, n] of st.hits) {
      metrics.tierHits.inc({ tier: 'disk' }, n);
      for (let i = 0; i < n; i++) metrics.reads.record(digest);
      index?.touchIfKnown(digest);
    }
    // A file that did not hash to its name: checked (and quarantined) by the primary, as its own reads would.
    for (const digest of st.corrupt) blobs.checkDisk(digest, 'read').catch(() => {});
  };
  const ctx: ServerContext = { config, blobs, refs, auth, metrics, state };
  if (config.cacheRefTtlMs > 0) {
    ctx.refExpiry = new RefExpiry(refs, {
      prefixes: [...config.cacheRefPrefixes],
      ttlMs: config.cacheRefTtlMs,
      dataDir: config.dataDir,
    });
    await ctx.refExpiry.open();
  }

  const logDest = deps.logger === false ? undefined : logDestination();
  // Plain small GETs are answered before fastify routes them (blob-fast-path.ts); set once the logger exists.
  let fast: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  const app = Fastify({
    serverFactory: (handler) =>
      createServer(httpServerOptions(config), (req, res) => {
        if (!fast?.(req, res)) handler(req, res);
      }),
    logger: logDest === undefined ? false : primaryLoggerOptions(config.logLevel, logDest),
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: config.keepAliveTimeoutMs,
    bodyLimit: config.maxJsonBodyBytes,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    // Ref names contain slashes and are matched by wildcard; blob URLs are fixed-shape.
    routerOptions: { maxParamLength: 1024 },
  });
  // Recorded before any route exists: fastify keeps no list of its own (only
  // printRoutes' tree), and the inventory test needs every route with its scope.
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (r) => {
    const methods = [r.method].flat().map(String);
    routes.push({ methods, url: r.url, scope: (r.config as RouteAuthConfig | undefined)?.scope });
  });
  // The failed-token lockout (auth-failures.ts), created here where the logger exists.
  auth.failures = new AuthFailureLimiter({
    limit: config.authFailureLimit,
    windowMs: DEFAULTS.authFailureWindowMs,
    clock: deps.clock,
    onLockout: (client) => {
      metrics.authLockouts.inc();
      workers?.lockout(client);
      app.log.warn({ client }, 'auth: client locked out after too many invalid tokens');
    },
  });
  const scrub = config.scrubBytesPerSecond > 0 ? startScrub(blobs, config, metrics, app) : undefined;

  const maxConnections = applyConnectionLimits(app.server, config);
  // First of all hooks: a body that stops arriving is cut before auth or a route waits on it.
  app.addHook('onRequest', (request, reply, done) => {
    guardBodyIdle(request.raw, reply.raw, config.bodyIdleTimeoutMs, () => {
      metrics.connectionsCut.inc({ reason: 'body_idle' });
      request.log.info(
        {
          url: loggedUrl(request.url),
          client: request.socket.remoteAddress,
          idleMs: config.bodyIdleTimeoutMs,
        },
        'request body stalled: connection closed',
      );
    });
    done();
  });
  // Refused at accept: counted, and said at most once a minute (a flood would flood the log too).
  let lastDropWarn = 0;
  app.server.on('drop', () => {
    metrics.connectionsCut.inc({ reason: 'max_connections' });
    if (Date.now() - lastDropWarn < 60_000) return;
    lastDropWarn = Date.now();
    app.log.warn(
      { maxConnections },
      'connection limit reached: refusing new connections (see --max-connections)',
    );
  });

  // A dead server's journal was replayed by FsBlobStore.open above: an
  // unclean stop an operator should see (at warn, the level tests and quiet
  // deployments run at), with what recovery had to write again.
  const replayed = disk.journal?.replayed;
  if (replayed && replayed.segments > 0)
    app.log.warn(
      { segments: replayed.segments, records: replayed.records, rewritten: replayed.rewritten },
      'journal: replayed the small-blob journal of an unclean stop before serving',
    );

  // The level is fixed at start: building a log object nobody writes is a cost too.
  const logRequests = deps.logger !== false && logsRequests(config.logLevel);
  fast = blobFastPath({ blobs, auth, state, metrics, log: logRequests ? app.log : undefined });
  const logHeaders = deps.logger !== false && ['trace', 'debug'].includes(config.logLevel);
  // One log line per request at info; headers and details at debug. A
  // callback hook, not an async one: it runs on every request, and the
  // promise of an async hook is measurable on a small cache hit.
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const ms = reply.elapsedTime;
    const out = request.method === 'HEAD' ? 0 : Number(reply.getHeader('content-length') ?? 0) || 0;
    const inBytes = Number(request.headers['content-length'] ?? 0) || 0;
    metrics.observeRequest(request.method, route, reply.statusCode, ms / 1000, inBytes, out);
    if (logRequests)
      request.log.info(
        requestLogFields({
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          ms,
          bytesIn: inBytes,
          bytesOut: Number(reply.getHeader('content-length') ?? 0) || 0,
          tier: reply.getHeader('x-hoard-tier'),
          client: request.socket.remoteAddress,
        }),
        'request',
      );
    if (logHeaders) request.log.debug({ headers: redactHeaders(request.headers) }, 'request headers');
    done();
  });

  app.addHook('onRequest', (request, _reply, done) => {
    const scope = (request.routeOptions.config as RouteAuthConfig | undefined)?.scope;
    if (scope === 'read' || scope === 'write') {
      try {
        authorizeRequest(ctx, request, scope);
      } catch (err) {
        done(err as Error);
        return;
      }
    }
    done();
  });

  app.setErrorHandler((err: FastifyError | HoardError, request, reply) => {
    const e = asHoardError(err);
    const status = httpStatusOf(e);
    if (status >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ err: e.message, code: e.code }, 'request refused');
    const message = status >= 500 && e.code === 'HOARD_EINTERNAL' ? 'internal error' : e.message;
    // Clients that hold credentials (git, Gradle, URL userinfo) send them only when challenged.
    if (status === 401) reply.header('www-authenticate', 'Basic realm="hoard", Bearer realm="hoard"');
    const retryAfter = e.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
    reply
      .code(status)
      .type('application/json')
      .send({ error: { code: e.code, message } });
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send({ error: { code: 'HOARD_EBAD_REQUEST', message: `no route ${request.method} ${request.url}` } });
  });

  app.get('/healthz', { config: { scope: 'none' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { scope: 'none' } }, async (_req, reply) => {
    if (state.ready && !state.draining && running.every((f) => f.ready?.() ?? true))
      return { status: 'ready' };
    return reply.code(503).send({ status: state.draining ? 'draining' : 'starting' });
  });
  app.get('/metrics', { config: { scope: 'read' } }, async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // The features, in the composition root's order: all created first (one
  // may add routes to another it builds on), then each one's routes in its
  // own encapsulated context.
  const instances = new Map<FeatureKey, Feature>();
  const running: Feature[] = [];
  try {
    for (const use of deps.features ?? [withSettings(apiFeature)]) {
      const fctx: FeatureContext = {
        server: config,
        blobs,
        refs,
        auth,
        metrics,
        state,
        ctx,
        log: app.log.child({ feature: use.def.name }),
        features: () => [...instances].map(([def, f]) => ({ name: def.name, prefix: f.prefix })),
        use: <F extends Feature>(def: FeatureKey<F>): F => {
          const f = instances.get(def);
          if (!f)
            throw new HoardError(
              'HOARD_ECONFIG',
              `feature ${use.def.name} needs ${def.name}, listed before it`,
            );
          return f as F;
        },
      };
      const f = await use.create(fctx);
      instances.set(use.def, f);
      running.push(f);
    }
    for (const f of running)
      if (f.routes) await app.register(async (scoped) => f.routes?.(scoped), { prefix: f.prefix ?? '' });
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    app,
    ctx,
    index,
    routes,
    get readWorkers() {
      return workers;
    },
    feature<F extends Feature>(def: FeatureKey<F>): F {
      const f = instances.get(def);
      if (!f) throw new HoardError('HOARD_EUSAGE', `feature ${def.name} is not running`);
      return f as F;
    },
    async listen() {
      const { host, port } = parseListen(config.listen);
      const wanted = readWorkerCount(config.readWorkers);
      const withWorkers = wanted > 0 && reusePortBalances();
      if (wanted > 0 && !withWorkers)
        app.log.warn(
          { readWorkers: wanted, platform: process.platform },
          'read workers need SO_REUSEPORT balancing (Linux): serving from this process alone',
        );
      let address: string;
      try {
        // Every listener on the port must set SO_REUSEPORT, this one first: the workers bind the port it got.
        address = await app.listen({ host, port, ...(withWorkers ? { reusePort: true } : {}) });
      } catch (err) {
        // Nothing may stay behind a server that never served: stores, the disk
        // index's timers, the git proxy's warm-up and children.
        await close().catch(() => {});
        throw listenError(err, host, port);
      }
      if (withWorkers) {
        const bound = app.server.address();
        try {
          if (!bound || typeof bound === 'string') throw new Error('no TCP address to share');
          workers = await ReadWorkers.start({
            count: wanted,
            host: bound.address,
            port: bound.port,
            config,
            tokens: auth.tokens,
            authFailureWindowMs: DEFAULTS.authFailureWindowMs,
            lockedKeys: () => auth.failures?.lockedKeys() ?? [],
            route: (req, res) => app.routing(req, res),
            onStats: onWorkerStats,
            log: app.log,
          });
        } catch (err) {
          await close().catch(() => {});
          throw new HoardError('HOARD_ELISTEN', `cannot start the read workers: ${(err as Error).message}`, {
            hint: 'start with --read-workers 0 to serve from one process',
            cause: err,
          });
        }
      }
      for (const f of running) await f.listening?.(address);
      state.ready = true;
      app.log.info(
        {
          maxConnections,
          headersTimeoutMs: config.headersTimeoutMs,
          bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
          keepAliveTimeoutMs: config.keepAliveTimeoutMs,
        },
        'connection limits',
      );
      if (!auth.tokens)
        app.log.warn('no --tokens file: accepting loopback clients only (every other client gets 403)');
      return address;
    },
    async drain() {
      state.draining = true;
      app.log.info({ delayMs: config.drainDelayMs, timeoutMs: config.drainTimeoutMs }, 'draining');
      if (config.drainDelayMs > 0) await new Promise((r) => setTimeout(r, config.drainDelayMs));
      await close();
    },
    close,
    flushLog() {
      logDest?.flush();
    },
  };

  function close(): Promise<void> {
    closed ??= (async () => {
      state.draining = true;
      const timer = setTimeout(() => {
        app.log.warn({ timeoutMs: config.drainTimeoutMs }, 'drain timeout: closing remaining connections');
        app.server.closeAllConnections();
      }, config.drainTimeoutMs);
      timer.unref();
      // Keep-alive connections whose last response finishes during the drain
      // become idle later; close them as they do, not at the drain timeout.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      sweep.unref();
      try {
        // The workers first: what they have in flight may still need this process's routes.
        await workers?.close();
        await app.close();
      } finally {
        clearTimeout(timer);
        clearInterval(sweep);
      }
      // Features before the stores they use, the last created first.
      for (const f of [...running].reverse()) await f.close?.();
      await blobs.close();
      await index?.close();
      await ctx.refExpiry?.close();
      await scrub?.close();
      await refs.close?.();
      await shared?.close();
    })();
    return closed;
  }
}

/** The background scrub of the disk tier (scrub.ts), counted in the server's metrics. */
function startScrub(
  blobs: TieredBlobStore,
  config: ServerConfig,
  metrics: ServerMetrics,
  app: FastifyInstance,
): Scrubber {
  const scrub = new Scrubber(blobs, {
    bytesPerSecond: config.scrubBytesPerSecond,
    onBytes: (n) => metrics.scrubBytes.inc(n),
    log: (level, msg, extra) => app.log[level](extra ?? {}, msg),
  });
  scrub.start();
  return scrub;
}

function asHoardError(err: unknown): HoardError {
  if (err instanceof HoardError) return err;
  if (isNoSpaceErrno(err)) return new NoSpaceError("no space left on the server's disk", { cause: err });
  const fe = err as FastifyError;
  const sc = typeof fe?.statusCode === 'number' ? fe.statusCode : 500;
  if (sc === 413) return new HoardError('HOARD_ETOO_LARGE', fe.message, { cause: err });
  if (sc === 415 || sc === 400) return new HoardError('HOARD_EBAD_REQUEST', fe.message, { cause: err });
  if (sc === 404) return new HoardError('HOARD_EBAD_REQUEST', fe.message, { cause: err });
  if (sc === 503) return new HoardError('HOARD_EUNAVAILABLE', fe.message, { cause: err });
  return toHoardError(err);
}

/** Why the listener could not open, with what to do about it. */
function listenError(err: unknown, host: string, port: number): HoardError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const hints: Record<string, [string, string]> = {
    EADDRINUSE: [
      'address already in use',
      'another process (perhaps another hoard serve) listens there: stop it, or choose another address with --listen host:port (port 0 picks a free one)',
    ],
    EACCES: [
      'permission denied',
      'ports below 1024 need privileges: use a port of 1024 or more with --listen, or a reverse proxy in front',
    ],
    EADDRNOTAVAIL: [
      'address not available on this machine',
      'the host part of --listen must be an address of this machine (127.0.0.1, ::1, 0.0.0.0 or a local interface)',
    ],
  };
  const [what, hint] = (code && hints[code]) || [
    (err as Error)?.message ?? String(err),
    'check --listen (host:port)',
  ];
  return new HoardError('HOARD_ELISTEN', `cannot listen on ${where}: ${what}`, {
    hint,
    cause: err,
    details: { address: where, ...(code ? { errno: code } : {}) },
  });
}

function redactHeaders(h: Record<string, unknown>): Record<string, unknown> {
  const out = { ...h };
  if (out.authorization) out.authorization = '***';
  return out;
}
