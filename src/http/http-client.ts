// The one HTTP client for everything hoard sends out (the http(s):// remote,
// `hoard git restore`, its ranged download): undici with one keep-alive
// pool per origin (or, in a short-lived CLI process — every command but
// `serve`, src/cli/main.ts — node:http: node-http-transport.ts), a timeout
// on the response headers and on body inactivity,
// error responses decoded into HoardErrors by core/errors.ts's one decoder,
// and retries with backoff (core/retry.ts) whenever the error's code says a
// retry may succeed and the request body can be sent again: a Buffer always,
// a stream only if it failed before its first byte was taken.
//
// An unreachable server is reported the same way by every command: the URL,
// the cause (ECONNREFUSED, ENOTFOUND, a timeout…) and a hint.

import type { IncomingHttpHeaders } from 'node:http';
import { createRequire, Module } from 'node:module';
import { Readable } from 'node:stream';
import type { Dispatcher, Agent as UndiciAgent } from 'undici';
import { DEFAULTS } from '../core/defaults.ts';
import { errorFromWire, HoardError, isRetryable } from '../core/errors.ts';
import { withRetry } from '../core/retry.ts';
import { readAllBounded } from '../core/streams.ts';
import {
  createNodeHttpTransport,
  TRANSPORT_TIMEOUT,
  type Transport,
  type TransportResponse,
} from './node-http-transport.ts';

// undici's Agent and its request API only, not its index: the index loads
// all of undici (fetch, WebSocket, caches, mocks…), ≈ 14 MiB more RSS and
// start-up time in every CLI process (a restore's peak RSS, issue 16).
// Loaded at the first request that goes through undici, not with this module:
// a process on the node:http transport (useNodeHttpTransport) never loads it.
// test/http/http-client.test.ts exercises these paths, so a release of
// undici that moves them fails there.
const requireUndici = createRequire(import.meta.url);

