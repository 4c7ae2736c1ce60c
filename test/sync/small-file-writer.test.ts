// SmallFileWriter's two ways of landing a file: in place (a folder this
// materialize created, no fsync) and temp + rename (everywhere else). In
// place must never follow or overwrite anything someone put at the name,
// must leave nothing partial behind on a failed write, and must record the
// file's real stat (so the next scan re-reads nothing).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { sha256 } from '../../src/core/digest.ts';
import { type FileEntry, normalizeTree } from '../../src/core/tree.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { FolderGuard } from '../../src/sync/local-folders.ts';
import { materialize } from '../../src/sync/materialize.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import { SmallFileWriter, type WrittenFile } from '../../src/sync/small-file-writer.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { statKeyOf } from '../../src/sync/stat-key.ts';
import { noProgress } from '../../src/sync/transfer.ts';
import { fillUp, mountTmpfs, type Tmpfs } from '../support/tmpfs.ts';
import { tempDir } from './helpers.ts';

function entry(path: string, bytes: Buffer, kind: 'file' | 'exec' = 'file'): FileEntry {
  return { path, kind, size: bytes.length, digest: sha256(bytes) };
}

function writerFor(root: string, opts: { fsync?: boolean; inPlace?: boolean } = {}) {
  const folders = new FolderGuard(root);
  const written: WrittenFile[] = [];
  const writer = new SmallFileWriter({
    root,
    folders,
    fsync: opts.fsync ?? false,
    inPlace: opts.inPlace ?? true,
    written,
    diskFull: (path, cause) => Object.assign(new Error(`disk full at ${path}`), { code: 'TEST_FULL', cause }),
  });
  return { folders, written, writer };
}

/** Names in a folder that look like hoard temp files. */
const temps = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.hoard-'));

