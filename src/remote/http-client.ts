// The HTTP transport of the http(s):// remote (a hoard server, API v1):
// node:http(s) with keep-alive agents, `Authorization: Bearer $HOARD_TOKEN`
// when set, a timeout on the response headers, JSON error bodies turned back
// into HoardErrors with the server's code, and retries with backoff (the
// shared policy of retry.ts) for transient failures of requests whose body
// can be sent again. A streamed upload is retried only if it failed before
// its first byte was taken from the source.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DEFAULTS } from '../core/defaults.ts';
import { type ErrorCode, HoardError, NoSpaceError } from '../core/errors.ts';
import { readAllBounded } from '../core/streams.ts';
import { withRetry } from './retry.ts';

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });

export type Body = Buffer | Readable | undefined;

export interface RequestOptions {
  headers?: Record<string, string>;
  /** A Buffer is re-sent on retry; a Readable only if nothing was read from it yet. */
  body?: Body;
  signal?: AbortSignal;
  /** Statuses returned to the caller instead of thrown (e.g. 404 for stat). */
  accept?: number[];
}

export class HoardHttpClient {
  readonly base: URL;
  readonly #token: string | undefined;

  constructor(base: URL, token: string | undefined = process.env.HOARD_TOKEN || undefined) {
    const u = new URL(base.href);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    this.base = u;
    this.#token = token || (base.password ? decodeURIComponent(base.password) : undefined);
  }

  /** `path` is relative to the base, e.g. `v1/blobs/sha256/<hex>`. */
  url(path: string): URL {
    return new URL(path, this.base);
  }