/** undici's request function bound to the one Agent of the process (created on first use). */
let undiciRequest: ((opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>) | undefined;

function loadUndici(): (opts: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData> {
  if (undiciRequest) return undiciRequest;
  deferUndiciHttp2();
  const Agent = requireUndici('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
  const dispatchRequest = requireUndici('undici/lib/api/api-request.js') as (
    this: Dispatcher,
    opts: Dispatcher.RequestOptions,
  ) => Promise<Dispatcher.ResponseData>;
  /** One pool for the process: connections are reused across every request to an origin. */
  const agent = new Agent({
    connections: 64,
    headersTimeout: DEFAULTS.remoteRequestTimeoutMs,
    bodyTimeout: DEFAULTS.remoteRequestTimeoutMs,
    keepAliveTimeout: 10_000,
  });
  undiciRequest = (opts) => dispatchRequest.call(agent, opts);
  return undiciRequest;
}

/** Sends one request through undici (the default transport). */
const undiciTransport: Transport = async (r) => {
  const res = await loadUndici()({
    origin: r.url.origin,
    path: `${r.url.pathname}${r.url.search}`,
    method: r.method as Dispatcher.HttpMethod,
    headers: r.headers,
    body: r.body,
    signal: r.signal,
  });
  return { statusCode: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: res.body };
};

let transport: Transport = undiciTransport;

/**
 * Sends every later request of this process through node:http instead of
 * undici (node-http-transport.ts: no WebAssembly parser to compile, undici
 * never loaded). For short-lived CLI processes (every CLI command but
 * `serve`: src/cli/main.ts); call it before the first request. Retries, status decoding and error mapping stay
 * this module's, the same for both transports.
 */
export function useNodeHttpTransport(): void {
  transport = createNodeHttpTransport({ timeoutMs: DEFAULTS.remoteRequestTimeoutMs });
}

/**
 * undici's HTTP/1.1 client module requires its HTTP/2 one at load time, and
 * that requires `node:http2`, which brings TLS and nghttp2 up with it: ≈ 40 ms
 * of CPU and ≈ 8 MiB of RSS in every CLI process (a third of a restore's
 * start-up and most of its memory margin, issue 16), for a code path hoard
 * never takes (its Agent does not set `allowH2`, so no connection negotiates
 * h2). The HTTP/2 module is therefore entered in the require cache as a
 * function that loads the real one on its first call and forwards to it:
 * identical behaviour if undici ever does connect with h2, nothing loaded
 * until then. Skipped (undici loads as usual) when undici's layout is not the
 * one expected; test/http/http-client.test.ts checks both the deferral and
 * that the module still exports what the stand-in replaces.
 */
function deferUndiciHttp2(): void {
  let path: string;
  try {
    path = requireUndici.resolve('undici/lib/dispatcher/client-h2.js');
  } catch {
    return;
  }
  const cache = requireUndici.cache;
  if (cache[path]) return; // already loaded (by another copy of this module, or undici's index)
  let real: ((...args: unknown[]) => unknown) | undefined;
  function connectH2(this: unknown, ...args: unknown[]): unknown {
    if (!real) {
      delete cache[path];
      real = requireUndici(path) as (...args: unknown[]) => unknown;
    }
    return real.apply(this, args);
  }
  const stub = new Module(path);
  stub.filename = path;
  stub.loaded = true;
  stub.exports = connectH2;
  cache[path] = stub;
}

export type Body = Buffer | Readable | undefined;

export interface HttpRequestOptions {
  headers?: Record<string, string>;
  /** A Buffer is re-sent on retry; a Readable only if nothing was read from it yet. */
  body?: Body;
  signal?: AbortSignal;
  /** Statuses returned to the caller instead of thrown (e.g. 404 for stat); 'any': the caller judges every status. */
  accept?: readonly number[] | 'any';
  /** Retries after the first attempt (default DEFAULTS.remoteRetries; 0 = the caller retries). */
  retries?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body; read it, or `discard()` it so the connection can be reused. */
  body: Readable;
}

/** Largest JSON body read from a response. */
const MAX_JSON_BYTES = 4 * DEFAULTS.maxJsonBodyBytes;

/** Sends a request; resolves with a 2xx/3xx response (or one in `accept`), else throws a HoardError. */
export async function httpRequest(
  method: string,
  url: URL,
  opts: HttpRequestOptions = {},
): Promise<HttpResponse> {
  let touched = false;
  const original = opts.body;
  let body: Buffer | Readable | undefined = original;
  if (original instanceof Readable) {
    // The source's failure reaches undici through the iterator below. Without
    // a listener of its own, an error emitted between two reads (a digest
    // check failing at the end) is an unhandled 'error' event.
    original.on('error', () => {});
    // Counts what was taken from the source: once a byte went, a retry would send a torn body.
    body = Readable.from(
      (async function* () {
        for await (const chunk of original) {
          touched = true;
          yield chunk as Uint8Array;
        }
      })(),
      { objectMode: false },
    );
  }
  const what = `${method} ${shown(url)}`;
  return withRetry(
    what,
    async () => {
      if (body instanceof Readable && (touched || body.destroyed))
        throw new HoardError('HOARD_EREMOTE', `${what}: upload failed mid-body`);
      return once(method, url, what, opts.headers, body, opts);
    },
    {
      retries: opts.retries,
      signal: opts.signal,
      isRetryable: (err) =>
        !(original instanceof Readable && (touched || original.destroyed)) && isRetryable(err),
    },
  );
}

async function once(
  method: string,
  url: URL,
  what: string,
  given: Record<string, string> | undefined,
  body: Buffer | Readable | undefined,
  opts: HttpRequestOptions,
): Promise<HttpResponse> {
  const headers: Record<string, string> = { ...given };
  if (Buffer.isBuffer(body)) headers['content-length'] = String(body.byteLength);
  let res: TransportResponse;
  try {
    res = await transport({ url, method, headers, body, signal: opts.signal });
  } catch (err) {
    throw networkError(err, what, url);
  }
  const response: HttpResponse = { status: res.statusCode, headers: res.headers, body: res.body };
  if (res.statusCode < 400 || opts.accept === 'any' || opts.accept?.includes(res.statusCode)) return response;
  let parsed: unknown;
  try {
    parsed = await readJson(response);
  } catch {
    parsed = undefined; // not JSON: the status decides
  }
  const e = errorFromWire(res.statusCode, parsed, what);
  throw new HoardError(e.code, e.message, { hint: e.hint, details: { ...e.details, server: url.host } });
}

/** The URL without credentials or query (for messages). */
function shown(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function networkError(err: unknown, what: string, url: URL): unknown {
  if (err instanceof HoardError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return err;
  const code = e?.code ?? e?.cause?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === TRANSPORT_TIMEOUT)
    return new HoardError(
      'HOARD_EUNAVAILABLE',
      `${what}: no response within ${DEFAULTS.remoteRequestTimeoutMs} ms`,
      {
        cause: err,
        hint: `${url.origin} is reachable but did not answer in time; is it overloaded?`,
      },
    );
  const cause = code && UNREACHABLE.has(code) ? code : (e?.message ?? String(err));
  return new HoardError('HOARD_EUNAVAILABLE', `cannot reach ${url.origin} (${what}): ${cause}`, {
    cause: err,
    hint: `is a hoard server running at ${url.origin}? check the URL, the port and the network`,
    details: { url: shown(url) },
  });
}

/** Reads a (bounded) JSON body; an empty body is undefined. */
export async function readJson(res: HttpResponse): Promise<unknown> {
  const text = (await readAllBounded(res.body as AsyncIterable<Uint8Array>, MAX_JSON_BYTES)).toString('utf8');
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HoardError('HOARD_EREMOTE', `server sent invalid JSON (status ${res.status})`, { cause: err });
  }
}

/** Discards a response body so its connection can be reused. */
export function discard(res: HttpResponse): void {
  res.body.resume();
  res.body.on('error', () => {});
}

/** A header's single value. */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
