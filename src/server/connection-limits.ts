// Connection limits of `hoard serve`: what a client may hold before it has
// proven anything (before authentication, which runs once the headers are in).
//
// - headers: the whole request head must arrive within headersTimeoutMs of the
//   connection opening (or of the next request starting on a kept-alive one);
//   otherwise Node answers 408 and closes. Node checks this on a timer
//   (connectionsCheckingInterval, 30 s by default), so the interval is derived
//   from the timeout: a 2 s timeout is enforced within ~2.5 s, not 30 s.
// - body: not a total request time (a slow but progressing 8 GiB upload must
//   not be cut), but an inactivity bound: while a request body is still
//   arriving, a socket that receives nothing for bodyIdleTimeoutMs is closed.
//   Once the client has sent the whole body, a stall is ours (disk, shared
//   tier) and is not held against the connection.
// - keep-alive: an idle kept-alive connection is closed after keepAliveTimeoutMs.
// - count: at most maxConnections sockets at once; further ones are closed as
//   they are accepted. The default is derived from the descriptor limit so
//   that connections alone can never take every descriptor: files, git child
//   pipes and the shared tier's sockets keep a reserve (this is what made 300
//   idle half-sent requests fail every legitimate request).

import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { DEFAULTS } from '../core/defaults.ts';

export interface ConnectionLimits {
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** 0 = derived from the descriptor limit (see resolveMaxConnections). */
  maxConnections: number;
}

/** Options for http.createServer (fastify's `http` option). */
export function httpServerOptions(limits: ConnectionLimits): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    headersTimeout: limits.headersTimeoutMs,
    // No bound on the whole request: large uploads are bounded by inactivity instead.
    requestTimeout: 0,
    connectionsCheckingInterval: checkingIntervalMs(limits.headersTimeoutMs),
  };
}

/** Timer granularity of Node's header-timeout check: a quarter of the timeout, at most DEFAULTS.connectionsCheckIntervalMs. */
export function checkingIntervalMs(headersTimeoutMs: number): number {
  if (headersTimeoutMs <= 0) return DEFAULTS.connectionsCheckIntervalMs;
  return Math.max(50, Math.min(DEFAULTS.connectionsCheckIntervalMs, Math.floor(headersTimeoutMs / 4)));
}

/** Applies the limits fastify does not pass through to the server it created. */
export function applyConnectionLimits(server: Server, limits: ConnectionLimits): number {
  const max = resolveMaxConnections(limits.maxConnections);
  server.maxConnections = max;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Set again here: fastify copies its own requestTimeout (0) over the option, and
  // the header bound must hold whatever fastify's defaults become.
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = 0;
  return max;
}

/**
 * An explicit setting wins; otherwise min(DEFAULTS.maxConnections, descriptor
 * limit − reserve), the reserve being max(connectionFdReserve, a quarter of
 * the limit).
 */
export function resolveMaxConnections(configured: number, fdLimit = openFileLimit()): number {
  if (configured > 0) return configured;
  if (fdLimit === undefined) return DEFAULTS.maxConnections;
  const reserve = Math.max(DEFAULTS.connectionFdReserve, Math.floor(fdLimit / 4));
  return Math.max(1, Math.min(DEFAULTS.maxConnections, fdLimit - reserve));
}

/** The soft RLIMIT_NOFILE of this process (Linux: /proc/self/limits), or undefined when unknown. */
export function openFileLimit(): number | undefined {
  try {
    const text = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(text);
    if (!m || m[1] === 'unlimited') return undefined;
    return Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * Bounds the inactivity of a request body still being received: called for
 * every request (onRequest, before authentication). Uses the socket's idle
 * timer, which any byte received resets, so progress of any speed keeps the
 * connection; the timer is cleared when the body has been read.
 */
export function guardBodyIdle(
  req: IncomingMessage,
  res: ServerResponse,
  idleMs: number,
  onCut?: () => void,
): void {
  if (idleMs <= 0 || req.complete || !expectsBody(req)) return;
  const socket = req.socket;
  // In-process requests (fastify's inject, used by embedders and tests) have no real socket to time.
  if (typeof socket.setTimeout !== 'function') return;
  // Node emits 'timeout' on the request only while it is incomplete: the
  // client stopped sending mid-body. Destroying the socket aborts the request
  // (an upload fails as truncated and stores nothing).
  const onReqTimeout = () => {
    if (req.complete) return;
    onCut?.();
    socket.destroy();
  };
  // The body is all in but not read yet (our side is slow): without a listener
  // Node would destroy the socket.
  const onResTimeout = () => {};
  const onEnd = () => {
    // After the response finished, Node owns the timer (keep-alive timeout).
    if (!res.writableFinished && !socket.destroyed) socket.setTimeout(0);
    cleanup();
  };
  const cleanup = () => {
    req.off('timeout', onReqTimeout);
    req.off('end', onEnd);
    res.off('timeout', onResTimeout);
    res.off('close', cleanup);
  };
  req.on('timeout', onReqTimeout);
  req.once('end', onEnd);
  res.on('timeout', onResTimeout);
  res.once('close', cleanup);
  socket.setTimeout(idleMs);
}

function expectsBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}
