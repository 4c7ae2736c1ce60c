// The one HTTP client (src/http/http-client.ts) on each of its transports,
// each in a fresh process (the transport and the loaded modules are
// per-process state): the same requests give the same answers, errors and
// retries through undici and through node:http; a process on node:http never
// loads undici; and neither loads node:http2 (undici's HTTP/2 module is
// deferred until a connection negotiates h2), while the stand-in still
// reaches undici's real HTTP/2 module when called.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

const CLIENT = pathToFileURL(join(import.meta.dirname, '../../src/http/http-client.ts')).href;

/** What the child does: the same requests on either transport; prints a JSON summary. */
const SCRIPT = `
import { createRequire } from 'node:module';
import { discard, httpRequest, readJson, useNodeHttpTransport } from ${JSON.stringify(CLIENT)};
const require = createRequire(${JSON.stringify(CLIENT)});
const [transport, base, port] = process.argv.slice(1);
if (transport === 'node') useNodeHttpTransport();
const out = {};
const ok = await httpRequest('GET', new URL(base + '/ok?q=1'));
out.ok = [ok.status, ok.headers['x-kind'], await readJson(ok)];
const head = await httpRequest('HEAD', new URL(base + '/ok'));
discard(head);
out.head = [head.status, head.headers['content-length']];
try { await httpRequest('GET', new URL(base + '/missing')); } catch (e) { out.missing = [e.code, e.message, e.details?.status]; }
const accepted = await httpRequest('GET', new URL(base + '/missing'), { accept: [404] });
discard(accepted);
out.accepted = accepted.status;
const flaky = await httpRequest('PUT', new URL(base + '/flaky/' + transport), { body: Buffer.from('payload') });
out.flaky = [flaky.status, (await readJson(flaky))];
try { await httpRequest('GET', new URL('http://127.0.0.1:' + port + '/x'), { retries: 0 }); } catch (e) { out.refused = [e.code, e.message]; }
out.undiciLoaded = Object.keys(require.cache).some((k) => k.includes('/node_modules/undici/'));
out.http2Loaded = process.moduleLoadList.includes('NativeModule http2');
if (transport === 'undici') {
  // The stand-in for undici's HTTP/2 module forwards to the real one.
  const h2 = require('undici/lib/dispatcher/client-h2.js');
  try { h2(undefined, undefined); } catch (e) { out.h2Call = e instanceof TypeError; }
  out.http2AfterCall = process.moduleLoadList.includes('NativeModule http2');
  out.h2Name = require('undici/lib/dispatcher/client-h2.js').name;
}
console.log(JSON.stringify(out));
`;

describe('http-client transports', () => {
  let server: Server;
  let base: string;
  let closedPort: number;
  const flakyCalls = new Map<string, number>();

  before(async () => {
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/ok') {
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-kind', 'fine');
        res.setHeader('content-length', '7');
        res.end(req.method === 'HEAD' ? undefined : JSON.stringify({ a: 1 }));
      } else if (path.startsWith('/flaky/')) {
        const n = (flakyCalls.get(path) ?? 0) + 1;
        flakyCalls.set(path, n);
        let body = '';
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => {
          res.statusCode = n === 1 ? 503 : 200;
          res.end(
            JSON.stringify(
              n === 1 ? { error: { code: 'HOARD_EUNAVAILABLE', message: 'busy' } } : { body, n },
            ),
          );
        });
      } else {
        res.statusCode = 404;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: { code: 'HOARD_EREF_NOT_FOUND', message: 'no such thing' } }));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    closedPort = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  // Async: the server answering the child runs in this process.
  async function run(transport: 'undici' | 'node'): Promise<Record<string, unknown>> {
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', SCRIPT, transport, base, String(closedPort)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, stderr);
    return JSON.parse(stdout) as Record<string, unknown>;
  }

  it('undici and node:http answer the same; node:http loads no undici; neither loads node:http2', async () => {
    const viaUndici = await run('undici');
    const viaNode = await run('node');
    const { undiciLoaded: u1, http2Loaded: h1, h2Call, http2AfterCall, h2Name, ...sameU } = viaUndici;
    const { undiciLoaded: u2, http2Loaded: h2, ...sameN } = viaNode;
    assert.deepEqual(sameN, sameU);
    assert.deepEqual(sameU.ok, [200, 'fine', { a: 1 }]);
    assert.deepEqual(sameU.head, [200, '7']);
    assert.deepEqual((sameU.missing as unknown[])[0], 'HOARD_EREF_NOT_FOUND');
    assert.equal(sameU.accepted, 404);
    assert.deepEqual(sameU.flaky, [200, { body: 'payload', n: 2 }], 'a Buffer body is re-sent after a 503');
    assert.equal((sameU.refused as string[])[0], 'HOARD_EUNAVAILABLE');
    assert.match((sameU.refused as string[])[1], /ECONNREFUSED/);
    assert.equal(u1, true);
    assert.equal(u2, false, 'the node:http transport never loads undici');
    assert.equal(h1, false, 'undici without node:http2');
    assert.equal(h2, false);
    assert.equal(h2Call, true, 'the stand-in called the real module (which rejects bad arguments)');
    assert.equal(http2AfterCall, true);
    assert.equal(h2Name, 'connectH2');
  });
});
