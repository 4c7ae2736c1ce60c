// The sync suite against a file:// remote (a filesystem store), plus the
// checks that need to reach into the store's files (corrupting a blob).

import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { hexOf } from '../../src/core/digest.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { push } from '../../src/sync/push.ts';
import { describeDir, hoard, tempDir, writeFiles } from './helpers.ts';
import { syncSuite } from './sync-suite.ts';

syncSuite('file://', async () => {
  const { dir, cleanup } = await tempDir('hoard-remote-');
  return { url: pathToFileURL(dir).href, cleanup };
});

describe('sync against file:// (store internals)', () => {
  it('discards and reports a download whose bytes do not match its digest', async () => {
    const store = await tempDir('hoard-remote-');
    const work = await tempDir();
    const url = pathToFileURL(store.dir).href;
    const remote = await openRemote(url, { create: true });
    try {
      const a = join(work.dir, 'a');
      await writeFiles(a, { 'good.txt': 'good', 'bad.txt': 'original bytes' });
      const res = await push({ dir: a, remote, ref: 'corrupt' });
      const clean = await hoard(['fsck', '--data', store.dir, '--json']);
      assert.equal(clean.code, 0, clean.stderr);
      const tree = await remote.blobs.read(res.tree);
      let text = '';
      for await (const c of tree) text += c;
      const badDigest = text
        .split('\n')
        .find((l) => l.includes('bad.txt'))!
        .match(/sha256:[0-9a-f]{64}/)![0];
      const hex = hexOf(badDigest as `sha256:${string}`);
      await writeFile(join(store.dir, 'blobs', 'sha256', hex.slice(0, 2), hex), 'tampered bytes');
      const d = join(work.dir, 'd');
      const out = await hoard(['pull', url, d, '--ref', 'corrupt', '--json']);
      assert.equal(out.code, 1, out.stderr);
      assert.match(out.stderr, /corrupt|does not match/);
      const files = await describeDir(d);
      assert.equal(files['bad.txt'], undefined);
      assert.deepEqual(
        (await readdir(d)).filter((n) => n.endsWith('.tmp')),
        [],
      );
      // fsck on the remote sees the damage too (same layout as the store).
      const fsck = await hoard(['fsck', '--data', store.dir, '--json']);
      assert.equal(fsck.code, 1);
    } finally {
      await remote.close();
      await work.cleanup();
      await store.cleanup();
    }
  });
});
