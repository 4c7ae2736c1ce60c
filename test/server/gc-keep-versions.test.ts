// gc keeps history when asked: `hoard gc --keep-versions N` (and the server's
// --gc-keep-versions for the disk bound) keeps each synced ref's current
// version and the N-1 before it, with their trees and files, so `log`,
// `cat`/`pull --at R~k` keep working that far back; older versions and their
// files are collected. The default (1) keeps the current version only.

import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hoard, tempDir, writeFiles } from '../sync/helpers.ts';

/** A file:// store with four versions of t/main; version k (1-based) holds `v` = `version k`. */
async function pushFourVersions(dir: string, store: string): Promise<void> {
  for (let k = 1; k <= 4; k++) {
    await writeFiles(dir, { v: `version ${k}\n`, [`only-${k}`]: `file of version ${k}\n` });
    const r = await hoard(['push', dir, store, '--ref', 't/main', '--message', `v${k}`]);
    assert.equal(r.code, 0, r.stderr);
  }
}

const cat = (store: string, version: string) => hoard(['cat', store, `${version}:v`]);

describe('hoard gc --keep-versions', () => {
  let fixture: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    fixture = await tempDir('hoard-gc-keep-');
    await pushFourVersions(join(fixture.dir, 'd'), join(fixture.dir, 'store'));
  });
  after(() => fixture.cleanup());
  /** A copy of the fixture store for one test (gc changes it). */
  const fourVersions = async () => {
    const t = await tempDir('hoard-gc-keep-copy-');
    const store = join(t.dir, 'store');
    await cp(join(fixture.dir, 'store'), store, { recursive: true });
    return { ...t, store };
  };
  it('keeps the current version and the N-1 before it; older versions are collected', async () => {
    const t = await fourVersions();
    try {
      const gc = await hoard(['gc', '--data', t.store, '--grace', '0', '--keep-versions', '2', '--json']);
      assert.equal(gc.code, 0, gc.stderr);
      assert.equal((await cat(t.store, 't/main')).stdout, 'version 4\n');
      assert.equal((await cat(t.store, 't/main~1')).stdout, 'version 3\n');
      const gone = await cat(t.store, 't/main~2');
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /HOARD_EBLOB_NOT_FOUND/);
      // The history stops where gc cut it.
      const log = await hoard(['log', t.store, '--ref', 't/main', '--json']);
      const messages = (log.json as { entries: { message: string }[] }).entries.map((e) => e.message);
      assert.deepEqual(messages.slice(0, 2), ['v4', 'v3']);
      assert.ok(!messages.includes('v1'));
    } finally {
      await t.cleanup();
    }
  });

  it('the default keeps the current version only', async () => {
    const t = await fourVersions();
    try {
      const gc = await hoard(['gc', '--data', t.store, '--grace', '0', '--json']);
      assert.equal(gc.code, 0, gc.stderr);
      assert.equal((await cat(t.store, 't/main')).stdout, 'version 4\n');
      assert.notEqual((await cat(t.store, 't/main~1')).code, 0);
    } finally {
      await t.cleanup();
    }
  });

  it('refuses a bad --keep-versions before touching the store', async () => {
    const t = await fourVersions();
    try {
      for (const bad of ['0', 'two', '100000']) {
        const r = await hoard(['gc', '--data', t.store, '--grace', '0', '--keep-versions', bad]);
        assert.equal(r.code, 1, `${bad}: ${r.stderr}`);
        assert.match(r.stderr, /keep-versions/);
      }
      assert.equal((await cat(t.store, 't/main~3')).stdout, 'version 1\n');
    } finally {
      await t.cleanup();
    }
  });
});
