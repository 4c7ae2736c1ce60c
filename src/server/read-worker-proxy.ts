// A read worker's way to the primary: every request the worker does not
// answer itself (read-worker-answer.ts) is streamed, unchanged, to the
// primary's worker socket (read-workers.ts), and the answer streamed back.
// Nothing is buffered: a PUT body flows to the primary as it arrives, with
// the same backpressure as on a direct connection, and a large answer flows
// back the same way.
//
// Two headers are added, after removing any a client sent under the same
// names: the client's address (the primary logs it and counts invalid tokens
// against it) and the secret the primary gave its workers at start, without
// which the primary refuses the request (only its own workers may claim an
// address). Hop-by-hop headers (RFC 9110 §7.6.1) stay on their hop.

import { Agent, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { closeAfterAnswer } from './close-after-answer.ts';

/** The client address a worker forwards; read by the primary only on its worker socket. */
export const FORWARDED_CLIENT_HEADER = 'x-hoard-worker-client';
/** The worker secret; read by the primary only on its worker socket. */
export const WORKER_SECRET_HEADER = 'x-hoard-worker-secret';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect', // the worker's own server already answered 100 Continue
  FORWARDED_CLIENT_HEADER,
  WORKER_SECRET_HEADER,
]);

export class PrimaryProxy {
  readonly #socketPath: string;
  readonly #secret: string;
  // Idle connections are dropped here after 30 s, long before the primary's side gives up on them
  // (10 min): a request is never sent on a connection the primary is closing at that moment.
  readonly #agent = new Agent({ keepAlive: true, maxFreeSockets: 64, timeout: 30_000 });

  constructor(socketPath: string, secret: string) {
    this.#socketPath = socketPath;
    this.#secret = secret;
  }

  /** Streams `req` to the primary and its answer into `res`. */
  forward(req: IncomingMessage, res: ServerResponse): void {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP_BY_HOP.has(k) && !connectionListed(req, k)) headers[k] = v;
    headers[FORWARDED_CLIENT_HEADER] = req.socket.remoteAddress ?? '';
    headers[WORKER_SECRET_HEADER] = this.#secret;
    let up: ReturnType<typeof request>;
    try {
      up = request({
        agent: this.#agent,
        socketPath: this.#socketPath,
        method: req.method,
        path: req.url,
        headers,
      });
    } catch {
      // A request line Node's client refuses to send (the parser let it in): the primary would refuse it too.
      badGateway(res, 400, 'HOARD_EBAD_REQUEST', 'malformed request');
      return;
    }
    up.on('response', (answer) => {
      const out: string[] = [];
      const raw = answer.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i].toLowerCase();
        if (!HOP_BY_HOP.has(name)) out.push(raw[i], raw[i + 1]);
      }
      // The primary answered before the body was all sent (a refused upload): answer, then drop the rest.
      if (!req.complete) {
        req.unpipe(up);
        closeAfterAnswer(req, res);
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      answer.pipe(res);
      answer.once('error', () => res.destroy());
      answer.once('aborted', () => res.destroy());
    });
    up.on('error', () => {
      if (res.headersSent) res.destroy();
      else badGateway(res, 502, 'HOARD_EUNAVAILABLE', 'the server is restarting');
    });
    // The client went away: so does its request to the primary (which then stops a fill or an upload).
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Whether `name` is listed in the request's Connection header (hop-by-hop too). */
function connectionListed(req: IncomingMessage, name: string): boolean {
  const c = req.headers.connection;
  if (!c || c === 'keep-alive' || c === 'close') return false;
  return c
    .toLowerCase()
    .split(',')
    .some((t) => t.trim() === name);
}

function badGateway(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.destroyed) return;
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
