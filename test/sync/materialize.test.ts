// materialize() guards at the moment of writing, not only in its pre-flight:
// a folder swapped for a symlink after the pre-flight still stops the write.

import assert from 'node:assert/strict';
import { renameSync, symlinkSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { sha256 } from '../../src/core/digest.ts';
import { normalizeTree } from '../../src/core/tree.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { materialize } from '../../src/sync/materialize.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { noProgress } from '../../src/sync/transfer.ts';
import { tempDir, writeFiles } from './helpers.ts';

describe('materialize', () => {
  it('refuses to write through a folder swapped for a symlink after the pre-flight', async () => {
    const work = await tempDir();
    const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
    try {
      const root = join(work.dir, 'root');
      const outside = join(work.dir, 'outside');
      await mkdir(outside);
      await writeFiles(root, { 'sub/old.txt': 'old' });
      const content = Buffer.from('new content');
      const digest = sha256(content);
      await remote.blobs.write(digest, Readable.from([content]));
      const old = { path: 'sub/old.txt', kind: 'file' as const, size: 3, digest: sha256('old') };
      await assert.rejects(
        materialize({
          root,
          current: normalizeTree([old]),
          target: normalizeTree([old, { path: 'sub/new.txt', kind: 'file', size: content.length, digest }]),
          localByDigest: new Map(),
          remote,
          ref: 'test/materialize',
          cache: await StatCache.load(root),
          progress: {
            ...noProgress,
            // Called after the pre-flight, right before the files are written;
            // the swap is synchronous so it lands strictly before the first write.
            start() {
              renameSync(join(root, 'sub'), join(root, 'sub-moved'));
              symlinkSync(outside, join(root, 'sub'));
            },
          },
        }),
        { code: 'HOARD_EPATH_INVALID' },
      );
      assert.deepEqual(await readdir(outside), []);
    } finally {
      await remote.close();
      await work.cleanup();
    }
  });

  it("refuses a target path with hoard's state folder or a temp name anywhere in it, and only those", async () => {
    const work = await tempDir();
    const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
    try {
      const content = Buffer.from('x');
      const digest = sha256(content);
      await remote.blobs.write(digest, Readable.from([content]));
      let n = 0;
      const run = async (path: string) => {
        const root = join(work.dir, `root-${n++}`);
        await mkdir(root);
        return materialize({
          root,
          current: normalizeTree([]),
          target: normalizeTree([{ path, kind: 'file', size: 1, digest }]),
          localByDigest: new Map(),
          remote,
          ref: 'test/materialize',
          cache: await StatCache.load(work.dir),
          progress: noProgress,
        });
      };
      for (const bad of [
        '.hoard',
        '.hoard/x',
        'a/.hoard',
        'a/.hoard/x',
        'a/b/.hoard/c/d',
        'a/.hoard-1-2.tmp',
      ])
        await assert.rejects(run(bad), { code: 'HOARD_EPATH_INVALID' }, bad);
      for (const fine of ['a.hoard', '.hoardx/y', 'a/x.hoard/b', 'a/.hoard-1-2.tmp.txt', 'x.hoard'])
        assert.equal((await run(fine)).filesWritten, 1, fine);
    } finally {
      await remote.close();
      await work.cleanup();
    }
  });
});
