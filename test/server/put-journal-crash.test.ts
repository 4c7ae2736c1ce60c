// Small PUTs go through the disk tier's journal (src/store/blob-journal.ts):
// a real `hoard serve` is SIGKILLed in the middle of a burst of 4 KiB PUTs
// (32 in flight); after a restart every acknowledged blob is there and
// verifies, nothing published is torn (fsck clean), the dead process's
// journal segment has been replayed and removed, and no temp file is left.
// A clean stop (SIGTERM) checkpoints the journal: nothing is left to replay.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { type ServeChild, serveChild } from '../support/serve-child.ts';
import { waitUntil } from '../support/wait.ts';
import { hoard, tempDir } from '../sync/helpers.ts';

const serve = (dataDir: string, ...extra: string[]): Promise<ServeChild> => serveChild(dataDir, extra);

function put(url: string, agent: Agent, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/blobs/sha256/${hexOf(sha256(data))}`, {
      method: 'PUT',
      agent,
      headers: { 'content-length': String(data.length), 'content-type': 'application/octet-stream' },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** PUTs `blobs` 32 at a time until they are done or the server is gone; adds each acknowledged digest to `acked`. */
async function burst(url: string, blobs: Buffer[], acked: Set<Digest>): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  let next = 0;
  let gone = false;
  const worker = async () => {
    while (!gone && next < blobs.length) {
      const b = blobs[next++];
      try {
        const status = await put(url, agent, b);
        if (status === 201 || status === 200) acked.add(sha256(b));
      } catch {
        gone = true;
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  agent.destroy();
}

const segments = async (dataDir: string) =>
  (await readdir(join(dataDir, 'journal')).catch(() => [] as string[])).filter((n) => n.endsWith('.log'));

describe('small PUTs through the journal', () => {
  it('SIGKILL mid-burst: every acknowledged blob survives and verifies, nothing torn, the journal replayed', async () => {
    const tmp = await tempDir('hoard-put-journal-');
    try {
      const p = await serve(tmp.dir, '--log-level', 'warn', '--max-memory', '0');
      const blobs = Array.from({ length: 4000 }, () => randomBytes(4096));
      const acked = new Set<Digest>();
      const done = burst(p.url, blobs, acked);
      await waitUntil(() => acked.size >= 300, '300 acknowledged PUTs', 120_000);
      p.child.kill('SIGKILL');
      await p.exited;
      await done;
      assert.ok(acked.size >= 300 && acked.size < blobs.length, `acknowledged ${acked.size}`);
      // The killed server's journal segment is there to be replayed.
      assert.ok((await segments(tmp.dir)).length >= 1);

      const again = await serve(tmp.dir, '--log-level', 'warn', '--max-memory', '0');
      try {
        assert.deepEqual(await segments(tmp.dir), []);
        assert.deepEqual(await readdir(join(tmp.dir, 'tmp')), []);
        // The operator is told, at warn, what the restart recovered.
        const line = again
          .log()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { msg?: string; segments?: number; records?: number })
          .find((l) => l.msg?.startsWith('journal: replayed'));
        assert.ok(line, again.log());
        assert.ok((line.segments ?? 0) >= 1 && (line.records ?? 0) >= 1, JSON.stringify(line));
        for (const d of acked) {
          const res = await fetch(`${again.url}/v1/blobs/sha256/${hexOf(d)}`);
          assert.equal(res.status, 200, d);
          assert.equal(sha256(Buffer.from(await res.arrayBuffer())), d);
        }
      } finally {
        again.child.kill('SIGTERM');
        await again.exited;
      }
      const fsck = await hoard(['fsck', '--data', tmp.dir, '--json']);
      assert.equal(fsck.code, 0, fsck.stdout);
      assert.equal(fsck.json?.clean, true);
      assert.ok((fsck.json?.blobsChecked as number) >= acked.size);
    } finally {
      await tmp.cleanup();
    }
  });

  it('SIGTERM checkpoints the journal: no segment is left, the blobs are served after a restart', async () => {
    const tmp = await tempDir('hoard-put-journal-');
    try {
      const p = await serve(tmp.dir, '--log-level', 'warn');
      const blobs = Array.from({ length: 200 }, () => randomBytes(4096));
      const acked = new Set<Digest>();
      await burst(p.url, blobs, acked);
      assert.equal(acked.size, blobs.length);
      p.child.kill('SIGTERM');
      assert.equal((await p.exited).code, 0);
      assert.deepEqual(await segments(tmp.dir), []);
      const again = await serve(tmp.dir, '--log-level', 'warn');
      try {
        for (const b of blobs.slice(0, 20)) {
          const res = await fetch(`${again.url}/v1/blobs/sha256/${hexOf(sha256(b))}`);
          assert.deepEqual(Buffer.from(await res.arrayBuffer()), b);
        }
        assert.ok(!again.log().includes('journal: replayed'), 'a clean stop leaves nothing to replay');
      } finally {
        again.child.kill('SIGTERM');
        await again.exited;
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
