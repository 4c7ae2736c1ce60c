// The node:http transport (src/http/node-http-transport.ts) against a real
// local server: what it sends and returns, its connection reuse, and every way
// a request ends badly (timeouts before and after the headers, an abort, a
// refused connection, a failing upload source).

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createNodeHttpTransport, TRANSPORT_TIMEOUT } from '../../src/http/node-http-transport.ts';
import { waitUntil } from '../support/wait.ts';

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('node:http transport', () => {
  let server: Server;
  let base: string;
  let connections = 0;
  const received: { method: string; headers: IncomingMessage['headers']; body: Buffer }[] = [];
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  before(async () => {
    server = createServer(async (req, res) => {
      const route = routes.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (route) return route(req, res);
      const body = await readAll(req);
      received.push({ method: req.method ?? '', headers: req.headers, body });
      res.setHeader('x-echo-length', String(body.byteLength));
      res.setHeader('etag', '"abc"');
      res.end(req.method === 'HEAD' ? undefined : `hello ${req.method}`);
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const transport = createNodeHttpTransport({ timeoutMs: 300 });

  it('returns status, headers and body; keeps the connection for the next request', async () => {
    const before = connections;
    for (let i = 0; i < 3; i++) {
      const res = await transport({
        url: new URL(`${base}/a?x=1`),
        method: 'GET',
        headers: { 'x-h': 'v' },
        body: undefined,
      });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers.etag, '"abc"');
      assert.equal((await readAll(res.body)).toString(), 'hello GET');
    }
    assert.equal(connections - before, 1, 'one keep-alive connection for three requests');
    assert.equal(received.at(-1)?.headers['x-h'], 'v');
  });

  it('HEAD has headers and an empty body', async () => {
    const res = await transport({ url: new URL(`${base}/h`), method: 'HEAD', headers: {}, body: undefined });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.etag, '"abc"');
    assert.equal((await readAll(res.body)).byteLength, 0);
  });

  it('sends a Buffer body and a stream body whole', async () => {
    const buf = Buffer.alloc(100_000, 7);
    let res = await transport({
      url: new URL(`${base}/put`),
      method: 'PUT',
      headers: { 'content-length': String(buf.byteLength) },
      body: buf,
    });
    await readAll(res.body);
    assert.deepEqual(received.at(-1)?.body, buf);
    assert.equal(received.at(-1)?.headers['content-length'], '100000');
    res = await transport({
      url: new URL(`${base}/put`),
      method: 'PUT',
      headers: {},
      body: Readable.from([Buffer.from('ab'), Buffer.from('cd')]),
    });
    await readAll(res.body);
    assert.equal(received.at(-1)?.body.toString(), 'abcd');
    assert.equal(received.at(-1)?.headers['transfer-encoding'], 'chunked');
  });

  it('a failing upload source fails the request', async () => {
    let aborted = false;
    routes.set('/slow-put', (req) => {
      req.on('aborted', () => {
        aborted = true;
      });
      req.on('error', () => {
        aborted = true;
      });
      req.resume();
    });
    const source = new Readable({ read() {} });
    const p = transport({ url: new URL(`${base}/slow-put`), method: 'PUT', headers: {}, body: source });
    source.push(Buffer.from('part'));
    setImmediate(() => source.destroy(new Error('source broke')));
    await assert.rejects(p, /source broke/);
    await waitUntil(() => aborted, 'the server to see the upload aborted');
  });

  it('no response headers within the timeout: TRANSPORT_TIMEOUT', async () => {
    routes.set('/never', () => {});
    const t = performance.now();
    await assert.rejects(
      transport({ url: new URL(`${base}/never`), method: 'GET', headers: {}, body: undefined }),
      (err: NodeJS.ErrnoException) => err.code === TRANSPORT_TIMEOUT,
    );
    assert.ok(performance.now() - t >= 250);
  });

  it('a body that stalls fails its reader with TRANSPORT_TIMEOUT', async () => {
    routes.set('/stall', (_req, res) => {
      res.writeHead(200, { 'content-length': '10' });
      res.write('12345');
    });
    const res = await transport({
      url: new URL(`${base}/stall`),
      method: 'GET',
      headers: {},
      body: undefined,
    });
    assert.equal(res.statusCode, 200);
    await assert.rejects(readAll(res.body), (err: NodeJS.ErrnoException) => err.code === TRANSPORT_TIMEOUT);
  });

  it('an abort ends the request with an AbortError', async () => {
    routes.set('/never2', () => {});
    const ac = new AbortController();
    const p = transport({
      url: new URL(`${base}/never2`),
      method: 'GET',
      headers: {},
      body: undefined,
      signal: ac.signal,
    });
    setImmediate(() => ac.abort());
    await assert.rejects(p, (err: Error) => err.name === 'AbortError');
  });

  it('a refused connection rejects with ECONNREFUSED', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    await assert.rejects(
      transport({ url: new URL(`http://127.0.0.1:${port}/`), method: 'GET', headers: {}, body: undefined }),
      (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
    );
  });

  it('refuses other protocols', async () => {
    await assert.rejects(
      transport({ url: new URL('ftp://127.0.0.1/x'), method: 'GET', headers: {}, body: undefined }),
      /unsupported protocol/,
    );
  });
});