  /** Sends a request; resolves with the response (status 2xx/3xx or in `accept`), else throws. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<IncomingMessage> {
    const url = this.url(path);
    let touched = false;
    const body = opts.body;
    let src: Readable | undefined;
    if (body instanceof Readable) {
      const inner = body;
      src = Readable.from(
        (async function* () {
          for await (const chunk of inner) {
            touched = true;
            yield chunk as Uint8Array;
          }
        })(),
        { objectMode: false },
      );
    }
    const sendOpts: RequestOptions = src ? { ...opts, body: src } : opts;
    return withRetry(
      `${method} ${url.pathname}`,
      async () => {
        if (src && touched)
          throw new HoardError('HOARD_EREMOTE', `${method} ${url.pathname}: upload failed mid-body`);
        return this.#once(method, url, sendOpts);
      },
      {
        signal: opts.signal,
        // A streamed body can be sent again only if nothing was taken from it and it is intact.
        isRetryable: (err) =>
          !(src && (touched || src.destroyed || (body as Readable).destroyed)) && isTransient(err),
      },
    );
  }

  #once(method: string, url: URL, opts: RequestOptions): Promise<IncomingMessage> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (Buffer.isBuffer(opts.body)) headers['content-length'] = String(opts.body.byteLength);
    const isHttps = url.protocol === 'https:';
    const req = (isHttps ? httpsRequest : httpRequest)(url, {
      method,
      headers,
      agent: isHttps ? httpsAgent : httpAgent,
      signal: opts.signal,
    });
    return new Promise<IncomingMessage>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        req.destroy(
          new HoardError(
            'HOARD_EUNAVAILABLE',
            `${method} ${url.pathname}: no response within ${DEFAULTS.remoteRequestTimeoutMs} ms`,
          ),
        );
      }, DEFAULTS.remoteRequestTimeoutMs);
      // Once an answer has arrived, it decides: a server that refuses an
      // upload mid-body (507, 413) answers and then closes, and the write
      // errors (EPIPE, reset) that follow must not hide its answer.
      let answered = false;
      const fail = (err: unknown) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        reject(wrapNetworkError(err, method, url));
      };
      const sendFailed = (err: unknown) => {
        if (!answered) fail(err);
      };
      req.on('error', sendFailed);
      req.on('response', (res) => {
        clearTimeout(timer);
        if (settled) return;
        answered = true;
        const ok = (res.statusCode ?? 0) < 400 || (opts.accept ?? []).includes(res.statusCode ?? 0);
        if (ok) {
          settled = true;
          resolve(res);
          return;
        }
        errorFromResponse(res, method, url).then((e) => {
          settled = true;
          // Refused mid-body: stop sending the rest (and free the socket) now.
          if (!req.writableFinished) req.destroy();
          reject(e);
        }, fail);
      });
      const body = opts.body;
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else
        pipeline(body, req).catch((err) => {
          if (!answered) req.destroy(err);
          sendFailed(err);
        });
    });
  }

  async json<T>(
    method: string,
    path: string,
    body: unknown,
    opts: RequestOptions = {},
  ): Promise<{ res: IncomingMessage; value: T }> {
    const res = await this.request(method, path, {
      ...opts,
      headers: { 'content-type': 'application/json', ...opts.headers },
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
    });
    return { res, value: (await readJson(res)) as T };
  }
}

export async function readJson(res: IncomingMessage): Promise<unknown> {
  const text = (await readAllBounded(res, DEFAULTS.maxJsonBodyBytes * 4)).toString('utf8');
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HoardError('HOARD_EREMOTE', `server sent invalid JSON (status ${res.statusCode})`, {
      cause: err,
    });
  }
}

/** Discards a response body so its connection can be reused. */
export function discard(res: IncomingMessage): void {
  res.resume();
}

async function errorFromResponse(res: IncomingMessage, method: string, url: URL): Promise<HoardError> {
  const status = res.statusCode ?? 0;
  let code: string | undefined;
  let message: string | undefined;
  try {
    const body = (await readJson(res)) as { error?: { code?: unknown; message?: unknown } } | undefined;
    if (typeof body?.error?.code === 'string') code = body.error.code;
    if (typeof body?.error?.message === 'string') message = body.error.message;
  } catch {
    // not JSON: keep the status only
  }
  const text = message ?? `${method} ${url.pathname} failed with HTTP ${status}`;
  const details = { status, server: url.host };
  // A full disk: the typed error with its hint, whichever code the server used.
  if (code === 'HOARD_ENO_SPACE' || (code === undefined && status === 507))
    return new NoSpaceError(`${url.host} has no space left: ${text}`, { details });
  if (code?.startsWith('HOARD_E')) {
    const e = new HoardError(code as ErrorCode, text, { details });
    if (typeof e.status === 'number') return e;
  }
  return new HoardError(codeForStatus(status), text, { details });
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'HOARD_EBAD_REQUEST';
    case 401:
      return 'HOARD_EUNAUTHORIZED';
    case 403:
      return 'HOARD_EFORBIDDEN';
    case 404:
      return 'HOARD_EBLOB_NOT_FOUND';
    case 409:
      return 'HOARD_EREF_TARGET_MISSING';
    case 412:
      return 'HOARD_EREF_CONFLICT';
    case 413:
      return 'HOARD_ETOO_LARGE';
    case 416:
      return 'HOARD_ERANGE_NOT_SATISFIABLE';
    case 428:
      return 'HOARD_EPRECONDITION_REQUIRED';
    case 503:
      return 'HOARD_EUNAVAILABLE';
    case 507:
      return 'HOARD_ENO_SPACE';
    default:
      return status >= 500 ? 'HOARD_EREMOTE' : 'HOARD_EBAD_REQUEST';
  }
}

function wrapNetworkError(err: unknown, method: string, url: URL): unknown {
  if (err instanceof HoardError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return err;
  return new HoardError(
    'HOARD_EUNAVAILABLE',
    `${method} ${url.host}${url.pathname}: ${e?.message ?? String(err)}`,
    {
      cause: err,
    },
  );
}

/** Transient: 5xx (HoardErrors carry their status) but 507, 429, 408, network errors. */
function isTransient(err: unknown): boolean {
  if (err instanceof HoardError) {
    const s = err.status;
    // A full disk does not empty itself within a backoff: say so at once.
    if (s === 507) return false;
    return s >= 500 || s === 429 || s === 408;
  }
  return false;
}
