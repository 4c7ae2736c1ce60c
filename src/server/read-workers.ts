// The primary's side of read workers (`--read-workers`, read-worker.ts): it
// starts them once it listens (they bind the port it got, so `--listen
// 127.0.0.1:0` works), restarts one that dies (with backoff), tells them of
// lockouts, takes their reports (metrics, disk-index recency) and closes them
// first when the server closes. And it opens the door they forward through:
// an HTTP server on a unix socket in the data directory whose requests go
// into the same fastify routing as the TCP listener's, each with the client
// address its worker saw.
//
// Trust: the socket's folder is the server's own (mode 0700), and every
// request on it must carry the secret the primary made at start and handed to
// its workers over IPC; without it the answer is 403 and the claimed address
// is never read. On the TCP listener the forwarding headers mean nothing
// (nothing reads them there).
//
// Why processes and not threads: the work of a small GET is the socket write,
// the file calls and HTTP parsing on the main thread, which is what one more
// event loop in one more process gets in parallel; a worker thread would need
// connections handed over from the main thread's accept. SO_REUSEPORT lets
// the kernel spread connections instead. Linux only (on macOS SO_REUSEPORT
// does not balance, elsewhere Node may refuse it): no workers there, said
// once in the log.

import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { TokenEntry } from './auth.ts';
import type { ServerConfig } from './config.ts';
import { httpServerOptions } from './connection-limits.ts';
import type { FromWorker, ToWorker, WorkerStart, WorkerStats } from './read-worker-messages.ts';
import { FORWARDED_CLIENT_HEADER, WORKER_SECRET_HEADER } from './read-worker-proxy.ts';

const WORKER_FILE = new URL(
  import.meta.url.endsWith('.ts') ? './read-worker.ts' : './read-worker.js',
  import.meta.url,
);
/** How often a worker reports what it served. */
const STATS_INTERVAL_MS = 100;
/** A worker that does not listen within this is killed (and the server does not start). */
const START_TIMEOUT_MS = 15_000;
/** Restart backoff: doubling from the first to the last; reset once a worker has lived STABLE_MS. */
const RESTART_FIRST_MS = 250;
const RESTART_MAX_MS = 10_000;
const STABLE_MS = 30_000;
/** Longest unix socket path (sun_path is 108 bytes on Linux, less elsewhere). */
const MAX_SOCKET_PATH = 100;

/** How many workers `--read-workers` asks for on this machine (-1 = auto: cores − 1). */
export function readWorkerCount(setting: number): number {
  if (setting >= 0) return setting;
  return Math.max(0, availableParallelism() - 1);
}

/** Whether this platform balances connections over SO_REUSEPORT listeners. */
export function reusePortBalances(platform: NodeJS.Platform = process.platform): boolean {
  return platform === 'linux';
}

export interface ReadWorkersOptions {
  count: number;
  host: string;
  port: number;
  config: ServerConfig;
  tokens: TokenEntry[] | undefined;
  authFailureWindowMs: number;
  lockedKeys(): string[];
  /** The primary's request routing (fastify's app.routing). */
  route(req: IncomingMessage, res: ServerResponse): void;
  onStats(stats: WorkerStats): void;
  log: FastifyBaseLogger;
}

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  /** The child has said it listens (and has not exited since). */
  listening: boolean;
  startedAt: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

export class ReadWorkers {
  readonly #o: ReadWorkersOptions;
  readonly #secret = randomBytes(32).toString('hex');
  #socketDir = '';
  #socketPath = '';
  #ownDir = false;
  #door: Server | undefined;
  #slots: Slot[] = [];
  #closing = false;
  /** Workers started since the server started (restarts included). */
  started = 0;

  private constructor(o: ReadWorkersOptions) {
    this.#o = o;
  }

