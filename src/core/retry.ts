// Retries of remote (bucket) operations: exponential backoff with full jitter
// on transient failures only — 5xx, 429, 408, timeouts and connection errors.
// Never on 412 (a lost compare-and-set is an answer, not a failure) or any
// other 4xx. An AbortSignal cancels both the operation and the wait.
//
// The cloud SDKs' own retry loops are switched off (S3 `maxAttempts: 1`, GCS
// `autoRetry: false`) and this one is used for both, because:
// - one policy, one set of tunables (DEFAULTS.remoteRetries / remoteBackoff*),
//   instead of SDK retries multiplied by ours;
// - conditional writes need to know that an attempt was retried: a PUT whose
//   response was lost may have succeeded, and the retry then answers 412. The
//   stores check who won in that case (see s3-ref-store.ts), which they can
//   only do when the retry loop is theirs.

import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { HoardError } from '../core/errors.ts';

export interface RetryOptions {
  /** Retries after the first attempt (default DEFAULTS.remoteRetries). */
  retries?: number;
  baseMs?: number;
  maxMs?: number;
  signal?: AbortSignal;
  /** Which failures are worth another attempt (default isTransientError). */
  isRetryable?: (err: unknown) => boolean;
  /** Called before each backoff sleep. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** HTTP status of an SDK error, whichever SDK threw it. */
export function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as {
    $metadata?: { httpStatusCode?: number };
    status?: unknown;
    code?: unknown;
    response?: { status?: unknown };
  };
  const candidates = [e.$metadata?.httpStatusCode, e.status, e.response?.status, e.code];
  for (const c of candidates) if (typeof c === 'number' && c >= 100 && c < 600) return c;
  return undefined;
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const TRANSIENT_NAMES = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'ThrottlingException',
  'InternalError',
  'ServiceUnavailable',
]);

/** 5xx, 429, 408, timeouts and connection-level failures. */
export function isTransientError(err: unknown): boolean {
  if (isAbortError(err)) return false;
  const status = statusOf(err);
  if (status !== undefined) return status >= 500 || status === 429 || status === 408;
  let e: unknown = err;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    const { code, name, errno } = e as { code?: unknown; name?: unknown; errno?: unknown };
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    if (typeof errno === 'string' && TRANSIENT_CODES.has(errno)) return true;
    if (typeof name === 'string' && TRANSIENT_NAMES.has(name)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export function isAbortError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { name, code } = err as { name?: unknown; code?: unknown };
  return name === 'AbortError' || code === 'ABORT_ERR' || code === 'HOARD_EABORTED';
}

export function abortedError(what: string, signal?: AbortSignal): HoardError {
  return new HoardError('HOARD_EABORTED', `${what} was cancelled`, { cause: signal?.reason });
}

/** Full-jitter backoff: uniform in [0, min(max, base·2^attempt)]. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** attempt);
}

/**
 * Runs `fn` until it succeeds, fails with a non-retryable error, or runs out
 * of retries; the last error is thrown as is. `fn` gets the attempt number.
 */
export async function withRetry<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const retries = opts.retries ?? DEFAULTS.remoteRetries;
  const baseMs = opts.baseMs ?? DEFAULTS.remoteBackoffBaseMs;
  const maxMs = opts.maxMs ?? DEFAULTS.remoteBackoffMaxMs;
  const retryable = opts.isRetryable ?? isTransientError;
  for (let attempt = 0; ; attempt++) {
    if (opts.signal?.aborted) throw abortedError(what, opts.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw abortedError(what, opts.signal);
      if (attempt >= retries || !retryable(err)) throw err;
      const delay = backoffDelay(attempt, baseMs, maxMs);
      opts.onRetry?.(err, attempt, delay);
      try {
        await sleep(delay, undefined, { signal: opts.signal });
      } catch {
        throw abortedError(what, opts.signal);
      }
    }
  }
}
