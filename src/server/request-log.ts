// The server's log output, shared by the primary (app.ts, through fastify)
// and its read workers (read-worker.ts, pino directly): one buffered writer
// on stdout, and one request line in one shape, whichever process answered.

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

/** Whether a level logs one line per request (info and below). */
export function logsRequests(level: string): boolean {
  return ['trace', 'debug', 'info'].includes(level);
}

/** The fields of the one `request` line at info. */
export function requestLogFields(r: {
  method: string;
  url: string;
  status: number;
  ms: number;
  bytesIn: number;
  bytesOut: number;
  tier: unknown;
  client: string | undefined;
}): Record<string, unknown> {
  return {
    method: r.method,
    // Signed URLs and tokens in paths (the Actions cache service's) are never logged whole.
    url: r.url.includes('sig=') || r.url.includes('/t/') ? redactSecrets(r.url) : r.url,
    status: r.status,
    ms: Math.round(r.ms * 10) / 10,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    tier: r.tier,
    client: r.client,
  };
}