describe('SmallFileWriter', () => {
  it('creates files in place in a folder it made, with their real stat recorded', async () => {
    const work = await tempDir();
    try {
      const bytes = Buffer.from('in place\n');
      const exec = Buffer.from('#!/bin/sh\n');
      const { written, writer } = writerFor(work.dir);
      await writer.write([entry('new/a.txt', bytes), entry('new/deeper/b.txt', bytes)], bytes);
      await writer.write([entry('new/run.sh', exec, 'exec')], exec);
      assert.equal(writer.filesInPlace, 3);
      assert.equal(await readFile(join(work.dir, 'new/deeper/b.txt'), 'utf8'), 'in place\n');
      assert.ok((lstatSync(join(work.dir, 'new/run.sh')).mode & 0o100) !== 0, 'exec bit set at creation');
      for (const w of written) {
        const st = lstatSync(join(work.dir, w.entry.path), { bigint: true });
        assert.deepEqual(w.key, statKeyOf(st), `${w.entry.path}: the recorded stat is the file's`);
      }
      assert.deepEqual(temps(join(work.dir, 'new')), []);
    } finally {
      await work.cleanup();
    }
  });

  it('never follows or overwrites a symlink planted at the name in a folder it made', async () => {
    const work = await tempDir();
    try {
      const root = join(work.dir, 'root');
      const outside = join(work.dir, 'outside.txt');
      await mkdir(root);
      await writeFile(outside, 'untouched');
      const bytes = Buffer.from('restored');
      const { folders, writer } = writerFor(root);
      const parent = folders.ensureParents('made/x.txt');
      assert.ok(folders.created(parent));
      // Someone else puts a symlink at the final name after our mkdir.
      await symlink(outside, join(root, 'made/x.txt'));
      await writer.write([entry('made/x.txt', bytes)], bytes);
      assert.equal(writer.filesInPlace, 0, 'the taken name went the temp-and-rename way');
      assert.equal(await readFile(outside, 'utf8'), 'untouched');
      assert.ok(lstatSync(join(root, 'made/x.txt')).isFile(), 'the symlink was replaced, not followed');
      assert.equal(await readFile(join(root, 'made/x.txt'), 'utf8'), 'restored');
      assert.deepEqual(temps(join(root, 'made')), []);
    } finally {
      await work.cleanup();
    }
  });

  it('FolderGuard: in a folder it made, a name someone else took since is looked at, never trusted', async () => {
    const work = await tempDir();
    try {
      const outside = join(work.dir, 'outside');
      await mkdir(outside);
      const root = join(work.dir, 'root');
      await mkdir(root);
      const folders = new FolderGuard(root);
      assert.ok(folders.created(folders.ensureParents('made/x')));
      // Planted after our mkdir: a symlink and a real folder under names we are about to create.
      await symlink(outside, join(root, 'made/link'));
      await mkdir(join(root, 'made/theirs'));
      assert.throws(() => folders.ensureParents('made/link/y'), { code: 'HOARD_EPATH_INVALID' });
      assert.throws(() => folders.ensureParents('made/link/y', true), { code: 'HOARD_EPATH_INVALID' });
      assert.deepEqual(readdirSync(outside), []);
      const theirs = folders.ensureParents('made/theirs/z', true);
      assert.equal(
        folders.created(theirs),
        false,
        'a folder someone else made is not ours to write in place',
      );
      assert.ok(folders.created(folders.ensureParents('made/ours/deeper/z', true)));
    } finally {
      await work.cleanup();
    }
  });

  it('uses temp + rename in a folder that existed, and always with fsync on (stat taken after the rename)', async () => {
    const work = await tempDir();
    try {
      const bytes = Buffer.from('x');
      await mkdir(join(work.dir, 'old'));
      const existing = writerFor(work.dir);
      await existing.writer.write([entry('old/a', bytes), entry('top', bytes)], bytes);
      assert.equal(existing.writer.filesInPlace, 0);
      assert.ok(existing.written.every((w) => w.key === undefined));

      const durable = writerFor(join(work.dir, 'old'), { fsync: true });
      await durable.writer.write([entry('made/b', bytes)], bytes);
      for (const r of await durable.writer.settle()) assert.equal(r.status, 'fulfilled');
      assert.equal(durable.writer.filesInPlace, 0);
      assert.equal(await readFile(join(work.dir, 'old/made/b'), 'utf8'), 'x');
      // Fsynced temps are stat-ed through their descriptor after the rename (which changes the ctime).
      assert.deepEqual(
        durable.written[0].key,
        statKeyOf(lstatSync(join(work.dir, 'old/made/b'), { bigint: true })),
      );
      assert.deepEqual(temps(join(work.dir, 'old/made')), []);
    } finally {
      await work.cleanup();
    }
  });

  describe('on a full disk', () => {
    let fs!: Tmpfs;
    before(async () => {
      fs = await mountTmpfs('1m');
    });
    after(() => fs?.unmount());

    it('a failed in-place write leaves no partial file under the final name', async () => {
      const root = join(fs.dir, 'root');
      await mkdir(root);
      await fillUp(join(fs.dir, 'filler'));
      const bytes = randomBytes(200 * 1024);
      const { writer, written } = writerFor(root);
      await assert.rejects(writer.write([entry('made/big.bin', bytes)], bytes), { code: 'TEST_FULL' });
      assert.deepEqual(readdirSync(join(root, 'made')), []);
      assert.deepEqual(written, []);
    });
  });
});

describe('a restore written in place', () => {
  it('leaves a stat cache the next scan trusts: nothing is re-read', async () => {
    const work = await tempDir();
    const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
    // Only files older than the racy window are trusted; this test's files are milliseconds old.
    // -1, not 0: the observation time is Date.now() (whole ms, floored), so a file changed in
    // that same millisecond would still count as racy with a zero window (a flaky re-hash).
    const defaults = DEFAULTS as { syncRacyWindowMs: number };
    const racy = defaults.syncRacyWindowMs;
    defaults.syncRacyWindowMs = -1;
    try {
      const root = join(work.dir, 'root');
      await mkdir(root);
      const entries: FileEntry[] = [];
      for (let i = 0; i < 40; i++) {
        const bytes = Buffer.from(`file ${i}\n`);
        await remote.blobs.write(sha256(bytes), Readable.from([bytes]));
        entries.push(entry(`pkg${i % 4}/lib/f${i}.js`, bytes, i % 7 === 0 ? 'exec' : 'file'));
      }
      const cache = await StatCache.load(root);
      const r = await materialize({
        root,
        current: normalizeTree([]),
        target: normalizeTree(entries),
        localByDigest: new Map(),
        remote,
        ref: 'test/in-place',
        cache,
        progress: noProgress,
        fsync: false,
      });
      assert.equal(r.filesWritten, 40);
      await cache.save();
      const scan = await scanDirectory(root, await StatCache.load(root));
      assert.equal(scan.filesHashed, 0, 'every file trusted from the stat recorded at its write');
      assert.deepEqual(scan.tree.entries, normalizeTree(entries).entries);
    } finally {
      defaults.syncRacyWindowMs = racy;
      await remote.close();
      await work.cleanup();
    }
  });
});
