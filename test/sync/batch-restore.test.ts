// Pull and cache restore through batched reads when the batch answers are
// tampered with on the way (a proxy between the CLI and a real server): a
// byte flipped in a blob, a response cut short, a record swapped for
// another blob. Each is a clear error; no file in the folder ever holds
// wrong bytes and no temp file is left; an honest restore afterwards
// completes. And an honest pull writes small files from batches (fsync on)
// and large ones alone.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BATCH_MAGIC } from '../../src/core/blob-batch-frame.ts';
import { startTestServer, type TestServer } from '../server/helpers.ts';
import { run } from './cache-suite.ts';
import { describeDir, tempDir, writeFiles } from './helpers.ts';

type Tamper = (body: Buffer) => Buffer;

/** Forwards everything to `target`; batch responses go through `tamper` (buffered: test data only). */
async function tamperingProxy(
  target: string,
  tamper: () => Tamper | undefined,
): Promise<{ url: string; batches: () => number; close(): Promise<void> }> {
  const t = new URL(target);
  let batches = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const up = request(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        const f = req.url === '/v1/blobs/batch' && upRes.statusCode === 200 ? tamper() : undefined;
        if (req.url === '/v1/blobs/batch') batches++;
        if (!f) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upRes.on('data', (c) => chunks.push(c));
        upRes.on('end', () => {
          const headers = { ...upRes.headers };
          delete headers['content-length'];
          delete headers['transfer-encoding'];
          res.writeHead(200, headers);
          res.end(f(Buffer.concat(chunks)));
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    batches: () => batches,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Every file under `dir` holds exactly the bytes it has under `source` (or is absent); no temp files. */
async function nothingWrong(dir: string, source: string): Promise<number> {
  let n = 0;
  const walk = async (rel: string) => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.name === '.hoard') continue; // hoard's local state
      assert.ok(!(e.name.startsWith('.hoard-') && e.name.endsWith('.tmp')), `temp file left: ${p}`);
      if (e.isDirectory()) await walk(p);
      else {
        assert.deepEqual(await readFile(join(dir, p)), await readFile(join(source, p)), p);
        n++;
      }
    }
  };
  await walk('');
  return n;
}

describe('batched reads under tampering: pull and cache restore write nothing wrong', () => {
  let srv: TestServer;
  let src: { dir: string; cleanup: () => Promise<void> };
  let mode: Tamper | undefined;
  let proxy: Awaited<ReturnType<typeof tamperingProxy>>;
  before(async () => {
    srv = await startTestServer();
    src = await tempDir('hoard-batch-src-');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 300; i++) files[`deps/pkg${i % 17}/f${i}.js`] = randomBytes(200 + i * 7);
    files['deps/big.bin'] = randomBytes(600 * 1024); // past the batch file size: read alone
    await writeFiles(src.dir, files);
    const saved = await run(src.dir, ['cache', 'save', 'k', 'deps', '--remote', srv.url, '--json']);
    assert.equal(saved.code, 0, saved.stderr);
    proxy = await tamperingProxy(srv.url, () => mode);
  });
  after(async () => {
    await proxy?.close();
    await srv?.close();
    await src?.cleanup();
  });

  const cases: [string, Tamper, RegExp][] = [
    [
      'a byte flipped in a blob',
      (b) => {
        const out = Buffer.from(b);
        out[out.length - 3] ^= 0xff;
        return out;
      },
      /HOARD_EDIGEST_MISMATCH|corrupt/,
    ],
    ['the response cut short', (b) => b.subarray(0, Math.floor(b.length / 2)), /HOARD_ETRUNCATED|cut short/],
    [
      "a record's digest swapped for another",
      (b) => {
        const out = Buffer.from(b);
        out[BATCH_MAGIC.length + 5] ^= 0x01; // the first record's digest
        return out;
      },
      /HOARD_EREMOTE|not asked|asked for/,
    ],
    [
      'a length that lies',
      (b) => {
        const out = Buffer.from(b);
        out.writeUInt32BE(out.readUInt32BE(BATCH_MAGIC.length + 33) + 1, BATCH_MAGIC.length + 33);
        return out;
      },
      /HOARD_EREMOTE|declares/,
    ],
  ];
  for (const [what, tamper, message] of cases)
    it(`${what}: a clear error, no wrong bytes in the folder, then an honest restore completes`, async () => {
      const work = await tempDir('hoard-batch-dst-');
      try {
        mode = tamper;
        const before = proxy.batches();
        const bad = await run(work.dir, ['cache', 'restore', 'k', 'deps', '--remote', proxy.url, '--json']);
        assert.notEqual(bad.code, 0, `${what}: restore succeeded`);
        assert.match(bad.stderr + bad.stdout, message);
        assert.ok(proxy.batches() > before, 'went through batches');
        await nothingWrong(work.dir, src.dir);

        mode = undefined;
        const good = await run(work.dir, ['cache', 'restore', 'k', 'deps', '--remote', proxy.url, '--json']);
        assert.equal(good.code, 0, good.stderr);
        assert.equal(await nothingWrong(work.dir, src.dir), 301);
      } finally {
        await work.cleanup();
      }
    });

  it('an honest pull (fsync on) writes small files from batches and the large one alone', async () => {
    const work = await tempDir('hoard-batch-pull-');
    try {
      const pushed = await run(src.dir, ['push', src.dir, srv.url, '--ref', 'team/batch', '--json']);
      assert.equal(pushed.code, 0, pushed.stderr);
      mode = undefined;
      const before = proxy.batches();
      const pulled = await run(work.dir, ['pull', proxy.url, work.dir, '--ref', 'team/batch', '--json']);
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(pulled.json.filesDownloaded, 301);
      // 300 small blobs: two batches (at most 256 each), not 300 requests.
      assert.equal(proxy.batches() - before, 2);
      assert.deepEqual(await describeDir(join(work.dir, 'deps')), await describeDir(join(src.dir, 'deps')));
    } finally {
      await work.cleanup();
    }
  });
});
