// A read worker: a child process of `hoard serve` (read-workers.ts starts
// it) listening on the server's own TCP address with SO_REUSEPORT, so the
// kernel spreads connections over the primary and its workers. A worker is a
// plain node:http server, not fastify: it answers on its own only GET/HEAD of
// /v1/blobs/sha256/<hex> for blobs that are files in the disk tier, to
// clients whose credentials read-scope allows (read-worker-answer.ts), and
// streams every other request to the primary unchanged (read-worker-proxy.ts):
// other routes, misses, invalid tokens (the lockout counts them in one
// place), addresses the primary has locked out, anything unusual.
//
// It holds no state the primary owns: no memory tier, no disk index, no
// fills, no metrics registry. What it served goes to the primary every
// statsIntervalMs (requests for /metrics, reads for the disk index's LRU
// order and the most-read tally). Its request lines go to the same stdout in
// the same shape as the primary's. It exits when its IPC channel closes (the
// primary died, even by SIGKILL: the kernel closes the channel), so no worker
// outlives its server.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Digest } from '../core/digest.ts';
import { readAllowedQuietly } from './auth.ts';
import { AuthFailureLimiter } from './auth-failures.ts';
import { BLOB_ROUTE, BLOB_URL } from './blob-fast-path.ts';
import { applyConnectionLimits, httpServerOptions } from './connection-limits.ts';
import { DiskBlobAnswers, type WorkerAnswer } from './read-worker-answer.ts';
import type { FromWorker, ToWorker, WorkerRequestStats, WorkerStart } from './read-worker-messages.ts';
import { PrimaryProxy } from './read-worker-proxy.ts';
import { logDestination, loggedUrl, logsRequests, requestLineWriter, workerLogger } from './request-log.ts';

function send(msg: FromWorker, cb?: () => void): void {
  if (process.connected) process.send?.(msg, undefined, undefined, cb);
  else cb?.();
}

export function runReadWorker(): void {
  // The primary is gone (exit, crash or SIGKILL): so is this worker, at once.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C in a terminal signals the whole process group: the primary decides when workers stop
  // (it closes them first, letting what they have in flight finish).
  process.on('SIGINT', () => {});
  process.once('message', (msg: ToWorker) => {
    if (msg.type === 'start') start(msg);
  });
}

function start(s: WorkerStart): void {
  const dest = logDestination();
  const log = workerLogger(s.logLevel, s.index, dest);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'read worker crashed');
    dest.flushSync();
    process.exit(1);
  });
  const line = logsRequests(s.logLevel) ? requestLineWriter(log) : undefined;

  const lockouts = new AuthFailureLimiter({ limit: s.authFailureLimit, windowMs: s.authFailureWindowMs });
  for (const key of s.locked) lockouts.lock(key);
  const policy = { tokens: s.tokens, publicRead: s.publicRead, failures: lockouts };
  const proxy = new PrimaryProxy(s.socketPath, s.secret);
  const stats = new StatsBatch();
  const workerId = String(s.index);
  const answers = new DiskBlobAnswers({
    dataDir: s.dataDir,
    workerId,
    onCorrupt: (d) => stats.corrupt.push(d),
  });
  let seq = 0;

  const finish = (req: IncomingMessage, res: ServerResponse, t0: number, a: WorkerAnswer, hex: string) => {
    if (a === 'forward') {
      proxy.forward(req, res);
      return;
    }
    if (a.hit) stats.hit(`sha256:${hex}`);
    res.once('finish', () => {
      const ms = performance.now() - t0;
      stats.request(req.method ?? 'GET', a.status, ms / 1000, a.bytesOut);
      line?.(`w${workerId}-${++seq}`, {
        method: req.method ?? 'GET',
        url: req.url ?? '',
        status: a.status,
        ms,
        bytesIn: 0,
        bytesOut: a.bytesOut,
        tier: a.hit ? 'disk' : undefined,
        client: req.socket.remoteAddress,
      });
    });
  };

  const server = createServer(httpServerOptions(s.limits), (req, res) => {
    const t0 = performance.now();
    const m = req.method === 'GET' || req.method === 'HEAD' ? BLOB_URL.exec(req.url ?? '') : null;
    // A GET with a body is unusual enough to be the primary's to judge.
    const bodyless =
      req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined;
    if (
      !m ||
      !bodyless ||
      !readAllowedQuietly(policy, req.socket.remoteAddress, req.headers.authorization, req.socket)
    ) {
      proxy.forward(req, res);
      return;
    }
    const hex = m[1];
    let a: WorkerAnswer | Promise<WorkerAnswer>;
    try {
      a = answers.answer(req, res, hex);
    } catch (err) {
      log.warn({ err, url: loggedUrl(req.url ?? '') }, 'read worker: answered by the primary after an error');
      a = 'forward';
    }
    if (a instanceof Promise)
      a.then(
        (x) => finish(req, res, t0, x, hex),
        (err) => {
          log.warn(
            { err, url: loggedUrl(req.url ?? '') },
            'read worker: answered by the primary after an error',
          );
          if (res.headersSent) res.destroy();
          else proxy.forward(req, res);
        },
      );
    else finish(req, res, t0, a, hex);
  });
  applyConnectionLimits(server, s.limits);
  // Upgrades and CONNECT are no route of hoard's: without listeners Node closes those sockets.

  const report = setInterval(() => stats.flush(), s.statsIntervalMs);
  report.unref();

  server.once('error', (err: NodeJS.ErrnoException) => {
    send({ type: 'failed', message: err.message, code: err.code }, () => process.exit(1));
  });
  server.listen({ host: s.host, port: s.port, reusePort: true }, () => {
    log.debug({ host: s.host, port: s.port }, 'read worker listening');
    send({ type: 'listening' });
  });

  process.on('message', (msg: ToWorker) => {
    if (msg.type === 'lockout') lockouts.lock(msg.key);
    else if (msg.type === 'close') {
      // Stop accepting; kept-alive connections close as they go idle; the rest at the drain timeout.
      server.close(() => {
        clearInterval(sweep);
        stats.flush(() => {
          proxy.close();
          dest.flushSync();
          process.exit(0);
        });
      });
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      setTimeout(() => server.closeAllConnections(), s.drainTimeoutMs).unref();
    }
  });
}

/** What a worker served since its last report to the primary. */
class StatsBatch {
  #requests = new Map<string, WorkerRequestStats>();
  #hits = new Map<Digest, number>();
  corrupt: Digest[] = [];

  request(method: string, status: number, seconds: number, bytesOut: number): void {
    const key = `${method} ${status}`;
    let r = this.#requests.get(key);
    if (!r) {
      r = { method, route: BLOB_ROUTE, status, bytesIn: 0, bytesOut: 0, seconds: [] };
      this.#requests.set(key, r);
    }
    r.bytesOut += method === 'HEAD' ? 0 : bytesOut;
    r.seconds.push(seconds);
  }

  hit(digest: Digest): void {
    this.#hits.set(digest, (this.#hits.get(digest) ?? 0) + 1);
  }

  flush(cb?: () => void): void {
    if (this.#requests.size === 0 && this.#hits.size === 0 && this.corrupt.length === 0) {
      cb?.();
      return;
    }
    const msg: FromWorker = {
      type: 'stats',
      requests: [...this.#requests.values()],
      hits: [...this.#hits],
      corrupt: this.corrupt,
    };
    this.#requests = new Map();
    this.#hits = new Map();
    this.corrupt = [];
    send(msg, cb);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) runReadWorker();
