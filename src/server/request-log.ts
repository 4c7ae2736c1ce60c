// The server's log output, shared by the primary (app.ts, through fastify)
// and its read workers (read-worker.ts, pino directly): one buffered writer
// on stdout, and one request line in one shape, whichever process answered.

import { hostname } from 'node:os';
import pino from 'pino';
import { redactSecrets } from '../core/errors.ts';

/** Buffered log output: at most this many bytes or this long before a write. */
const LOG_BUFFER_BYTES = 8192;
const LOG_FLUSH_MS = 500;
/** pino's level number of `warn`: lines at it and above are written at once. */
export const WARN_LEVEL = 40;

/**
 * The server's log lines go to stdout through one buffered writer, not one
 * write(2) per line: at info every request is a line, and on a small cache
 * hit a synchronous write per request is a measurable share of its cost.
 * The cost of the buffer is a window: an info line reaches stdout within
 * LOG_FLUSH_MS (or LOG_BUFFER_BYTES), and a SIGKILL loses at most that much;
 * warnings and errors are flushed at once, and pino flushes what is
 * buffered on a normal exit and on a crash's 'exit'.
 */
export function logDestination() {
  return pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS });
}

/** The primary's logger (fastify's `logger` option) writing to `dest` (logDestination). */
export function primaryLoggerOptions(level: string, dest: { flush(): void; write(s: string): unknown }) {
  return {
    level,
    redact: ['req.headers.authorization'],
    stream: dest,
    hooks: {
      // A warning or an error goes out now, not with the next batch: it may be
      // the last thing an operator sees before a crash or a kill.
      logMethod(this: pino.Logger, args: Parameters<pino.LogFn>, method: pino.LogFn, level: number) {
        method.apply(this, args);
        if (level >= WARN_LEVEL) dest.flush();
      },
    },
  };
}

/** A read worker's logger (read-worker.ts): the primary's line shape, with its `worker` index. */
export function workerLogger(
  level: string,
  index: number,
  dest: { flush(): void; write(s: string): unknown },
) {
  return pino(
    {
      level,
      base: { pid: process.pid, hostname: hostname(), worker: index },
      hooks: {
        logMethod(args, method, lvl) {
          method.apply(this, args);
          if (lvl >= WARN_LEVEL) dest.flush();
        },
      },
    },
    dest,
  );
}

/** Whether a level logs one line per request (info and below). */
export function logsRequests(level: string): boolean {
  return ['trace', 'debug', 'info'].includes(level);
}

/** What the one `request` line at info says. */
export interface RequestLine {
  method: string;
  url: string;
  status: number;
  ms: number;
  bytesIn: number;
  bytesOut: number;
  tier: unknown;
  client: string | undefined;
}

/** The fields of the one `request` line at info. */
export function requestLogFields(r: RequestLine): Record<string, unknown> {
  return {
    method: r.method,
    url: loggedUrl(r.url),
    status: r.status,
    ms: Math.round(r.ms * 10) / 10,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    tier: r.tier,
    client: r.client,
  };
}

/** Signed URLs and tokens in paths (the Actions cache service's) are never logged whole: every log line naming a URL goes through here. */
export function loggedUrl(url: string): string {
  return url.includes('sig=') || url.includes('/t/') ? redactSecrets(url) : url;
}

type PinoInternals = Record<symbol, unknown>;

/**
 * Writes `request` lines at info for `logger` the way `logger.info({ reqId,
 * ...requestLogFields(r) }, 'request')` writes them, byte for byte (the
 * logger's own level label, time, bindings, end of line and stream: in
 * order with its other lines), without the per-line object and pino's walk
 * over it: on a small cache hit that walk and its object were most of the
 * log's share of a request (the fast paths: blob-fast-path.ts and read
 * workers). A logger pino would shape differently (a log formatter, a
 * mixin, a stream-write hook, a multistream wanting metadata, another
 * message key) gets the plain logger.info call instead, so the line is
 * always the logger's. The caller decides whether info is logged (once, at
 * start: the level is fixed).
 */
export function requestLineWriter(
  logger: Pick<pino.BaseLogger, 'info'>,
): (reqId: string, r: RequestLine) => void {
  const plain = (reqId: string, r: RequestLine) => logger.info({ reqId, ...requestLogFields(r) }, 'request');
  const sym = pino.symbols;
  const l = logger as unknown as PinoInternals;
  const stream = l[sym.streamSym] as { write(s: string): unknown } | undefined;
  const formatters = l[sym.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[sym.hooksSym] as { streamWrite?: unknown } | undefined;
  const levelCache = l[sym.lsCacheSym] as Record<number, string> | undefined;
  const time = l[sym.timeSym] as (() => string) | undefined;
  const chindings = l[sym.chindingsSym];
  const info = (logger as pino.Logger).levels?.values?.info;
  if (
    !stream ||
    typeof stream.write !== 'function' ||
    (stream as PinoInternals)[Symbol.for('pino.metadata')] === true ||
    formatters?.log ||
    l[sym.mixinSym] ||
    hooks?.streamWrite ||
    l[sym.messageKeySym] !== 'msg' ||
    l[sym.nestedKeySym] ||
    (logger as { msgPrefix?: string }).msgPrefix ||
    typeof time !== 'function' ||
    typeof chindings !== 'string' ||
    typeof info !== 'number' ||
    typeof levelCache?.[info] !== 'string' ||
    typeof l[sym.endSym] !== 'string'
  )
    return plain;
  const level = levelCache[info];
  const end = `,"msg":"request"${l[sym.endSym] as string}`;
  return (reqId, r) => {
    // JSON.stringify for the strings a client chose (the URL) or that could hold anything; numbers as JSON writes them.
    let s = `${level}${time.call(logger)}${chindings},"reqId":${JSON.stringify(reqId)},"method":${JSON.stringify(r.method)},"url":${JSON.stringify(loggedUrl(r.url))},"status":${r.status},"ms":${Math.round(r.ms * 10) / 10},"bytesIn":${r.bytesIn},"bytesOut":${r.bytesOut}`;
    if (r.tier !== undefined) s += `,"tier":${JSON.stringify(r.tier)}`;
    if (r.client !== undefined) s += `,"client":${JSON.stringify(r.client)}`;
    stream.write(s + end);
  };
}
