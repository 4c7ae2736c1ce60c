// A full disk (ENOSPC on a small tmpfs) is HOARD_ENO_SPACE from every
// filesystem writer, and leaves nothing behind: no descriptor, no empty lock
// file, no temp file.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { EXIT, exitCodeOf, HoardError, isHoardError } from '../../src/core/errors.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';
import { withLockFile } from '../../src/store/lock-file.ts';
import { fillUp, mountTmpfs, openFds, type Tmpfs } from '../support/tmpfs.ts';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

describe('ENOSPC on a full tmpfs', () => {
  let fs!: Tmpfs;
  before(async () => {
    fs = await mountTmpfs('1m');
  });
  after(() => fs?.unmount());

  const noSpace = (e: unknown) => isHoardError(e, 'HOARD_ENO_SPACE') && exitCodeOf(e) === EXIT.noSpace;

  it('lock file: writing the owner fails → HOARD_ENO_SPACE, no descriptor leaked, no empty lock left', async () => {
    const dir = fs.dir;
    const filler = join(dir, 'filler');
    await fillUp(filler);
    try {
      const lock = join(dir, 'x.lock');
      const before = await openFds();
      let ran = false;
      for (let i = 0; i < 3; i++)
        await assert.rejects(
          withLockFile(
            lock,
            async () => {
              ran = true;
            },
            { timeoutMs: 1000, onTimeout: () => new HoardError('HOARD_ELOCK_TIMEOUT', 'timeout') },
          ),
          noSpace,
        );
      assert.equal(ran, false);
      assert.deepEqual(await openFds(), before);
      await assert.rejects(access(lock), 'no (empty) lock file is left');
    } finally {
      await rm(filler, { force: true });
    }
  });

  it('blob store and ref store: HOARD_ENO_SPACE, no temp files left, and they work again once there is room', async () => {
    const root = join(fs.dir, 'store');
    const blobs = await FsBlobStore.open(root);
    const refs = await FsRefStore.open(root);
    const filler = join(fs.dir, 'filler');
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    // Bigger than the file system: fails mid-stream.
    await assert.rejects(blobs.write(sha256(big), [big], { size: big.length }), noSpace);
    assert.deepEqual(await readdir(blobs.tmpDir), []);
    const small = Buffer.from('hello');
    await blobs.write(sha256(small), [small]);
    await fillUp(filler);
    try {
      const other = Buffer.from('other');
      await assert.rejects(blobs.write(sha256(other), [other]), noSpace);
      await assert.rejects(refs.set('team/main', sha256(small), null), noSpace);
      assert.deepEqual(await readdir(blobs.tmpDir), []);
      assert.equal(await refs.get('team/main'), undefined);
      const refFiles = await readdir(join(root, 'refs', 'team')).catch(() => [] as string[]);
      assert.deepEqual(refFiles, [], 'no lock or temp file under refs/');
    } finally {
      await rm(filler, { force: true });
    }
    const v = await refs.set('team/main', sha256(small), null);
    assert.equal((await refs.get('team/main'))?.version, v.version);
  });

  it('hoard pull into a full local disk: exit 4, HOARD_ENO_SPACE naming the local disk (not a remote error)', async () => {
    const src = await tempDir('hoard-nospace-pull-');
    try {
      await writeFiles(src.dir, { 'data/big.bin': randomBytes(2 * 1024 * 1024), 'a.txt': 'a\n' });
      const url = `file://${join(src.dir, 'remote')}`;
      const pushed = await hoard(['push', join(src.dir, 'data'), url, '--ref', 'r']);
      assert.equal(pushed.code, 0, pushed.stderr);
      const r = await hoard(['pull', url, join(fs.dir, 'out'), '--ref', 'r']);
      assert.equal(r.code, EXIT.noSpace, r.stderr);
      assert.match(r.stderr, /no space left on the local disk .*\[HOARD_ENO_SPACE\]/);
      assert.match(r.stderr, /hint: free space/);
    } finally {
      await src.cleanup();
    }
  });
});
