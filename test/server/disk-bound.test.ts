// --max-disk: with a shared remote the disk tier is a cache kept under the
// bound by evicting the least recently *used* blobs (reads count); without
// one the disk is authoritative: only garbage (blobs no ref reaches) is
// evicted, reachable data never is, and when only live data is left writes
// get 507. The index survives a restart; `hoard gc` collects on demand.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { treeDigest } from '../../src/core/tree.ts';
import { buildServer } from '../../src/server/app.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { hoard } from '../sync/helpers.ts';
import { startTestServer, startWithCountingShared } from './helpers.ts';

const KiB = 1024;

async function diskBytes(dataDir: string): Promise<number> {
  let total = 0;
  const root = join(dataDir, 'blobs', 'sha256');
  for (const shard of await readdir(root).catch(() => [] as string[]))
    for (const name of await readdir(join(root, shard)))
      total += (await stat(join(root, shard, name)).catch(() => ({ size: 0 }))).size; // evicted meanwhile
  return total;
}

async function onDisk(dataDir: string, d: Digest): Promise<boolean> {
  const hex = hexOf(d);
  return stat(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)).then(
    () => true,
    () => false,
  );
}

const put = (base: string, data: Buffer) =>
  fetch(`${base}/v1/blobs/sha256/${hexOf(sha256(data))}`, { method: 'PUT', body: new Uint8Array(data) });
const get = async (base: string, d: Digest) => {
  const res = await fetch(`${base}/v1/blobs/sha256/${hexOf(d)}`);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
};

describe('bounded disk with a shared remote (cache)', () => {
  it('stays under the bound under a read/write load and evicts the least recently read', async () => {
    const max = 1024 * KiB;
    // A tiny memory tier, so reads reach the disk tier.
    const srv = await startWithCountingShared({ maxDisk: max, maxMemory: 1 });
    try {
      const blobs = Array.from({ length: 10 }, () => randomBytes(100 * KiB));
      for (const b of blobs) assert.equal((await put(srv.url, b)).status, 201);
      assert.ok((await diskBytes(srv.dataDir)) <= max);
      // Read blob 0 (the oldest write): it becomes the most recently used.
      assert.ok((await get(srv.url, sha256(blobs[0]))).body.equals(blobs[0]));
      const extra = randomBytes(100 * KiB);
      assert.equal((await put(srv.url, extra)).status, 201);
      assert.ok(await onDisk(srv.dataDir, sha256(blobs[0])), 'recently read blob kept');
      assert.ok(!(await onDisk(srv.dataDir, sha256(blobs[1]))), 'least recently used blob evicted');
      assert.ok((await diskBytes(srv.dataDir)) <= max);

      // A mixed load: writes, reads of old (evicted → refilled from the shared tier) and new blobs.
      const all = [...blobs, extra];
      for (let i = 0; i < 60; i++) {
        if (i % 3 === 0) {
          const b = randomBytes((50 + (i % 5) * 30) * KiB);
          all.push(b);
          assert.equal((await put(srv.url, b)).status, 201);
        } else {
          const b = all[(i * 7) % all.length];
          const r = await get(srv.url, sha256(b));
          assert.equal(r.status, 200);
          assert.ok(r.body.equals(b));
        }
        assert.ok((await diskBytes(srv.dataDir)) <= max, `over the bound after op ${i}`);
      }
      // Concurrent writers and readers: together they never push the disk past the bound.
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 6; i++) {
            if ((w + i) % 2 === 0) {
              const b = randomBytes(120 * KiB);
              assert.equal((await put(srv.url, b)).status, 201);
              all.push(b); // readable by the others once acknowledged
            } else {
              const b = all[(w * 13 + i * 5) % all.length];
              const r = await get(srv.url, sha256(b));
              assert.ok(
                r.body.equals(b),
                `status ${r.status} len ${r.body.length} of ${b.length}: ${r.body.subarray(0, 200)}`,
              );
            }
            // Under concurrency a directory walk is no snapshot (files come and go while it runs),
            // so check the accounting the bound is enforced on: bytes on disk plus bytes being written.
            const ix = srv.server.index;
            assert.ok(
              ix && ix.bytes + ix.pending <= max,
              `index ${ix?.bytes} + ${ix?.pending} pending > ${max}`,
            );
          }
        }),
      );
      // Quiescent again: the disk itself is under the bound and matches the index.
      assert.ok((await diskBytes(srv.dataDir)) <= max);
      assert.equal(await diskBytes(srv.dataDir), srv.server.index?.bytes);
      assert.ok((srv.server.index?.evictions ?? 0) > 0);
      const metrics = await (await fetch(`${srv.url}/metrics`)).text();
      assert.match(metrics, /hoard_evictions_total\{tier="disk"\} [1-9]/);
      assert.match(metrics, /hoard_disk_bytes \d+/);
    } finally {
      await srv.close();
    }
  });
});

