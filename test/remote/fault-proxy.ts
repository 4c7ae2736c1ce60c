// A tiny HTTP proxy for retry tests: forwards every request to `target`
// unchanged (so SigV4 signatures stay valid: the Host header is passed
// through), except that `fault(req)` may answer it instead.

import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultProxy {
  url: string;
  requests: { method: string; path: string; status: number }[];
  close(): Promise<void>;
}

/** Returns a status to answer with (and the request is not forwarded), or undefined to pass through. */
export type Fault = (req: IncomingMessage) => number | 'reset' | undefined;

export async function startFaultProxy(target: string, fault: Fault): Promise<FaultProxy> {
  const t = new URL(target);
  const requests: FaultProxy['requests'] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const entry = { method: req.method ?? 'GET', path: req.url ?? '/', status: 0 };
    requests.push(entry);
    const f = fault(req);
    if (f === 'reset') {
      req.socket.destroy();
      entry.status = -1;
      return;
    }
    if (f !== undefined) {
      req.resume();
      entry.status = f;
      res.writeHead(f, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${f === 503 ? 'SlowDown' : 'Injected'}</Code><Message>injected</Message></Error>`,
      );
      return;
    }
    const up = request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        entry.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
