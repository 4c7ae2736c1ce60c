// Parallel ranged download of one immutable HTTP resource of known size,
// delivered in order as a single stream while it is hashed. Requests go
// through the one HTTP client (http-client.ts) with this module's own retry
// loop, since only it knows which failures mean "the resource changed".
//
// Up to `concurrency` ranges of `rangeBytes` are in flight; each is buffered
// until every range before it has been delivered, so memory stays below
// concurrency × rangeBytes. Every range request carries `If-Range: <etag>`
// (and `If-Match`), so a resource that changed answers 200/412 instead of a
// 206 of other bytes; a response whose ETag or Content-Range does not match
// fails the download at once (no retry: the bytes would never verify). A
// range that times out, resets or gets a 5xx/429 is retried with backoff.
// At the end the byte count and the SHA-256 are checked against what was
// expected; a mismatch fails the stream before its end, so a consumer never
// commits unverified bytes.

import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type Digest, Hasher } from '../core/digest.ts';
import { DigestMismatchError, errorFromWire, HoardError, isHoardError, isRetryable } from '../core/errors.ts';
import { gcNudge } from '../core/gc-nudge.ts';
import { withRetry } from '../core/retry.ts';
import { discard, header, httpRequest } from './http-client.ts';

export interface RangedDownloadOptions {
  url: string;
  /** Total size in bytes (from a HEAD / the stable URL's headers). */
  size: number;
  /** Expected SHA-256 of the whole body; verified at the end. */
  expected?: Digest;
  /** Strong ETag (with quotes) the resource must keep. */
  etag?: string;
  concurrency?: number;
  rangeBytes?: number;
  rangeTimeoutMs?: number;
  /** Attempts per range beyond the first. */
  retries?: number;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Called as bytes are delivered downstream, with the running total. */
  onProgress?: (bytesDelivered: number) => void;
}

export interface RangedDownload {
  /** The body in order, each range a new Buffer. */
  stream: Readable;
  /**
   * The body in order, each range read into one of `concurrency` buffers
   * that are reused: a buffer is valid only until the loop asks for the next
   * one (a consumer that keeps bytes must copy them). No range buffer becomes
   * garbage, so a long download's memory stays at concurrency × rangeBytes
   * (a restore's peak RSS, issue 16). Consume either this or `stream`, once.
   */
  ranges(): AsyncIterable<Buffer>;
  /** Resolves when the stream ended and verified, with the digest; rejects on failure. */
  done: Promise<{ digest: Digest; size: number; requests: number; retries: number }>;
}

class ChangedError extends HoardError {}

function changed(url: string, why: string): HoardError {
  return new ChangedError('HOARD_EREMOTE', `${url} changed during the download: ${why}`, {
    hint: 'an immutable blob URL must never change; start the restore again',
  });
}