describe('bounded disk without a shared remote (authoritative)', () => {
  async function pushVersion(base: string, ref: string, files: Buffer[], etag: string | null) {
    for (const f of files) await put(base, f);
    const { digest: tree, bytes: treeBytes } = treeDigest(
      files.map((f, i) => ({ path: `f${i}`, kind: 'file' as const, size: f.length, digest: sha256(f) })),
    );
    await put(base, treeBytes);
    const { digest: snap, bytes: snapBytes } = snapshotDigest({
      tree,
      parents: [],
      createdAt: new Date().toISOString(),
      meta: {},
    });
    await put(base, snapBytes);
    const res = await fetch(`${base}/v1/refs/${ref}`, {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        ...(etag ? { 'if-match': etag } : { 'if-none-match': '*' }),
      },
      body: JSON.stringify({ target: snap }),
    });
    assert.ok(res.status === 200 || res.status === 201, String(res.status));
    return { etag: res.headers.get('etag') as string, tree, snap };
  }

  it('evicts garbage only, never reachable data; 507 when only live data is left; index survives restart; hoard gc', async () => {
    const max = 700 * KiB;
    const srv = await startTestServer({ maxDisk: max, gcGrace: 0 });
    const f1 = randomBytes(200 * KiB);
    const f2 = randomBytes(200 * KiB);
    const f3 = randomBytes(200 * KiB);
    try {
      const v1 = await pushVersion(srv.url, 'app/main', [f1, f2], null);
      const v2 = await pushVersion(srv.url, 'app/main', [f3], v1.etag); // f1, f2, v1's tree and snapshot: garbage
      const f4 = randomBytes(250 * KiB);
      assert.equal((await put(srv.url, f4)).status, 201); // needs room: garbage goes
      assert.ok((await diskBytes(srv.dataDir)) <= max);
      for (const d of [sha256(f3), v2.tree, v2.snap, sha256(f4)]) assert.ok(await onDisk(srv.dataDir, d));
      assert.ok(!(await onDisk(srv.dataDir, sha256(f1))), 'garbage evicted');
      // Only as much as needed went: the rest of the garbage waits for more pressure (or gc).
      assert.ok(await onDisk(srv.dataDir, v1.snap));
      // Make f4 live under another ref; then a write that cannot fit gets 507 and live data stays.
      await pushVersion(srv.url, 'app/other', [f4], null);
      const f5 = randomBytes(300 * KiB);
      const full = await put(srv.url, f5);
      assert.equal(full.status, 507);
      assert.equal(((await full.json()) as { error: { code: string } }).error.code, 'HOARD_ENO_SPACE');
      for (const d of [sha256(f3), sha256(f4), v2.tree, v2.snap]) assert.ok(await onDisk(srv.dataDir, d));
      assert.ok(!(await onDisk(srv.dataDir, sha256(f5))));
      // Before refusing, every bit of garbage went.
      for (const d of [sha256(f2), v1.tree, v1.snap]) assert.ok(!(await onDisk(srv.dataDir, d)));
      const order = srv.server.index?.order() ?? [];
      // Restart on the same data: the saved index is loaded, in the same LRU order.
      await srv.server.close();
      const again = await buildServer(
        resolveConfig({ listen: '127.0.0.1:0', data: srv.dataDir, maxDisk: max, logLevel: 'silent' }),
        { logger: false },
      );
      assert.deepEqual(again.index?.order(), order);
      await again.index?.reconciled();
      assert.deepEqual(again.index?.order(), order);
      await again.close();
      // hoard gc: removes garbage (a stray upload), nothing live.
      const stray = randomBytes(10 * KiB);
      const s2 = await startTestServer({ data: srv.dataDir });
      await put(s2.url, stray);
      await s2.server.close();
      const dry = await hoard(['gc', '--data', srv.dataDir, '--grace', '0', '--dry-run', '--json']);
      assert.equal(dry.code, 0, dry.stderr);
      const garbage = [sha256(stray)];
      assert.deepEqual([...((dry.json?.removed ?? []) as string[])].sort(), garbage);
      assert.ok(await onDisk(srv.dataDir, sha256(stray)));
      const real = await hoard(['gc', '--data', srv.dataDir, '--grace', '0', '--json']);
      assert.equal(real.code, 0, real.stderr);
      assert.deepEqual([...((real.json?.removed ?? []) as string[])].sort(), garbage);
      for (const d of garbage) assert.ok(!(await onDisk(srv.dataDir, d as Digest)));
      for (const d of [sha256(f3), sha256(f4), v2.tree, v2.snap]) assert.ok(await onDisk(srv.dataDir, d));
      const fsck = await hoard(['fsck', '--data', srv.dataDir, '--json']);
      assert.equal(fsck.code, 0, fsck.stdout);
    } finally {
      await srv.close();
    }
  });
});
