// A bit flipped in a blob on the server's disk is never served as a complete
// success, never enters the memory tier, is quarantined and counted, and
// `POST /v1/blobs/missing` and GET agree about it in every state; a correct
// re-upload repairs it in every tier without a restart.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../src/core/digest.ts';
import { buildServer } from '../../src/server/app.ts';
import { type RawSettings, resolveConfig } from '../../src/server/config.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { fsck } from '../../src/store/fsck.ts';
import { startTestServer, startWithCountingShared } from './helpers.ts';

const blobUrl = (base: string, digest: Digest) => `${base}/v1/blobs/sha256/${hexOf(digest)}`;

/** Flips one bit of a blob's file in place (as a disk or a person would). */
async function flipBit(dataDir: string, digest: Digest, offset: number): Promise<void> {
  const fh = await open((await FsBlobStore.openReadOnly(dataDir)).pathOf(digest), 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, offset);
    b[0] ^= 0x10;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

async function isMissing(base: string, digest: Digest): Promise<boolean> {
  const res = await fetch(`${base}/v1/blobs/missing`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ digests: [digest] }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { missing: string[] }).missing.includes(digest);
}

/** A GET's outcome: the status and whether the body arrived whole and right. */
async function get(
  base: string,
  digest: Digest,
  headers: Record<string, string> = {},
): Promise<{ status: number; body?: Buffer; cut: boolean }> {
  const res = await fetch(blobUrl(base, digest), { headers });
  try {
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()), cut: false };
  } catch {
    return { status: res.status, cut: true };
  }
}