export function rangedDownload(opts: RangedDownloadOptions): RangedDownload {
  const concurrency = Math.max(1, opts.concurrency ?? DEFAULTS.restoreConcurrency);
  const rangeBytes = Math.max(1, opts.rangeBytes ?? DEFAULTS.restoreRangeBytes);
  const timeoutMs = opts.rangeTimeoutMs ?? DEFAULTS.restoreRangeTimeoutMs;
  const retries = opts.retries ?? DEFAULTS.remoteRetries;
  const count = Math.ceil(opts.size / rangeBytes);
  const stop = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
  const stats = { requests: 0, retries: 0 };
  let resolveDone!: (v: { digest: Digest; size: number; requests: number; retries: number }) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<{ digest: Digest; size: number; requests: number; retries: number }>(
    (res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    },
  );
  done.catch(() => {});

  const url = new URL(opts.url);

  async function fetchRangeOnce(start: number, end: number, into: Buffer | undefined): Promise<Buffer> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const rangeSignal = AbortSignal.any([signal, timeout]);
    try {
      return await fetchRangeOnceWithin(start, end, rangeSignal, into);
    } catch (err) {
      // This range's own time ran out (not the whole download's): transient, asked for again.
      if (timeout.aborted && !signal.aborted)
        throw new HoardError(
          'HOARD_EUNAVAILABLE',
          `range ${start}-${end - 1} of ${opts.url}: no answer within ${timeoutMs} ms`,
          {
            cause: err,
          },
        );
      throw err;
    }
  }

  async function fetchRangeOnceWithin(
    start: number,
    end: number,
    rangeSignal: AbortSignal,
    into: Buffer | undefined,
  ): Promise<Buffer> {
    const headers: Record<string, string> = { ...opts.headers, range: `bytes=${start}-${end - 1}` };
    if (opts.etag) {
      headers['if-range'] = opts.etag;
      headers['if-match'] = opts.etag;
    }
    stats.requests++;
    // Statuses are judged here (a 412 means "changed", never "retry"), so all are accepted.
    const res = await httpRequest('GET', url, {
      headers,
      signal: rangeSignal,
      retries: 0,
      accept: 'any',
    });
    let consumed = false;
    try {
      if (res.status === 412) throw changed(opts.url, 'If-Match failed (412)');
      if (res.status === 200 && opts.size !== end - start)
        throw changed(opts.url, 'the server ignored the range (If-Range failed or no range support)');
      if (res.status !== 206 && res.status !== 200)
        throw errorFromWire(res.status, undefined, `GET ${opts.url} (range ${start}-${end - 1})`);
      const etag = header(res, 'etag');
      if (opts.etag && etag && etag !== opts.etag)
        throw changed(opts.url, `ETag ${etag}, expected ${opts.etag}`);
      if (res.status === 206) {
        const cr = header(res, 'content-range');
        if (cr !== `bytes ${start}-${end - 1}/${opts.size}`)
          throw changed(opts.url, `Content-Range ${cr}, expected bytes ${start}-${end - 1}/${opts.size}`);
      }
      const buf = into ?? Buffer.allocUnsafe(end - start);
      let n = 0;
      consumed = true;
      try {
        // 'data' events, not an async iterator: a promise and a buffered read
        // per socket chunk were ≈ a third of the download's main-thread time
        // (issue 16). finished() rejects on an error or a premature close.
        const body = res.body;
        body.on('data', (chunk: Buffer) => {
          if (n + chunk.byteLength > buf.byteLength) {
            body.destroy(changed(opts.url, 'range longer than requested'));
            return;
          }
          buf.set(chunk, n);
          n += chunk.byteLength;
          gcNudge(chunk.byteLength); // the socket's chunk, copied, is garbage now
        });
        await finished(body);
      } catch (err) {
        if (err instanceof ChangedError || signal.aborted) throw err;
        // The connection broke mid-range: transient, the range is asked for again.
        throw new HoardError('HOARD_EUNAVAILABLE', `range ${start}-${end - 1} of ${opts.url} was cut short`, {
          cause: err,
        });
      }
      if (n !== buf.byteLength)
        throw new HoardError(
          'HOARD_EUNAVAILABLE',
          `range ${start}-${end - 1} of ${opts.url} ended after ${n} bytes`,
        );
      return buf;
    } finally {
      if (!consumed) discard(res);
    }
  }

  const isRetryableRange = (err: unknown): boolean =>
    !(err instanceof ChangedError) && (!isHoardError(err) || isRetryable(err));

  async function fetchRange(i: number, into: Buffer | undefined): Promise<Buffer> {
    const start = i * rangeBytes;
    const end = Math.min(opts.size, start + rangeBytes);
    let attempts = 0;
    try {
      return await withRetry(
        `range ${start}-${end - 1} of ${opts.url}`,
        () => {
          attempts++;
          return fetchRangeOnce(start, end, into);
        },
        {
          retries,
          signal,
          isRetryable: isRetryableRange,
          onRetry: () => {
            stats.retries++;
          },
        },
      );
    } catch (err) {
      if (signal.aborted) throw signal.reason ?? err;
      if (isHoardError(err)) throw err;
      throw new HoardError(
        'HOARD_EREMOTE',
        `GET ${opts.url} (range ${start}-${end - 1}) failed after ${attempts} attempts: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** With `pool`, range i is read into pool slot i % concurrency, reused once range i was consumed. */
  async function* generate(pool: Buffer[] | undefined): AsyncGenerator<Buffer> {
    const hasher = new Hasher();
    const inflight = new Map<number, Promise<Buffer>>();
    const start = (i: number) => {
      if (i >= count) return;
      let into: Buffer | undefined;
      if (pool) {
        const len = Math.min(opts.size, (i + 1) * rangeBytes) - i * rangeBytes;
        const slot = i % concurrency;
        pool[slot] ??= Buffer.allocUnsafe(len);
        into = pool[slot].subarray(0, len);
      }
      const p = fetchRange(i, into);
      p.catch(() => {}); // observed when awaited in order
      inflight.set(i, p);
    };
    try {
      for (let i = 0; i < Math.min(concurrency, count); i++) start(i);
      for (let i = 0; i < count; i++) {
        const p = inflight.get(i);
        if (!p) throw new Error(`range ${i} was never started`);
        const buf = await p;
        inflight.delete(i);
        // Fresh buffers: the next range can start at once. Pooled: only after
        // the consumer is done with this one (it asked for the next).
        if (!pool) start(i + concurrency);
        hasher.update(buf);
        opts.onProgress?.(hasher.size);
        yield buf;
        if (pool) start(i + concurrency);
      }
      if (hasher.size !== opts.size)
        throw new HoardError(
          'HOARD_ETRUNCATED',
          `downloaded ${hasher.size} bytes of ${opts.size} from ${opts.url}`,
        );
      const digest = hasher.digest();
      if (opts.expected && digest !== opts.expected) throw new DigestMismatchError(opts.expected, digest);
      resolveDone({ digest, size: hasher.size, ...stats });
    } catch (err) {
      rejectDone(err);
      throw err;
    } finally {
      stop.abort(new HoardError('HOARD_EABORTED', 'download stopped'));
      rejectDone(new HoardError('HOARD_EABORTED', 'download stopped before its end'));
    }
  }

  // Created on first use: only the form consumed starts the download.
  let stream: Readable | undefined;
  return {
    get stream() {
      stream ??= Readable.from(generate(undefined), { objectMode: false, highWaterMark: 1 });
      return stream;
    },
    ranges: () => generate([]),
    done,
  };
}