  /** Opens the worker socket and starts `count` workers; resolves once each listens. */
  static async start(o: ReadWorkersOptions): Promise<ReadWorkers> {
    const w = new ReadWorkers(o);
    try {
      await w.#openDoor();
      w.#slots = Array.from({ length: o.count }, (_, i) => ({
        index: i + 1,
        child: undefined,
        listening: false,
        startedAt: 0,
        failures: 0,
        timer: undefined,
      }));
      await Promise.all(w.#slots.map((s) => w.#spawn(s)));
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  /** Process ids of the workers running now. */
  pids(): number[] {
    return this.#slots.flatMap((s) =>
      s.child?.pid !== undefined && s.child.exitCode === null ? [s.child.pid] : [],
    );
  }

  /** An address got locked out: its requests go to the primary from now on. */
  lockout(key: string): void {
    for (const s of this.#slots) this.#send(s, { type: 'lockout', key });
  }

  /** Stops the workers (each finishes what it has in flight) and closes the worker socket. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(
      this.#slots.map(async (s) => {
        clearTimeout(s.timer);
        const child = s.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        this.#send(s, { type: 'close' });
        const kill = setTimeout(() => child.kill('SIGKILL'), this.#o.config.drainTimeoutMs + 5_000);
        await exited;
        clearTimeout(kill);
      }),
    );
    const door = this.#door;
    if (door) {
      await new Promise<void>((resolve) => {
        door.close(() => resolve());
        door.closeAllConnections();
      });
    }
    if (this.#ownDir) await rm(this.#socketDir, { recursive: true, force: true }).catch(() => {});
    else if (this.#socketPath) await unlink(this.#socketPath).catch(() => {});
  }

  async #openDoor(): Promise<void> {
    const runDir = join(this.#o.config.dataDir, 'run');
    const name = `workers-${process.pid}.sock`;
    if (join(runDir, name).length <= MAX_SOCKET_PATH) {
      await mkdir(runDir, { recursive: true, mode: 0o700 });
      await removeStaleSockets(runDir);
      this.#socketDir = runDir;
    } else {
      // A deep data directory: a private folder of our own under the temp directory instead.
      this.#socketDir = await mkdtemp(join(tmpdir(), 'hoard-workers-'));
      this.#ownDir = true;
    }
    this.#socketPath = join(this.#socketDir, name);
    await unlink(this.#socketPath).catch(() => {});
    const secret = Buffer.from(this.#secret);
    const clients = new WeakMap<Socket, string | undefined>();
    const door = createServer(httpServerOptions(this.#o.config), (req, res) => {
      const given = req.headers[WORKER_SECRET_HEADER];
      if (
        typeof given !== 'string' ||
        given.length !== secret.length ||
        !timingSafeEqual(Buffer.from(given), secret)
      ) {
        res.writeHead(403).end();
        return;
      }
      const client = req.headers[FORWARDED_CLIENT_HEADER];
      clients.set(req.socket, typeof client === 'string' && isIP(client) ? client : undefined);
      delete req.headers[WORKER_SECRET_HEADER];
      delete req.headers[FORWARDED_CLIENT_HEADER];
      this.#o.route(req, res);
    });
    // Each request on a worker's connection is from the client that worker names: what the routes,
    // the lockout and the request log read as the socket's address. The worker sends one request at a
    // time per connection, so the address set by a request holds until its answer is done.
    door.on('connection', (socket: Socket) => {
      Object.defineProperty(socket, 'remoteAddress', { configurable: true, get: () => clients.get(socket) });
    });
    // Idle worker connections are the workers' to close (their agent's pool), never closed under a request.
    door.keepAliveTimeout = 10 * 60_000;
    door.headersTimeout = this.#o.config.headersTimeoutMs;
    door.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      door.once('error', reject);
      door.listen(this.#socketPath, () => {
        door.off('error', reject);
        resolve();
      });
    });
    this.#door = door;
  }

  #spawn(slot: Slot): Promise<void> {
    const child = fork(WORKER_FILE, [], {
      // Not the primary's flags (a test runner's, a profiler's): a worker is a plain process.
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    slot.child = child;
    slot.startedAt = Date.now();
    this.started++;
    const c = this.#o.config;
    const start: WorkerStart = {
      type: 'start',
      index: slot.index,
      host: this.#o.host,
      port: this.#o.port,
      dataDir: c.dataDir,
      socketPath: this.#socketPath,
      secret: this.#secret,
      tokens: this.#o.tokens,
      publicRead: c.publicRead,
      authFailureLimit: c.authFailureLimit,
      authFailureWindowMs: this.#o.authFailureWindowMs,
      locked: this.#o.lockedKeys(),
      logLevel: c.logLevel,
      limits: c,
      drainTimeoutMs: c.drainTimeoutMs,
      statsIntervalMs: STATS_INTERVAL_MS,
    };
    child.send(start);
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`read worker ${slot.index} did not start within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
      child.on('message', (msg: FromWorker) => {
        if (msg.type === 'stats') this.#o.onStats(msg);
        else if (msg.type === 'listening') {
          listening = true;
          slot.listening = true;
          clearTimeout(timer);
          this.#o.log.info({ worker: slot.index, workerPid: child.pid }, 'read worker listening');
          resolve();
        } else if (msg.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`read worker ${slot.index} cannot listen: ${msg.message}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!listening)
          reject(new Error(`read worker ${slot.index} exited before listening (${signal ?? code})`));
        if (slot.child === child) {
          slot.child = undefined;
          slot.listening = false;
        }
        if (this.#closing) return;
        // Died while serving: start another, backing off while it keeps dying.
        if (Date.now() - slot.startedAt >= STABLE_MS) slot.failures = 0;
        const delay = Math.min(RESTART_MAX_MS, RESTART_FIRST_MS * 2 ** slot.failures);
        slot.failures++;
        this.#o.log.warn(
          { worker: slot.index, workerPid: child.pid, code, signal, restartInMs: delay },
          'read worker exited: restarting it',
        );
        slot.timer = setTimeout(() => {
          if (this.#closing) return;
          this.#spawn(slot).catch((err) =>
            this.#o.log.error({ err, worker: slot.index }, 'read worker failed to start'),
          );
        }, delay);
      });
    });
  }

  #send(slot: Slot, msg: ToWorker): void {
    const child = slot.child;
    if (child?.connected) child.send(msg, (err) => void err);
  }
}

/** Sockets of primaries that are gone (a crash or SIGKILL leaves its socket file behind). */
async function removeStaleSockets(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /^workers-(\d+)\.sock$/.exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    await unlink(join(dir, name)).catch(() => {});
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
