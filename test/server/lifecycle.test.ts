// Lifecycle of a real `hoard serve` process: SIGTERM drains (/readyz 503,
// in-flight uploads finish, exit 0); SIGKILL during 50 concurrent uploads
// loses no acknowledged upload, exposes no partial blob, leaves fsck clean
// and no temp files after restart.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { type ServeChild, serveChild } from '../support/serve-child.ts';
import { waitUntil } from '../support/wait.ts';
import { hoard, tempDir } from '../sync/helpers.ts';

const serve = (dataDir: string, ...extra: string[]): Promise<ServeChild> => serveChild(dataDir, extra);

/**
 * A PUT whose body trickles out over `ms` milliseconds (node:http, so chunks
 * go out as written). `sent` resolves once the first piece has been handed
 * to the kernel: the upload is then in flight.
 */
function slowPut(url: string, data: Buffer, ms: number): { status: Promise<number>; sent: Promise<void> } {
  let firstSent: () => void = () => {};
  const sent = new Promise<void>((r) => {
    firstSent = r;
  });
  const status = new Promise<number>((resolve, reject) => {
    const req = request(`${url}/v1/blobs/sha256/${hexOf(sha256(data))}`, {
      method: 'PUT',
      headers: { 'content-length': String(data.length), 'content-type': 'application/octet-stream' },
      agent: false,
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    const pieces = 10;
    const size = Math.ceil(data.length / pieces);
    let i = 0;
    const next = () => {
      if (req.destroyed) return; // the server is gone: stop pacing
      if (i >= pieces) return void req.end();
      req.write(data.subarray(i * size, (i + 1) * size), i === 0 ? firstSent : undefined);
      i++;
      setTimeout(next, ms / pieces);
    };
    next();
  });
  return { status, sent };
}

describe('server lifecycle', () => {
  it('SIGTERM: /readyz turns 503, an in-flight upload finishes, exit 0', async () => {
    const tmp = await tempDir('hoard-drain-');
    try {
      const p = await serve(tmp.dir, '--drain-delay', '1500ms', '--log-level', 'warn');
      assert.equal((await fetch(`${p.url}/readyz`)).status, 200);
      const data = randomBytes(2 * 1024 * 1024);
      const upload = slowPut(p.url, data, 1200);
      await upload.sent;
      p.child.kill('SIGTERM');
      // The signal is handled asynchronously: wait for the drain to show.
      let status = '';
      await waitUntil(async () => {
        const ready = await fetch(`${p.url}/readyz`);
        const body = (await ready.json()) as { status: string };
        status = body.status;
        return ready.status === 503;
      }, '/readyz to turn 503 after SIGTERM');
      assert.equal(status, 'draining');
      assert.equal((await fetch(`${p.url}/healthz`)).status, 200);
      assert.equal(await upload.status, 201);
      const { code } = await p.exited;
      assert.equal(code, 0);
      // The upload is durable.
      const again = await serve(tmp.dir, '--log-level', 'warn');
      const got = Buffer.from(
        await (await fetch(`${again.url}/v1/blobs/sha256/${hexOf(sha256(data))}`)).arrayBuffer(),
      );
      assert.ok(got.equals(data));
      again.child.kill('SIGTERM');
      await again.exited;
    } finally {
      await tmp.cleanup();
    }
  });

  it('SIGKILL during 50 concurrent uploads: every acknowledged upload survives, nothing partial, fsck clean', async () => {
    const tmp = await tempDir('hoard-kill-');
    try {
      const p = await serve(tmp.dir, '--log-level', 'warn');
      const blobs = Array.from({ length: 50 }, (_, i) => randomBytes(256 * 1024 + i * 20_000));
      const acked = new Set<Digest>();
      const uploads = blobs.map((b, i) =>
        // The first half finish within two seconds; the second half are paced over a
        // minute, so they are surely mid-body when the server is killed.
        slowPut(p.url, b, i < 25 ? 100 + i * 30 : 60_000).status.then(
          (status) => {
            if (status === 201 || status === 200) acked.add(sha256(b));
          },
          () => {},
        ),
      );
      // Kill once some uploads have been acknowledged and others are mid-body (the later
      // ones are paced to take longer). A condition, not a time: on a loaded machine the
      // first acknowledgements can take seconds.
      await waitUntil(() => acked.size >= 10, 'ten acknowledged uploads', 120_000);
      p.child.kill('SIGKILL');
      await p.exited;
      await Promise.all(uploads);
      assert.ok(acked.size >= 10 && acked.size < 50, `acknowledged ${acked.size}`);

      const again = await serve(tmp.dir, '--log-level', 'warn');
      try {
        for (const d of acked) {
          const res = await fetch(`${again.url}/v1/blobs/sha256/${hexOf(d)}`);
          assert.equal(res.status, 200);
          assert.equal(sha256(Buffer.from(await res.arrayBuffer())), d);
        }
        // Temp files of the killed process are gone after restart.
        assert.deepEqual(await readdir(join(tmp.dir, 'tmp')), []);
        // fsck works on the live server's data directory (read-only).
        const live = await hoard(['fsck', '--data', tmp.dir, '--json']);
        assert.equal(live.code, 0, live.stdout);
        assert.equal(live.json?.clean, true);
      } finally {
        again.child.kill('SIGTERM');
        await again.exited;
      }
      // No partial blob: everything published verifies.
      const fsck = await hoard(['fsck', '--data', tmp.dir, '--json']);
      assert.equal(fsck.code, 0, fsck.stdout);
      assert.equal(fsck.json?.clean, true);
      assert.ok((fsck.json?.blobsChecked as number) >= acked.size);
    } finally {
      await tmp.cleanup();
    }
  });
});
