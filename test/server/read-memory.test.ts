// Memory held by in-flight reads is bounded: a real `hoard serve` process
// with --max-memory 16MiB, 200 distinct 4 MiB blobs on its disk, and 200
// concurrent readers that stop reading after their first bytes. The
// server's RSS (VmRSS of the child) stays under its baseline + 150 MiB, the
// bound docs/configuration.md states ("Memory of reads"); buffering each
// blob whole, as reads of blobs ≤ 8 MiB once did, costs 800 MiB here.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, hexOf } from '../../src/core/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { type ServeChild, serveChild } from '../support/serve-child.ts';
import { tempDir } from '../sync/helpers.ts';

const MiB = 1024 * 1024;
const READERS = 200;
const BLOB_BYTES = 4 * MiB;
/** The documented bound on what stalled readers may add to the server's RSS. */
const BOUND_BYTES = 150 * MiB;

/**
 * Writes blob i as a sparse file straight into the data directory's layout
 * (a unique 8-byte head, then zeros), so 800 MiB of blobs cost no disk writes.
 */
async function plantBlob(
  dataDir: string,
  i: number,
  zeros: Buffer,
): Promise<{ digest: Digest; size: number }> {
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(i + 1));
  const size = BLOB_BYTES + i * 1000;
  const h = createHash('sha256').update(head);
  for (let left = size - head.length; left > 0; left -= zeros.length)
    h.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
  const digest: Digest = `sha256:${h.digest('hex')}`;
  const path = FsBlobStore.pathIn(dataDir, digest);
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, 'wx');
  try {
    await fh.write(head, 0, head.length, 0);
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  return { digest, size };
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  assert.ok(m, 'VmRSS in /proc/<pid>/status');
  return Number(m[1]) * 1024;
}

const serve = (dataDir: string): Promise<ServeChild> =>
  serveChild(dataDir, ['--max-memory', '16MiB', '--log-level', 'warn']);

/** Reads a whole blob and checks its size and digest. */
function readWhole(url: string, digest: Digest, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    request(`${url}/v1/blobs/sha256/${hexOf(digest)}`, { agent: false }, (res) => {
      const h = createHash('sha256');
      let n = 0;
      res.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      res.on('end', () => {
        try {
          assert.equal(res.statusCode, 200);
          assert.equal(n, size);
          assert.equal(`sha256:${h.digest('hex')}`, digest);
          resolve();
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

describe('memory of in-flight reads', () => {
  it('200 stalled readers of distinct 4 MiB blobs keep the server under baseline + 150 MiB', async () => {
    const tmp = await tempDir('hoard-readmem-');
    const zeros = Buffer.alloc(MiB);
    const blobs: { digest: Digest; size: number }[] = [];
    for (let i = 0; i < READERS + 2; i++) blobs.push(await plantBlob(tmp.dir, i, zeros));
    const { child, url } = await serve(tmp.dir);
    const pid = child.pid;
    assert.ok(pid);
    const open: { req: ClientRequest; res?: IncomingMessage }[] = [];
    try {
      // Warm-up: the code paths of a whole verified read, then the baseline.
      await readWhole(url, blobs[READERS].digest, blobs[READERS].size);
      await readWhole(url, blobs[READERS + 1].digest, blobs[READERS + 1].size);
      const baseline = await rssOf(pid);

      // 200 readers that take their first bytes and then stop reading.
      await Promise.all(
        blobs.slice(0, READERS).map(
          (b) =>
            new Promise<void>((resolve, reject) => {
              const entry: (typeof open)[number] = {
                req: request(`${url}/v1/blobs/sha256/${hexOf(b.digest)}`, { agent: false }, (res) => {
                  entry.res = res;
                  if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
                  res.once('data', () => {
                    res.pause();
                    resolve();
                  });
                }),
              };
              entry.req.on('error', reject);
              entry.req.end();
              open.push(entry);
            }),
        ),
      );
      // All 200 are in flight, stalled on their sockets: sample the server while they stay so.
      let peak = 0;
      for (let i = 0; i < 20; i++) {
        peak = Math.max(peak, await rssOf(pid));
        await new Promise((r) => setImmediate(r));
      }
      const grown = peak - baseline;
      assert.ok(
        grown < BOUND_BYTES,
        `RSS grew by ${(grown / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB), bound ${BOUND_BYTES / MiB} MiB`,
      );

      // The stalled reads are still good reads: a few run to the end, verified.
      for (const e of open) e.req.destroy();
      await Promise.all([0, 1, 2].map((i) => readWhole(url, blobs[i].digest, blobs[i].size)));
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200);
    } finally {
      for (const e of open) e.req.destroy();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      await tmp.cleanup();
    }
  });
});
