// gc and the disk bound keep what Bazel action results name. The CAS blobs an
// ActionResult references (output files, stdout, output-directory Trees and
// the files they list) have no ref of their own; before entryReferences,
// `hoard gc` removed them all and every action cache entry became a miss.
// Covered: `hoard gc` as a CLI process (the composition root's wiring), the
// authoritative disk bound's eviction pass (buildServer's wiring), and an
// entry whose content does not decode (gc goes on, keeps the record's blob).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { type Digest, hexOf, sha256 } from '../../../src/core/digest.ts';
import { encodeEntry } from '../../../src/core/entry-record.ts';
import { encodeActionResult, encodeTree } from '../../../src/features/bazel/action-result.ts';
import { actionResultReferences } from '../../../src/features/bazel/action-result-references.ts';
import { collectGarbage } from '../../../src/server/gc.ts';
import { FsBlobStore } from '../../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../../src/store/fs-ref-store.ts';
import { hoard } from '../../sync/helpers.ts';
import { startCacheServer } from './cache-server.ts';

const KiB = 1024;

async function onDisk(dataDir: string, d: Digest): Promise<boolean> {
  const hex = hexOf(d);
  return stat(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)).then(
    () => true,
    () => false,
  );
}

const wire = (d: Digest, size: number) => ({ hash: hexOf(d), sizeBytes: size });

async function put(url: string, body: Uint8Array): Promise<number> {
  const res = await fetch(url, { method: 'PUT', body: new Uint8Array(body) });
  await res.arrayBuffer();
  return res.status;
}

/** Uploads an action's outputs and its result; returns every blob the result names. */
async function storeAction(
  base: string,
  name: string,
  size = 2 * KiB,
): Promise<{ action: string; named: Digest[] }> {
  const cas = async (b: Uint8Array) => {
    assert.equal(await put(`${base}/cas/${hexOf(sha256(b))}`, b), 200);
    return sha256(b);
  };
  const out = randomBytes(size);
  const listed = randomBytes(size);
  const stdout = Buffer.from(`compiling ${name}\n`);
  const [outD, listedD, stdoutD] = [await cas(out), await cas(listed), await cas(stdout)];
  const tree = encodeTree({ root: { files: [{ name: 'f', digest: wire(listedD, listed.length) }] } });
  const treeD = await cas(tree);
  const result = encodeActionResult({
    outputFiles: [{ path: 'bin/out', digest: wire(outD, out.length) }],
    outputDirectories: [{ path: 'bin/dir', treeDigest: wire(treeD, tree.length) }],
    stdoutDigest: wire(stdoutD, stdout.length),
    exitCode: 0,
  });
  const action = hexOf(sha256(`action ${name}`));
  assert.equal(await put(`${base}/ac/${action}`, result), 200);
  return { action, named: [outD, listedD, stdoutD, treeD, sha256(result)] };
}

describe('gc follows Bazel action results', () => {
  it('hoard gc keeps every blob an action result names and removes only unreferenced CAS blobs', async () => {
    const srv = await startCacheServer();
    const base = `${srv.url}/bazel`;
    try {
      const { action, named } = await storeAction(base, 'one');
      const stray = randomBytes(KiB);
      assert.equal(await put(`${base}/cas/${hexOf(sha256(stray))}`, stray), 200);
      // The library call without the feature's references is the old behaviour: the outputs go.
      const without = await collectGarbage(srv.dataDir, { graceMs: 0, dryRun: true });
      const wouldGo = new Set(without.removed.map((r) => r.digest));
      for (const d of named.slice(0, 4))
        assert.ok(wouldGo.has(d), 'outputs unreferenced without entryReferences');

      const gc = await hoard(['gc', '--data', srv.dataDir, '--grace', '0', '--json']);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(gc.json?.removed, [sha256(stray)]);
      for (const d of named) assert.ok(await onDisk(srv.dataDir, d), `${d} kept`);
      assert.equal(await onDisk(srv.dataDir, sha256(stray)), false);
      // Still a hit: the integrity check finds every output.
      const hit = await fetch(`${base}/ac/${action}`);
      await hit.arrayBuffer();
      assert.equal(hit.status, 200);
    } finally {
      await srv.close();
    }
  });

  it('an action entry whose content does not decode: gc goes on and keeps the record and its blob', async () => {
    const srv = await startCacheServer();
    const base = `${srv.url}/bazel`;
    try {
      const { named } = await storeAction(base, 'good');
      // A record claiming to be an action result over bytes that are not one (written behind the API).
      const blobs = await FsBlobStore.open(srv.dataDir);
      const refs = await FsRefStore.open(srv.dataDir);
      const junk = Buffer.from([0x0f, 0x0f, 0x0f, 0x0f]); // field 1, wire type 7: no such type
      await blobs.write(sha256(junk), Readable.from([junk]));
      const rec = encodeEntry({ blob: sha256(junk), size: junk.length, meta: { format: 'action-result' } });
      await blobs.write(rec.digest, Readable.from([rec.bytes]));
      await refs.set(`cache/bazel/_/ac/${hexOf(sha256('junk'))}`, rec.digest, null);
      const report = await collectGarbage(srv.dataDir, {
        graceMs: 0,
        entryReferences: [actionResultReferences],
      });
      assert.deepEqual(report.removed, []);
      for (const d of [...named, sha256(junk), rec.digest]) assert.ok(await onDisk(srv.dataDir, d));
    } finally {
      await srv.close();
    }
  });

  it('the authoritative disk bound never evicts what an action result names', async () => {
    const max = 200 * KiB;
    const srv = await startCacheServer({ maxDisk: max, gcGrace: 0, maxMemory: 1 });
    const base = `${srv.url}/bazel`;
    try {
      const { action, named } = await storeAction(base, 'bound', 40 * KiB);
      // Unreferenced CAS uploads fill the disk: eviction must take them, not the outputs.
      for (let i = 0; i < 6; i++) {
        const b = randomBytes(30 * KiB);
        assert.equal(await put(`${base}/cas/${hexOf(sha256(b))}`, b), 200);
      }
      for (const d of named) assert.ok(await onDisk(srv.dataDir, d), `${d} kept`);
      const hit = await fetch(`${base}/ac/${action}`);
      await hit.arrayBuffer();
      assert.equal(hit.status, 200);
    } finally {
      await srv.close();
    }
  });
});
