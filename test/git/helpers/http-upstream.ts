// An upstream git server over HTTP for tests: a tiny node:http server in
// front of `git http-backend` (CGI), which can delay every request, hang, or
// refuse, and counts requests per repository (GET info/refs = one upstream
// clone or fetch by hoard).

import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GIT_ENV } from './harness.ts';

export interface HttpUpstream {
  url: string;
  /** Delay before each request is answered, ms (mutable). */
  delayMs: number;
  /** When true, requests are accepted but never answered (mutable). */
  hang: boolean;
  /** GET info/refs per repo path (e.g. `/app.git`). */
  infoRefs: Map<string, number>;
  /** POST upload-pack per repo path. */
  uploadPacks: Map<string, number>;
  /** Every Authorization header received. */
  authorizations: string[];
  /** Requests being answered right now, and the most there ever were at once. */
  inFlight: number;
  maxInFlight: number;
  /** Holds every request arriving from now on (counted, not answered) until the returned function is called. */
  hold(): () => void;
  close(): Promise<void>;
}

export async function startHttpUpstream(root: string, delayMs = 0): Promise<HttpUpstream> {
  const held = new Set<ServerResponse>();
  let gate: Promise<void> | null = null;
  const up: HttpUpstream = {
    url: '',
    delayMs,
    hang: false,
    infoRefs: new Map(),
    uploadPacks: new Map(),
    authorizations: [],
    inFlight: 0,
    maxInFlight: 0,
    hold: () => {
      let release!: () => void;
      gate = new Promise<void>((r) => {
        release = r;
      });
      return () => {
        gate = null;
        release();
      };
    },
    close: async () => {},
  };
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const infoRefs = /^(.*)\/info\/refs$/.exec(u.pathname);
    const rpc = /^(.*)\/git-upload-pack$/.exec(u.pathname);
    if (req.headers.authorization) up.authorizations.push(req.headers.authorization);
    if (infoRefs) bump(up.infoRefs, infoRefs[1]);
    if (rpc) bump(up.uploadPacks, rpc[1]);
    up.inFlight++;
    up.maxInFlight = Math.max(up.maxInFlight, up.inFlight);
    res.on('close', () => up.inFlight--);
    if (up.hang) {
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    req.pause();
    const answer = () => setTimeout(() => cgi(root, req, res, u), up.delayMs);
    if (gate) void gate.then(answer);
    else answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  up.close = async () => {
    for (const r of held) r.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return up;
}

function cgi(root: string, req: IncomingMessage, res: ServerResponse, u: URL): void {
  const child = spawn('git', ['http-backend'], {
    env: {
      ...GIT_ENV,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: decodeURIComponent(u.pathname),
      REQUEST_METHOD: req.method ?? 'GET',
      QUERY_STRING: u.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      GIT_PROTOCOL: (req.headers['git-protocol'] as string | undefined) ?? '',
      REMOTE_ADDR: '127.0.0.1',
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  req.pipe(child.stdin);
  child.stdin.on('error', () => {});
  res.on('close', () => child.kill('SIGKILL'));
  let headerBuf = Buffer.alloc(0);
  let headersDone = false;
  child.stdout.on('data', (c: Buffer) => {
    if (headersDone) {
      res.write(c);
      return;
    }
    headerBuf = Buffer.concat([headerBuf, c]);
    const text = headerBuf.toString('latin1');
    const m = /\r?\n\r?\n/.exec(text);
    if (!m) return;
    headersDone = true;
    let status = 200;
    for (const line of text.slice(0, m.index).split(/\r?\n/)) {
      const i = line.indexOf(':');
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10);
      else res.setHeader(k, v);
    }
    res.writeHead(status);
    res.write(headerBuf.subarray(Buffer.byteLength(text.slice(0, m.index + m[0].length), 'latin1')));
  });
  child.stdout.on('end', () => res.end());
}
