import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError, RefConflictError } from '../../src/core/errors.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { FsRefStore } from '../../src/store/fs-ref-store.ts';
import { blobStoreConformance } from './blob-store-conformance.ts';
import { refStoreConformance } from './ref-store-conformance.ts';

async function tempRoot() {
  const root = await mkdtemp(join(tmpdir(), 'hoard-fs-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

blobStoreConformance('filesystem', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsBlobStore.open(root), cleanup };
});

refStoreConformance('filesystem', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsRefStore.open(root), cleanup };
});

// The server's own data directory reads its metadata synchronously (store/sync-metadata.ts).
blobStoreConformance('filesystem, synchronous stat', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsBlobStore.open(root, { syncStat: true }), cleanup };
});

refStoreConformance('filesystem, synchronous reads', async () => {
  const { root, cleanup } = await tempRoot();
  return { store: await FsRefStore.open(root, { syncReads: true }), cleanup };
});

describe('synchronous ref reads', () => {
  it('refuses a ref file far larger than a ref, reads a directory prefix as no ref', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const refs = await FsRefStore.open(root, { syncReads: true });
      await mkdir(join(root, 'refs', 'team', 'app'), { recursive: true });
      assert.equal(await refs.get('team/app'), undefined);
      await writeFile(join(root, 'refs', 'team', 'big'), `{"target":"${'x'.repeat(10_000)}"}`);
      await assert.rejects(refs.get('team/big'), (err) => isHoardError(err, 'HOARD_EREMOTE'));
    } finally {
      await cleanup();
    }
  });
});

describe('synchronous ref reads: decoded copies', () => {
  it('a ref changed or deleted by another writer (another process) is read as it is now', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const reader = await FsRefStore.open(root, { syncReads: true });
      const writer = await FsRefStore.open(root);
      // Back-to-back rewrites of one ref land within one timestamp tick and may reuse
      // inodes: each must still be seen, never the copy decoded from an earlier file.
      let version: string | null = null;
      for (let i = 0; i < 200; i++) {
        // One or two writes between reads: the reader's decoded copy is of a file that is
        // gone, whose inode the next write may be given.
        let v = await writer.set('team/app', sha256(`${i}a`), version);
        if (i % 2) v = await writer.set('team/app', sha256(`${i}b`), v.version);
        version = v.version;
        assert.deepEqual(await reader.get('team/app'), v);
        assert.deepEqual(await reader.get('team/app'), v);
      }
      await writer.delete('team/app', version as string);
      assert.equal(await reader.get('team/app'), undefined);
      // Its own compare-and-set reads the file, not a decoded copy.
      const again = await writer.set('team/app', sha256('x'), null);
      await assert.rejects(reader.set('team/app', sha256('y'), null), RefConflictError);
      await reader.set('team/app', sha256('y'), again.version);
      assert.equal((await writer.get('team/app'))?.target, sha256('y'));
    } finally {
      await cleanup();
    }
  });

  it('a settled ref (decoded copy reused) that another writer replaces or deletes is read again', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      // A clock far ahead: every ref file counts as settled, so decoded copies are kept.
      const reader = await FsRefStore.open(root, { syncReads: true, now: () => Date.now() + 3_600_000 });
      const writer = await FsRefStore.open(root);
      let v = await writer.set('team/app', sha256('0'), null);
      for (let i = 1; i <= 50; i++) {
        assert.deepEqual(await reader.get('team/app'), v);
        assert.deepEqual(await reader.get('team/app'), v);
        // One write between reads: the new file is made while the old one still exists,
        // so its inode differs from the decoded copy's.
        v = await writer.set('team/app', sha256(String(i)), v.version);
      }
      assert.deepEqual(await reader.get('team/app'), v);
      await writer.delete('team/app', v.version);
      assert.equal(await reader.get('team/app'), undefined);
    } finally {
      await cleanup();
    }
  });
});

describe('filesystem ref store locks', () => {
  it('breaks a lock left by a dead process and keeps a live one', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const refs = await FsRefStore.open(root);
      await mkdir(join(root, 'refs', 'team'), { recursive: true });
      // pid 2^22+1 is above Linux's default pid_max: certainly not running.
      await writeFile(join(root, 'refs', 'team', 'app.lock'), `${hostname()} 4194305 deadbeef`);
      const v = await refs.set('team/app', sha256('a'), null);
      assert.equal(v.target, sha256('a'));
      await assert.rejects(access(join(root, 'refs', 'team', 'app.lock')));
    } finally {
      await cleanup();
    }
  });

  it('refuses a ref that clashes with a folder of refs', async () => {
    const { root, cleanup } = await tempRoot();
    try {
      const refs = await FsRefStore.open(root);
      await refs.set('a/b', sha256('1'), null);
      await assert.rejects(
        refs.set('a', sha256('2'), null),
        (e) => isHoardError(e, 'HOARD_EREF_NAME_INVALID') || isHoardError(e, 'HOARD_EREF_CONFLICT'),
      );
      await assert.rejects(refs.set('a/b/c', sha256('2'), null), (e) =>
        isHoardError(e, 'HOARD_EREF_NAME_INVALID'),
      );
    } finally {
      await cleanup();
    }
  });
});
