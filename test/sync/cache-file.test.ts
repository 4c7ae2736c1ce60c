// The `hoard cache` suite against a file:// remote, plus what needs the
// store's files: an entry whose blob the store lost.

import assert from 'node:assert/strict';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { hexOf, sha256 } from '../../src/core/digest.ts';
import { cacheSuite, run } from './cache-suite.ts';
import { tempDir, writeFiles } from './helpers.ts';

cacheSuite('file://', async () => {
  const { dir, cleanup } = await tempDir('hoard-cache-remote-');
  return { url: pathToFileURL(dir).href, cleanup };
});

describe('hoard cache against file:// (store internals)', () => {
  it('an entry whose blob the store lost fails with the entry named and the fix', async () => {
    const store = await tempDir('hoard-cache-remote-');
    const work = await tempDir('hoard-cache-');
    try {
      const url = pathToFileURL(store.dir).href;
      const from = join(work.dir, 'a');
      await writeFiles(from, { 'src/keep.txt': 'kept', 'src/lost.txt': 'this blob goes missing' });
      assert.equal(
        (await run(from, ['cache', 'save', 'k', 'src', '--remote', url, '--json'])).json.saved,
        true,
      );
      const hex = hexOf(sha256('this blob goes missing'));
      await unlink(join(store.dir, 'blobs', 'sha256', hex.slice(0, 2), hex));
      const to = join(work.dir, 'b');
      await mkdir(to);
      const r = await run(to, ['cache', 'restore', 'k', 'src', '--remote', url, '--json']);
      assert.equal(r.code, 1);
      const err = r.json.error as { code: string; message: string; hint: string };
      assert.equal(err.code, 'HOARD_EBLOB_NOT_FOUND');
      assert.match(err.message, /cache entry cache\/hoard\/default\/key=k\/.* is incomplete/);
      assert.match(err.hint, /hoard cache delete "k"/);
    } finally {
      await work.cleanup();
      await store.cleanup();
    }
  });
});
