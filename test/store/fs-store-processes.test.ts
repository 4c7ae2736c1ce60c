// Cross-process behaviour of the filesystem stores: real child processes,
// real SIGKILL.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sha256 } from '../../src/core/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';
import { readAll } from '../support/streams.ts';

const run = promisify(execFile);
const child = (name: string) => fileURLToPath(new URL(`../support/children/${name}`, import.meta.url));
const HOARD = fileURLToPath(new URL('../../bin/hoard.js', import.meta.url));

describe('filesystem stores across processes', () => {
  it('several processes doing read-modify-write on one ref lose no update', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-refproc-'));
    try {
      const procs = 6;
      const rounds = 25;
      const outs = await Promise.all(
        Array.from({ length: procs }, () =>
          run(process.execPath, [child('ref-bumper.ts'), root, 'shared/counter', String(rounds)]),
        ),
      );
      const conflicts = outs.reduce((n, o) => n + JSON.parse(o.stdout).conflicts, 0);
      const refs = await FsRefStore.open(root);
      const blobs = await FsBlobStore.open(root);
      const cur = await refs.get('shared/counter');
      assert.ok(cur);
      assert.equal((await readAll(await blobs.read(cur.target))).toString(), String(procs * rounds));
      // The test only means something if the processes really raced.
      assert.ok(conflicts > 0, 'expected some compare-and-set conflicts between processes');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a writer killed with SIGKILL mid-blob leaves no partial blob, and fsck is clean', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-kill-'));
    try {
      const proc = spawn(process.execPath, [child('blob-writer.ts'), root, '48'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const written: string[] = [];
      let exited = false;
      proc.once('exit', () => {
        exited = true;
      });
      proc.stdout
        .setEncoding('utf8')
        .on('data', (s: string) => written.push(...s.split('\n').filter(Boolean)));
      // Wait until at least one blob is complete and the next is partly written.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const temps = await readdir(join(root, 'tmp')).catch(() => []);
        if (written.length >= 1 && temps.length > 0) break;
        assert.ok(Date.now() < deadline && !exited, 'writer made no progress');
        await sleep(5);
      }
      proc.kill('SIGKILL');
      if (!exited) await new Promise((r) => proc.once('exit', r));
      assert.ok((await readdir(join(root, 'tmp'))).length > 0, 'the kill should have interrupted a write');

      // Every visible blob is complete and verifies; the interrupted one is invisible.
      const { stdout } = await run(process.execPath, [HOARD, 'fsck', '--data', root, '--json']);
      const report = JSON.parse(stdout);
      assert.equal(report.clean, true);
      assert.equal(report.corrupt.length, 0);
      assert.ok(report.blobsChecked >= written.length);
      assert.ok(report.strayTempFiles.length > 0);
      const store = await FsBlobStore.open(root); // opening removes the dead writer's temp files
      assert.deepEqual(await readdir(join(root, 'tmp')), []);
      for await (const info of store.list()) assert.equal(info.size, 48 * 1024 * 1024);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('fsck detects and quarantines a corrupt blob', async () => {
    const root = await mkdtemp(join(tmpdir(), 'hoard-fsck-'));
    try {
      const store = await FsBlobStore.open(root);
      const good = Buffer.from('good');
      const bad = Buffer.from('bad!');
      await store.write(sha256(good), [good]);
      await store.write(sha256(bad), [bad]);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(store.pathOf(sha256(bad)), 'evil');
      await assert.rejects(
        run(process.execPath, [HOARD, 'fsck', '--data', root]),
        (e: { code: number; stderr: string }) => {
          assert.equal(e.code, 1);
          assert.match(e.stderr, new RegExp(`corrupt: ${sha256(bad)}`));
          return true;
        },
      );
      const { stdout } = await run(process.execPath, [HOARD, 'fsck', '--data', root, '--repair', '--json']);
      assert.equal(JSON.parse(stdout).corrupt[0].quarantined, true);
      assert.equal(await store.has(sha256(bad)), false);
      assert.equal(await store.has(sha256(good)), true);
      assert.equal((await readdir(join(root, 'quarantine'))).length, 1);
      const again = await run(process.execPath, [HOARD, 'fsck', '--data', root, '--json']);
      assert.equal(JSON.parse(again.stdout).clean, true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
