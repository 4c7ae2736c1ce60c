// Batched blob writes (fs-blob-batch.ts) under SIGKILL: a push to a file://
// remote killed while its blobs are being written, or after they are all
// stored but before the ref's compare-and-set, leaves the ref where it was,
// every blob in the store whole (each file hashes to its name), and the next
// push completes. A real child process (test/support/children/batched-push.ts)
// stops at the chosen point and is killed there.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { openRemote } from '../../src/remote/remote.ts';
import { fsck } from '../../src/store/fsck.ts';
import { pull } from '../../src/sync/pull.ts';
import { push } from '../../src/sync/push.ts';
import { describeDir, ROOT, tempDir, writeFiles } from './helpers.ts';

const CHILD = join(ROOT, 'test', 'support', 'children', 'batched-push.ts');

/** Runs the child until it prints `label`, then SIGKILLs it; fails if it exits first. */
async function killAt(args: string[], label: string): Promise<void> {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const reached = await new Promise<boolean>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.split('\n').includes(label)) resolve(true);
    });
    child.once('exit', () => resolve(false));
  });
  assert.ok(reached, `the child exited before "${label}": ${out} ${err}`);
  child.kill('SIGKILL');
  await exited;
}

describe('batched push to file:// killed with SIGKILL', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    work = await tempDir('hoard-batch-crash-');
  });
  after(() => work.cleanup());

  // per-file: an fsync per blob before its link (a server's batches); syncfs:
  // syncfs rounds before the links (the CLI's push, FsBlobStoreOptions.syncFilesystem).
  for (const [point, durability] of [
    ['mid-batch', 'per-file'],
    ['before-ref', 'per-file'],
    ['mid-batch', 'syncfs'],
    ['before-ref', 'syncfs'],
  ]) {
    it(`killed ${point} (${durability}): the old ref stays, no torn blob, and the next push completes`, async () => {
      const store = join(work.dir, `remote-${point}-${durability}`);
      const url = pathToFileURL(store).href;
      const dir = join(work.dir, `src-${point}-${durability}`);
      await writeFiles(dir, { 'v1.txt': 'version one' });
      const remote = await openRemote(url, { create: true });
      const v1 = await push({ dir, remote, ref: 'crash/r' });
      const before = await remote.refs.get('crash/r');

      // Version 2: 1,000 new files (the batch has work in flight at the kill).
      const files: Record<string, string> = {};
      for (let i = 0; i < 1000; i++) files[`n/f${String(i).padStart(4, '0')}`] = `${point} ${i} `.repeat(500);
      await writeFiles(dir, files);
      await killAt([url, dir, 'crash/r', point, durability], point);

      assert.deepEqual(await remote.refs.get('crash/r'), before);
      assert.equal(before?.target, v1.snapshot);
      // Every blob file hashes to its name; the dead child's temp files are the only leftovers.
      const report = await fsck(store);
      assert.equal(report.contentChecked, true);
      assert.deepEqual(report.corrupt, []);
      assert.equal(report.clean, true);

      const again = await push({ dir, remote: await openRemote(url, { create: true }), ref: 'crash/r' });
      assert.equal(again.upToDate, false);
      assert.equal(again.filesTotal, 1001);
      assert.deepEqual(await readdir(join(store, 'tmp')), []);
      const out = join(work.dir, `out-${point}-${durability}`);
      await pull({ dir: out, remote, ref: 'crash/r' });
      assert.deepEqual(await describeDir(out), await describeDir(dir));
    });
  }
});
