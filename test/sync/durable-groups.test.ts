// Pull's small files made durable in groups (small-file-writer.ts with
// fsync, file-system-sync.ts): a group of written temps is flushed at once
// (one syncfs) and only then renamed into place; a small group, or a system
// where syncfs cannot run, fsyncs each file instead; many folders are
// flushed by one syncfs too. A stand-in `sync` program records what the
// folder held at the moment of each flush: no file of that group may have its
// final name yet.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sha256 } from '../../src/core/digest.ts';
import type { FileEntry } from '../../src/core/tree.ts';
import { resetSyncFileSystem, syncFileSystem } from '../../src/store/sync-filesystem.ts';
import { syncFolders } from '../../src/sync/file-system-sync.ts';
import { FolderGuard } from '../../src/sync/local-folders.ts';
import { SmallFileWriter, SYNCFS_MIN_FILES, type WrittenFile } from '../../src/sync/small-file-writer.ts';
import { statKeyOf } from '../../src/sync/stat-key.ts';
import { tempDir } from './helpers.ts';

const run = promisify(execFile);

const REAL_SYNC = ['/usr/bin/sync', '/bin/sync'].find((p) => existsSync(p));

/**
 * A `sync` stand-in: logs its arguments and every file name under `root` at
 * the moment it is called, then runs the real one (or fails, `fail`).
 */
function fakeSync(dir: string, root: string, fail = false): { program: string; calls: () => string[][] } {
  const program = join(dir, 'fake-sync');
  const log = join(dir, 'fake-sync.log');
  writeFileSync(log, '');
  writeFileSync(
    program,
    `#!/bin/sh\n{ echo "ARGS $*"; find '${root}' -type f; echo END; } >> '${log}'\n${
      fail ? 'exit 1' : `exec ${REAL_SYNC ?? 'true'} "$@"`
    }\n`,
  );
  chmodSync(program, 0o755);
  const calls = () => {
    const out: string[][] = [];
    let cur: string[] | undefined;
    for (const line of readFileSync(log, 'utf8').split('\n')) {
      if (line.startsWith('ARGS ')) cur = [line];
      else if (line === 'END') {
        if (cur) out.push(cur);
        cur = undefined;
      } else if (cur && line) cur.push(line);
    }
    return out;
  };
  return { program, calls };
}

function entry(path: string, bytes: Buffer): FileEntry {
  return { path, kind: 'file', size: bytes.length, digest: sha256(bytes) };
}

function durableWriter(root: string, groupFiles: number) {
  const written: WrittenFile[] = [];
  const writer = new SmallFileWriter({
    root,
    folders: new FolderGuard(root),
    fsync: true,
    inPlace: true, // ignored with fsync: pull never writes in place
    groupFiles,
    written,
    diskFull: (path) => new Error(`full at ${path}`),
  });
  return { writer, written };
}

const isTemp = (path: string) => path.split('/').pop()!.startsWith('.hoard-');

