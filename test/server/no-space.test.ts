// Disk full end to end (issue 11): a real `hoard serve` whose --data is a
// 2 MiB tmpfs answers 507 HOARD_ENO_SPACE (not 400 HOARD_ETRUNCATED), also
// to an upload still streaming its body, and the real `hoard push` says the
// server has no space (exit 4), not that a file changed; nothing partial is
// left, and the server keeps serving.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { EXIT } from '../../src/core/errors.ts';
import { type ServeChild, serveChild } from '../support/serve-child.ts';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.ts';
import { waitUntil } from '../support/wait.ts';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

const serve = (dataDir: string): Promise<ServeChild> => serveChild(dataDir);

/** Statuses of the PUT requests in the server's request log. */
function putStatuses(log: string): number[] {
  return log
    .split('\n')
    .filter((l) => l.includes('"method":"PUT"') && l.includes('"msg":"request"'))
    .map((l) => (JSON.parse(l) as { status: number }).status);
}

/** A streamed PUT (chunked writes with backpressure); resolves with the answer, or the socket error. */
function streamedPut(
  url: string,
  data: Buffer,
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(`${url}/v1/blobs/sha256/${hexOf(sha256(data))}`, {
      method: 'PUT',
      headers: { 'content-length': String(data.length), 'content-type': 'application/octet-stream' },
      agent: false,
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err) => resolve({ error: String(err) }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered) resolve({ error: err.code ?? String(err) });
    });
    let off = 0;
    const pump = () => {
      while (off < data.length && !req.destroyed) {
        const ok = req.write(data.subarray(off, off + 64 * 1024));
        off += 64 * 1024;
        if (!ok) return void req.once('drain', pump);
      }
      if (!req.destroyed) req.end();
    };
    pump();
  });
}

describe('disk full on the server → 507 HOARD_ENO_SPACE end to end', () => {
  let fs!: Tmpfs;
  let p!: ServeChild;
  before(async () => {
    fs = await mountTmpfs('2m');
    p = await serve(join(fs.dir, 'data'));
  });
  after(async () => {
    if (p) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    await fs?.unmount();
  });

  it('an upload streaming more than the disk holds gets 507 with the code (not a reset, not 400)', async () => {
    const r = await streamedPut(p.url, randomBytes(4 * 1024 * 1024));
    assert.ok('status' in r, `no answer: ${JSON.stringify(r)}`);
    assert.equal(r.status, 507);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'HOARD_ENO_SPACE');
    assert.deepEqual(await readdir(join(fs.dir, 'data', 'tmp')), [], 'no temp file left');
    assert.equal((await fetch(`${p.url}/healthz`)).status, 200);
  });

  it('hoard push of a larger folder: exit 4, "no space left" and HOARD_ENO_SPACE, not "changed while being pushed"', async () => {
    const src = await tempDir('hoard-nospace-src-');
    try {
      const files: Record<string, Buffer> = { 'big.bin': randomBytes(3 * 1024 * 1024) };
      for (let i = 0; i < 6; i++) files[`part-${i}.bin`] = randomBytes(700 * 1024);
      await writeFiles(src.dir, files);
      const r = await hoard(['push', src.dir, p.url, '--ref', 'team/full']);
      assert.equal(r.code, EXIT.noSpace, r.stderr);
      assert.match(r.stderr, /HOARD_ENO_SPACE/);
      assert.match(r.stderr, /no space left/);
      assert.match(r.stderr, /hint: .*free space/);
      assert.doesNotMatch(r.stderr, /changed while being pushed/);
      // Log lines reach stdout buffered (within half a second): wait for the 507's.
      await waitUntil(() => putStatuses(p.log()).includes(507), 'the 507 in the request log');
      const statuses = putStatuses(p.log());
      assert.ok(statuses.includes(507), `server answered ${statuses.join(',')}`);
      assert.ok(!statuses.includes(400), `no PUT was a 400: ${statuses.join(',')}`);
      // Nothing was committed, nothing partial stays on the server's disk.
      assert.equal((await fetch(`${p.url}/v1/refs/team/full`)).status, 404);
      assert.deepEqual(await readdir(join(fs.dir, 'data', 'tmp')), []);
    } finally {
      await src.cleanup();
    }
    // The server still serves: a small folder fits.
    const small = await tempDir('hoard-nospace-small-');
    try {
      await writeFiles(small.dir, { 'a.txt': 'fits\n' });
      const r = await hoard(['push', small.dir, p.url, '--ref', 'team/small']);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await small.cleanup();
    }
  });
});
