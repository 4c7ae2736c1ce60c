// materialize() with its small files written by a worker thread (a big
// cache restore): the same files, the same stat cache, and the worker's
// failures are the restore's — a folder swapped for a symlink stops it with
// nothing written outside, a full disk is HOARD_ENO_SPACE with nothing
// partial left.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { sha256 } from '../../src/core/digest.ts';
import { type FileEntry, normalizeTree } from '../../src/core/tree.ts';
import { openRemote, type Remote } from '../../src/remote/remote.ts';
import { materialize } from '../../src/sync/materialize.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import type { WrittenFile } from '../../src/sync/small-file-writer.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { ThreadedFileWriter } from '../../src/sync/threaded-writer.ts';
import { noProgress, type ProgressSink } from '../../src/sync/transfer.ts';
import { fillUp, mountTmpfs, type Tmpfs } from '../support/tmpfs.ts';
import { tempDir } from './helpers.ts';

async function put(remote: Remote, bytes: Buffer): Promise<FileEntry> {
  const digest = sha256(bytes);
  await remote.blobs.write(digest, Readable.from([bytes]));
  return { path: '', kind: 'file', size: bytes.length, digest };
}

function restore(remote: Remote, root: string, entries: FileEntry[], progress: ProgressSink = noProgress) {
  return StatCache.load(root).then((cache) =>
    materialize({
      root,
      current: normalizeTree([]),
      target: normalizeTree(entries),
      localByDigest: new Map(),
      remote,
      ref: 'test/threaded',
      cache,
      progress,
      fsync: false,
      writerThread: true,
    }).then((r) => ({ r, cache })),
  );
}