// No platform skip: every test sets the `sync` program itself (resetSyncFileSystem), so the
// platform check of syncFileSystem is not in the way; the mount test needs Linux and root, as CI has.
describe('durable groups (pull with fsync)', () => {
  afterEach(() => resetSyncFileSystem());

  it('renames a group into place only after one flush of the file system; a small last group is fsynced file by file', async () => {
    const work = await tempDir();
    try {
      const root = join(work.dir, 'root');
      await mkdir(root);
      const fake = fakeSync(work.dir, root);
      resetSyncFileSystem(fake.program);
      const group = SYNCFS_MIN_FILES + 6;
      const { writer, written } = durableWriter(root, group);
      const expected = new Map<string, Buffer>();
      const count = 2 * group + 10; // two full groups, then 10 files (below SYNCFS_MIN_FILES)
      for (let i = 0; i < count; i++) {
        const bytes = randomBytes(100 + (i % 7) * 50);
        const path = `d${i % 4}/sub/f${i}`;
        expected.set(path, bytes);
        await writer.write([entry(path, bytes)], bytes);
      }
      for (const r of await writer.settle()) assert.equal(r.status, 'fulfilled');

      const calls = fake.calls();
      assert.equal(calls.length, 2, 'one flush per full group; none for the small last group');
      const paths = [...expected.keys()];
      for (const [i, call] of calls.entries()) {
        assert.ok(call[0].startsWith(`ARGS -f ${root}/`), call[0]);
        const files = call.slice(1);
        // At its flush, no file of the group has its final name yet (earlier
        // groups may, or may still be flushing: two are in flight at most).
        const finals = new Set(files.filter((f) => !isTemp(f)));
        for (const p of paths.slice(i * group, (i + 1) * group))
          assert.ok(!finals.has(join(root, p)), `flush ${i + 1}: ${p} not in place before it`);
        assert.ok(files.filter(isTemp).length >= group, `flush ${i + 1}: its group written as temps`);
      }
      assert.equal(written.length, count);
      for (const [path, bytes] of expected) assert.ok((await readFile(join(root, path))).equals(bytes), path);
      // Each file's stat taken after its rename: what the next scan sees.
      for (const w of written)
        assert.deepEqual(w.key, statKeyOf(lstatSync(join(root, w.entry.path), { bigint: true })));
      for (let d = 0; d < 4; d++)
        assert.deepEqual(
          readdirSync(join(root, `d${d}/sub`)).filter((n) => n.startsWith('.hoard-')),
          [],
        );
    } finally {
      await work.cleanup();
    }
  });

  it('without a working syncfs each file is fsynced instead: everything still lands, and syncfs is not tried again', async () => {
    const work = await tempDir();
    try {
      const root = join(work.dir, 'root');
      await mkdir(root);
      const fake = fakeSync(work.dir, root, true);
      resetSyncFileSystem(fake.program);
      const { writer, written } = durableWriter(root, SYNCFS_MIN_FILES);
      const n = 3 * SYNCFS_MIN_FILES;
      for (let i = 0; i < n; i++) {
        const bytes = Buffer.from(`file ${i}\n`);
        await writer.write([entry(`f${i}`, bytes)], bytes);
      }
      for (const r of await writer.settle()) assert.equal(r.status, 'fulfilled');
      assert.equal(written.length, n);
      // Tried by the groups already in flight (two at most), then never again.
      assert.ok(fake.calls().length <= 2, `tried ${fake.calls().length} times`);
      assert.equal(await syncFileSystem(root), false);
      for (let i = 0; i < n; i++) assert.equal(await readFile(join(root, `f${i}`), 'utf8'), `file ${i}\n`);
      assert.deepEqual(
        readdirSync(root).filter((x) => x.startsWith('.hoard-')),
        [],
      );
    } finally {
      await work.cleanup();
    }
  });

  it('a group across a mount point inside the folder flushes each file system', async () => {
    const work = await tempDir();
    const root = join(work.dir, 'root');
    const mnt = join(root, 'mnt');
    await mkdir(mnt, { recursive: true });
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    } catch (err) {
      await work.cleanup();
      throw new Error(`this test mounts a tmpfs, which needs root: ${(err as Error).message}`);
    }
    try {
      const fake = fakeSync(work.dir, root);
      resetSyncFileSystem(fake.program);
      const { writer, written } = durableWriter(root, 2 * SYNCFS_MIN_FILES);
      for (let i = 0; i < 2 * SYNCFS_MIN_FILES; i++) {
        const bytes = Buffer.from(`file ${i}\n`);
        await writer.write([entry(`${i % 2 ? 'mnt' : 'disk'}/f${i}`, bytes)], bytes);
      }
      for (const r of await writer.settle()) assert.equal(r.status, 'fulfilled');
      assert.equal(written.length, 2 * SYNCFS_MIN_FILES);
      assert.deepEqual(
        fake
          .calls()
          .map((c) => c[0])
          .sort(),
        [`ARGS -f ${root}/disk`, `ARGS -f ${mnt}`],
      );
    } finally {
      await run('umount', ['-l', mnt]).catch(() => {});
      await work.cleanup();
    }
  });

  it('many folders are flushed by one syncfs, a few by an fsync each', async () => {
    const work = await tempDir();
    try {
      const fake = fakeSync(work.dir, work.dir);
      resetSyncFileSystem(fake.program);
      const dirs = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const d = join(work.dir, `d${i}`);
        await mkdir(d);
        dirs.add(d);
      }
      await syncFolders(new Set([...dirs].slice(0, 3)));
      assert.equal(fake.calls().length, 0);
      await syncFolders(dirs);
      assert.equal(fake.calls().length, 1);
    } finally {
      await work.cleanup();
    }
  });
});
