// The second way http-client.ts can send a request: Node's built-in
// HTTP/1.1 client instead of undici, for short-lived CLI processes.
//
// Why: undici parses HTTP with llhttp compiled to WebAssembly, and V8
// compiles that module at the process's first request: ≈ 150 ms of a
// `hoard git restore` on its critical path (with the optimizing compiler,
// which the restore's memory bound requires; the baseline one costs 7-10 MiB
// more peak RSS), plus ≈ 70 ms and 9 MiB to load undici at all (issue 16).
// node:http uses the same llhttp compiled into the Node binary: nothing to
// compile or load. A server process (many requests, HTTP/2-capable upstream
// pools) keeps undici.
//
// This is a transport only: http-client.ts keeps everything else (retries,
// status decoding, error mapping, what a retry may re-send), so both
// transports answer the same way. The timeouts match undici's as the client
// sets them: no byte for `timeoutMs` while waiting for the response headers,
// or between two body chunks, fails the request with an error coded
// TRANSPORT_TIMEOUT (which http-client.ts reports like undici's timeouts).

import type * as Http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

// Required, not imported: an ES import of a built-in builds its namespace
// from every export, and node:http's include lazy getters (WebSocket…) that
// load Node's bundled undici: 70-90 ms of start-up measured, against ≈ 7 ms
// for require('node:http').
const require = createRequire(import.meta.url);

/** Error code of a request that got no byte within the timeout. */
export const TRANSPORT_TIMEOUT = 'HOARD_HTTP_TRANSPORT_TIMEOUT';

export interface TransportRequest {
  url: URL;
  method: string;
  headers: Record<string, string>;
  /** A Buffer (its content-length set by the caller) or a stream (sent chunked). */
  body: Buffer | Readable | undefined;
  signal?: AbortSignal;
}

export interface TransportResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** Read it to the end (or resume it) so the connection goes back to the pool. */
  body: Readable;
}

export type Transport = (req: TransportRequest) => Promise<TransportResponse>;

export interface NodeHttpTransportOptions {
  /** No byte for this long (headers, or between body chunks): the request fails. */
  timeoutMs: number;
  /** Connections per origin (default 64, as the undici pool). */
  maxSockets?: number;
}

function timeoutError(req: TransportRequest, ms: number): Error {
  const err = new Error(`${req.method} ${req.url.origin}${req.url.pathname}: no data for ${ms} ms`);
  (err as NodeJS.ErrnoException).code = TRANSPORT_TIMEOUT;
  return err;
}

/** A transport over node:http / node:https with keep-alive pools (https loaded only when used). */
export function createNodeHttpTransport(opts: NodeHttpTransportOptions): Transport {
  const maxSockets = opts.maxSockets ?? 64;
  const http = require('node:http') as typeof Http;
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets });
  let httpsModule: typeof Https | undefined;
  let httpsAgent: Https.Agent | undefined;

  return async (r) => {
    let mod: typeof Http | typeof Https = http;
    let agent: Http.Agent = httpAgent;
    if (r.url.protocol === 'https:') {
      httpsModule ??= require('node:https') as typeof Https;
      httpsAgent ??= new httpsModule.Agent({ keepAlive: true, maxSockets });
      mod = httpsModule;
      agent = httpsAgent;
    } else if (r.url.protocol !== 'http:') throw new Error(`unsupported protocol ${r.url.protocol}`);
    return new Promise<TransportResponse>((resolve, reject) => {
      const req = mod.request(r.url, {
        method: r.method,
        headers: r.headers,
        agent,
        signal: r.signal,
        // Socket inactivity: before the headers, and (the same socket) between body chunks.
        timeout: opts.timeoutMs,
      });
      let response: Http.IncomingMessage | undefined;
      req.on('timeout', () => {
        const err = timeoutError(r, opts.timeoutMs);
        response?.destroy(err);
        req.destroy(err);
      });
      // Stays attached after the response: a failure mid-body reaches the body's reader.
      req.on('error', (err) => {
        if (response) {
          if (!response.destroyed) response.destroy(err);
        } else reject(err);
      });
      req.once('response', (res) => {
        response = res;
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      const body = r.body;
      if (body === undefined || Buffer.isBuffer(body)) req.end(body);
      else {
        // The source's failure aborts the request (the server must not take a torn body as whole).
        body.once('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  };
}