describe('materialize with a writer thread', () => {
  it('writes every file (shared blobs, exec bits, many folders) and a stat cache the next scan trusts', async () => {
    const work = await tempDir();
    const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
    const defaults = DEFAULTS as { syncRacyWindowMs: number };
    const racy = defaults.syncRacyWindowMs;
    defaults.syncRacyWindowMs = 0; // files milliseconds old are trusted (see small-file-writer.test.ts)
    try {
      const root = join(work.dir, 'root');
      await mkdir(root);
      const shared = await put(remote, Buffer.from('same in many places\n'));
      const entries: FileEntry[] = [];
      for (let i = 0; i < 700; i++) {
        const blob = i % 10 === 0 ? shared : await put(remote, randomBytes(1 + (i % 50) * 300));
        entries.push({
          ...blob,
          path: `p${i % 37}/lib/sub${i % 3}/f${i}.js`,
          kind: i % 9 === 0 ? 'exec' : 'file',
        });
      }
      const { r, cache } = await restore(remote, root, entries);
      assert.equal(r.filesWritten, 700);
      await cache.save();
      const scan = await scanDirectory(root, await StatCache.load(root));
      assert.equal(scan.filesHashed, 0);
      assert.deepEqual(scan.tree.entries, normalizeTree(entries).entries);
    } finally {
      defaults.syncRacyWindowMs = racy;
      await remote.close();
      await work.cleanup();
    }
  });

  it('several downloads writing at once across batch boundaries: every file whole', async () => {
    const work = await tempDir();
    try {
      const written: WrittenFile[] = [];
      const writer = new ThreadedFileWriter({
        root: work.dir,
        written,
        diskFull: (path) => new Error(`full at ${path}`),
        // Small batches, one in flight: writers keep waiting for room while others start new batches.
        limits: { bytes: 128 * 1024, files: 1000, inFlight: 1 },
      });
      const expected = new Map<string, Buffer>();
      try {
        // Four writers, as four batched downloads are: sizes chosen so batches
        // fill mid-file and writers wait for room while others start new ones.
        await Promise.all(
          [0, 1, 2, 3].map(async (w) => {
            for (let i = 0; i < 60; i++) {
              const bytes = randomBytes(20_000 + ((i * 7919 + w * 104_729) % 100_000));
              const path = `w${w}/d${i % 5}/f${i}`;
              expected.set(path, bytes);
              await writer.write([{ path, kind: 'file', size: bytes.length, digest: sha256(bytes) }], bytes);
            }
          }),
        );
        await writer.finish();
      } finally {
        await writer.close();
      }
      assert.equal(written.length, expected.size);
      for (const [path, bytes] of expected)
        assert.ok((await readFile(join(work.dir, path))).equals(bytes), path);
    } finally {
      await work.cleanup();
    }
  });

  it('a corrupt blob fails the restore while the thread writes: every file left is whole, no temp left', async () => {
    const work = await tempDir();
    const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
    try {
      const root = join(work.dir, 'root');
      await mkdir(root);
      const entries: FileEntry[] = [];
      for (let i = 0; i < 1500; i++)
        entries.push({
          ...(await put(remote, randomBytes(2000 + (i % 13) * 1000))),
          path: `d${i % 50}/f${i}`,
        });
      // One blob late in the order is corrupt in the remote (same size, other bytes).
      const bad = entries[1400];
      const hex = bad.digest.slice('sha256:'.length);
      await writeFile(
        join(work.dir, 'remote', 'blobs', 'sha256', hex.slice(0, 2), hex),
        randomBytes(bad.size),
      );
      await assert.rejects(restore(remote, root, entries), { code: 'HOARD_EDIGEST_MISMATCH' });
      let whole = 0;
      for (const e of entries) {
        const bytes = await readFile(join(root, e.path)).catch(() => undefined);
        if (!bytes) continue;
        assert.equal(sha256(bytes), e.digest, `${e.path} is whole or absent`);
        whole++;
      }
      assert.ok(whole < entries.length);
      for (let d = 0; d < 50; d++) {
        const names = existsSync(join(root, `d${d}`)) ? readdirSync(join(root, `d${d}`)) : [];
        assert.deepEqual(
          names.filter((n) => n.startsWith('.hoard-')),
          [],
          `no temp file in d${d}`,
        );
      }
    } finally {
      await remote.close();
      await work.cleanup();
    }
  });

  it('a folder swapped for a symlink before the writes stops the restore; nothing lands outside', async () => {
    const work = await tempDir();
    const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
    try {
      const root = join(work.dir, 'root');
      const outside = join(work.dir, 'outside');
      await mkdir(join(root, 'sub'), { recursive: true });
      await mkdir(outside);
      const entries: FileEntry[] = [];
      for (let i = 0; i < 20; i++)
        entries.push({ ...(await put(remote, Buffer.from(`f${i}`))), path: `sub/deep/f${i}` });
      await assert.rejects(
        restore(remote, root, entries, {
          ...noProgress,
          // After the pre-flight, before any file: the swap is synchronous.
          start() {
            renameSync(join(root, 'sub'), join(root, 'sub-moved'));
            symlinkSync(outside, join(root, 'sub'));
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

  describe('on a full disk', () => {
    let fs!: Tmpfs;
    before(async () => {
      fs = await mountTmpfs('2m');
    });
    after(() => fs?.unmount());

    it('HOARD_ENO_SPACE, and no partial file under a final name', async () => {
      const work = await tempDir();
      const remote = await openRemote(pathToFileURL(join(work.dir, 'remote')).href, { create: true });
      try {
        const root = join(fs.dir, 'root');
        await mkdir(root);
        const entries: FileEntry[] = [];
        for (let i = 0; i < 8; i++)
          entries.push({ ...(await put(remote, randomBytes(200 * 1024))), path: `made/f${i}.bin` });
        await fillUp(join(fs.dir, 'filler'));
        await assert.rejects(restore(remote, root, entries), { code: 'HOARD_ENO_SPACE' });
        // Whatever landed is whole.
        for (const name of readdirSync(join(root, 'made'))) {
          const e = entries.find((x) => x.path === `made/${name}`);
          assert.ok(e, `unexpected ${name}`);
          assert.equal(sha256(await readFile(join(root, 'made', name))), e.digest);
        }
      } finally {
        await remote.close();
        await work.cleanup();
      }
    });
  });
});