async function corruptCount(base: string, source: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`hoard_blob_corrupt_total\\{source="${source}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

async function quarantined(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'quarantine')).catch(() => [] as string[]);
}

async function put(base: string, data: Buffer): Promise<number> {
  const res = await fetch(blobUrl(base, sha256(data)), { method: 'PUT', body: new Uint8Array(data) });
  await res.arrayBuffer();
  return res.status;
}

/** A server on a data directory prepared before it starts (its first reads are of files it never verified). */
async function serverOn(dataDir: string, settings: RawSettings = {}) {
  const config = resolveConfig({ listen: '127.0.0.1:0', data: dataDir, logLevel: 'silent', ...settings });
  const server = await buildServer(config, { logger: false });
  const url = await server.listen();
  return { url, server, close: () => server.close() };
}

async function plantCorrupt(data: Buffer, offset: number) {
  const dir = await mkdtemp(join(tmpdir(), 'hoard-integrity-'));
  const store = await FsBlobStore.open(dir);
  const digest = sha256(data);
  await store.write(digest, [data]);
  await flipBit(dir, digest, offset);
  return { dir, digest };
}

describe('corrupt disk blobs (no shared tier)', () => {
  it('a whole GET of a flipped blob is cut off, quarantined, counted; missing and GET then agree; a PUT repairs it', async () => {
    const data = randomBytes(1024 * 1024 + 123);
    const { dir, digest } = await plantCorrupt(data, 700_000);
    const srv = await serverOn(dir);
    try {
      assert.equal(await isMissing(srv.url, digest), false, 'before any read the server cannot know');
      const first = await get(srv.url, digest);
      assert.ok(first.cut || first.status !== 200, 'never a complete 200 with the wrong bytes');
      assert.equal(await corruptCount(srv.url, 'read'), 1);
      assert.equal((await quarantined(dir)).length, 1);
      assert.equal(srv.server.ctx.blobs.memory.bytes, 0, 'the memory tier never got the bytes');
      assert.equal(srv.server.ctx.blobs.memory.reservedBytes, 0);
      // Both now say it is gone.
      assert.equal(await isMissing(srv.url, digest), true);
      assert.equal((await get(srv.url, digest)).status, 404);
      const head = await fetch(blobUrl(srv.url, digest), { method: 'HEAD' });
      assert.equal(head.status, 404);
      // A correct re-upload repairs it, no restart.
      assert.equal(await put(srv.url, data), 201);
      assert.equal(await isMissing(srv.url, digest), false);
      for (let i = 0; i < 2; i++) {
        const again = await get(srv.url, digest);
        assert.equal(again.status, 200);
        assert.deepEqual(again.body, data);
      }
      assert.equal(await corruptCount(srv.url, 'read'), 1);
    } finally {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a bit flipped after the server verified the file is caught too (the file changed)', async () => {
    const srv = await startTestServer({ maxMemory: '0' });
    try {
      const data = randomBytes(2 * 1024 * 1024);
      const digest = sha256(data);
      assert.equal(await put(srv.url, data), 201);
      assert.deepEqual((await get(srv.url, digest)).body, data);
      await flipBit(srv.dataDir, digest, data.length - 1); // the very last byte
      const r = await get(srv.url, digest);
      assert.ok(r.cut || r.status !== 200);
      assert.equal(await corruptCount(srv.url, 'read'), 1);
      assert.equal(await isMissing(srv.url, digest), true);
      assert.equal((await get(srv.url, digest)).status, 404);
      assert.equal(await put(srv.url, data), 201);
      assert.deepEqual((await get(srv.url, digest)).body, data);
    } finally {
      await srv.close();
    }
  });

  it('a small blob and a ranged read are checked before the answer: a plain 404, never 200/206', async () => {
    const small = randomBytes(10_000);
    const big = randomBytes(3 * 1024 * 1024);
    const a = await plantCorrupt(small, 5);
    const store = await FsBlobStore.open(a.dir);
    const bigDigest = sha256(big);
    await store.write(bigDigest, [big]);
    await flipBit(a.dir, bigDigest, 2_000_000);
    const srv = await serverOn(a.dir);
    try {
      assert.equal((await get(srv.url, a.digest)).status, 404);
      const ranged = await get(srv.url, bigDigest, { range: 'bytes=0-99' });
      assert.equal(ranged.status, 404);
      assert.equal(await corruptCount(srv.url, 'read'), 2);
      assert.equal(await isMissing(srv.url, a.digest), true);
      assert.equal(await isMissing(srv.url, bigDigest), true);
      assert.equal(await put(srv.url, big), 201);
      const r = await get(srv.url, bigDigest, { range: 'bytes=2000000-2000009' });
      assert.equal(r.status, 206);
      assert.deepEqual(r.body, big.subarray(2_000_000, 2_000_010));
    } finally {
      await srv.close();
      await rm(a.dir, { recursive: true, force: true });
    }
  });

  it('a PUT of correct bytes over a corrupt file the server has not read yet replaces it (201)', async () => {
    const data = randomBytes(500_000);
    const { dir, digest } = await plantCorrupt(data, 1);
    const srv = await serverOn(dir);
    try {
      assert.equal(await put(srv.url, data), 201);
      assert.equal(await corruptCount(srv.url, 'write'), 1);
      assert.deepEqual((await get(srv.url, digest)).body, data);
      // A PUT of a sound blob still says it was there.
      assert.equal(await put(srv.url, data), 200);
    } finally {
      await srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('after `fsck --repair` moved the file away, memory does not keep serving it; a PUT puts it back', async () => {
    const srv = await startTestServer();
    try {
      const data = randomBytes(300_000);
      const digest = sha256(data);
      assert.equal(await put(srv.url, data), 201);
      assert.deepEqual((await get(srv.url, digest)).body, data); // now in the memory tier too
      assert.ok(srv.server.ctx.blobs.memory.bytes > 0);
      await flipBit(srv.dataDir, digest, 42);
      const report = await fsck(srv.dataDir, { repair: true });
      assert.equal(report.corrupt.length, 1);
      assert.equal(await isMissing(srv.url, digest), true);
      assert.equal((await get(srv.url, digest)).status, 404);
      assert.equal(await put(srv.url, data), 201);
      assert.equal(await isMissing(srv.url, digest), false);
      assert.deepEqual((await get(srv.url, digest)).body, data);
    } finally {
      await srv.close();
    }
  });
});

describe('corrupt disk blobs (with a shared tier)', () => {
  it('a corrupt disk copy is cut off once, then the blob is refilled from the shared tier', async () => {
    const srv = await startWithCountingShared({ maxMemory: '0' });
    try {
      const data = randomBytes(1024 * 1024);
      const digest = sha256(data);
      assert.equal(await put(srv.url, data), 201);
      await flipBit(srv.dataDir, digest, 123_456);
      const r = await get(srv.url, digest);
      assert.ok(r.cut || r.status !== 200);
      assert.equal(await corruptCount(srv.url, 'read'), 1);
      assert.equal(await isMissing(srv.url, digest), false, 'the shared tier still has it');
      const again = await get(srv.url, digest);
      assert.equal(again.status, 200);
      assert.deepEqual(again.body, data);
      // A ranged read of a freshly corrupted copy falls through to the shared tier before answering.
      await flipBit(srv.dataDir, digest, 10);
      const ranged = await get(srv.url, digest, { range: 'bytes=0-99' });
      assert.equal(ranged.status, 206);
      assert.deepEqual(ranged.body, data.subarray(0, 100));
      assert.equal(await corruptCount(srv.url, 'read'), 2);
    } finally {
      await srv.close();
    }
  });

  it('a re-upload repairs the disk tier too when the shared tier still has the blob', async () => {
    const srv = await startWithCountingShared({ maxMemory: '0' });
    try {
      const data = randomBytes(1024 * 1024);
      const digest = sha256(data);
      assert.equal(await put(srv.url, data), 201);
      await flipBit(srv.dataDir, digest, 999);
      assert.equal(await put(srv.url, data), 200, 'the authoritative tier had it');
      assert.equal(await corruptCount(srv.url, 'write'), 1);
      const reads = srv.shared.reads.length;
      const r = await fetch(blobUrl(srv.url, digest));
      assert.equal(r.headers.get('x-hoard-tier'), 'disk');
      assert.deepEqual(Buffer.from(await r.arrayBuffer()), data);
      assert.equal(srv.shared.reads.length, reads, 'served from the repaired disk copy');
      assert.equal(await corruptCount(srv.url, 'read'), 0);
    } finally {
      await srv.close();
    }
  });
});
