// A scan of a folder that did not change since the scan that saved its stat
// cache takes the cache's summary (stat-cache.ts, scan.ts): the tree digest
// is the summary's, the tree is made only when asked. These tests prove the
// shortcut is taken when nothing changed, gives exactly the tree a full scan
// gives, and is not taken — the full scan runs and sees the change — after
// any change: a same-size edit within the same second (mtime restored), a
// new empty folder, a mode change, a symlink retargeted, a file removed,
// added or renamed, an ignore rule, a racy entry, a cache of format 2; and
// that a push over an unchanged folder still merges when the remote ref moved.

import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { sha256 } from '../../src/core/digest.ts';
import { decodeTree } from '../../src/core/tree.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { push } from '../../src/sync/push.ts';
import { scanDirectory } from '../../src/sync/scan.ts';
import type { ScanResult } from '../../src/sync/scan-result.ts';
import { StatCache } from '../../src/sync/stat-cache.ts';
import { fetchTree } from '../../src/sync/transfer.ts';
import { tempDir, writeFiles } from './helpers.ts';

const OLD = new Date(Date.now() - 60_000);
/** Scans observed as if after the racy window of files touched just now (a clock, not a sleep). */
const LATER = { now: () => Date.now() + DEFAULTS.syncRacyWindowMs + 1000 };

/** Whether `s` came from the shortcut: its tree is made on first use (a getter), not by the walk. */
const shortcut = (s: ScanResult) => typeof Object.getOwnPropertyDescriptor(s, 'tree')?.get === 'function';

/** A folder with files (one executable), a symlink and an empty folder, aged out of the racy window. */
async function folder(dir: string): Promise<void> {
  const files: Record<string, string> = { 'top.txt': 'top', 'bin/run.sh': '#!/bin/sh\n' };
  for (let i = 0; i < 30; i++) files[`d${i % 4}/f${i}.txt`] = `content ${i}`;
  files['ünï/ok.txt'] = 'non-ASCII path';
  await writeFiles(dir, files);
  await chmod(join(dir, 'bin/run.sh'), 0o755);
  await mkdir(join(dir, 'empty'));
  await symlink('top.txt', join(dir, 'link'));
  for (const p of Object.keys(files)) await utimes(join(dir, p), OLD, OLD);
}

/** Scan with a fresh load of the saved cache, then save it (what a push does). */
async function scanSaved(dir: string, opts = LATER): Promise<ScanResult> {
  const cache = await StatCache.load(dir);
  const s = await scanDirectory(dir, cache, opts);
  await cache.save();
  return s;
}

/** A full scan's result (no cache) for comparison. */
async function fullScan(dir: string): Promise<ScanResult> {
  const cache = await StatCache.load(join(dir, 'no-such-folder'));
  return scanDirectory(dir, cache, LATER);
}

describe('unchanged scan (the stat cache summary)', () => {
  it('a first scan saves its entries in walk order even when large files finish hashing last', async (t) => {
    // Small files are read in walk order, large ones stream beside them and
    // are recorded when done: the save must still be in walk order, or the
    // next scan misses the cursor (and the shortcut) once.
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const files: Record<string, string | Buffer> = {};
    for (let i = 0; i < 12; i++)
      files[`a${i % 3}/f${i}.bin`] =
        i % 4 === 0 ? Buffer.alloc(DEFAULTS.syncSmallFileBytes + 1 + i, i) : `small ${i}`;
    await writeFiles(dir, files);
    for (const p of Object.keys(files)) await utimes(join(dir, p), OLD, OLD);
    const first = await scanSaved(dir);
    assert.equal(first.filesHashed, 12);
    const again = await scanSaved(dir);
    assert.equal(shortcut(again), true);
    assert.equal(again.digest, first.digest);
  });

  it('takes the shortcut when nothing changed, and its tree and bytes are exactly the full scan’s', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    await folder(dir);
    const first = await scanSaved(dir);
    assert.equal(shortcut(first), false);
    const again = await scanSaved(dir);
    assert.equal(shortcut(again), true);
    assert.equal(again.filesHashed, 0);
    assert.equal(again.digest, first.digest);
    assert.deepEqual(again.totals, first.totals);
    assert.deepEqual(again.totals, { files: 33, bytes: first.totals.bytes });
    const full = await fullScan(dir);
    assert.equal(full.digest, first.digest);
    assert.deepEqual(again.tree.entries, full.tree.entries);
    assert.deepEqual(again.bytes, full.bytes);
    assert.equal(sha256(again.bytes), again.digest);
    assert.deepEqual(decodeTree(again.bytes).entries, full.tree.entries);
    assert.equal(again.localByDigest.get(sha256('top')), 'top.txt');
    // Still taken the time after: a shortcut scan leaves the cache as it was.
    const before = await readFile(join(dir, '.hoard', 'stat-cache.bin'));
    const third = await scanSaved(dir);
    assert.equal(shortcut(third), true);
    assert.deepEqual(await readFile(join(dir, '.hoard', 'stat-cache.bin')), before);
  });

  const changes: [string, (dir: string) => Promise<void>][] = [
    [
      'a same-size edit with the mtime restored',
      async (dir) => {
        await writeFile(join(dir, 'd1/f1.txt'), 'CONTENT 1');
        await utimes(join(dir, 'd1/f1.txt'), OLD, OLD);
      },
    ],
    ['a new empty folder', (dir) => mkdir(join(dir, 'new-empty'))],
    ['an empty folder removed', (dir) => rm(join(dir, 'empty'), { recursive: true })],
    ['a file made executable', (dir) => chmod(join(dir, 'top.txt'), 0o755)],
    ['an executable made a plain file', (dir) => chmod(join(dir, 'bin/run.sh'), 0o644)],
    [
      'a symlink retargeted',
      async (dir) => {
        await unlink(join(dir, 'link'));
        await symlink('d0/f0.txt', join(dir, 'link'));
      },
    ],
    ['a symlink removed', (dir) => unlink(join(dir, 'link'))],
    ['a file removed', (dir) => unlink(join(dir, 'd2/f2.txt'))],
    ['a file added', (dir) => writeFile(join(dir, 'd3/new.txt'), 'new')],
    ['a file renamed (same count)', (dir) => rename(join(dir, 'd3/f3.txt'), join(dir, 'd3/f3-renamed.txt'))],
    ['an ignore rule', (dir) => writeFile(join(dir, '.hoardignore'), 'd0/\n')],
    [
      'a file replaced by a folder of the same name',
      async (dir) => {
        await unlink(join(dir, 'top.txt'));
        await mkdir(join(dir, 'top.txt'));
      },
    ],
  ];
  for (const [what, change] of changes) {
    it(`falls back to the full scan after ${what}, and sees it`, async (t) => {
      const { dir, cleanup } = await tempDir();
      t.after(cleanup);
      await folder(dir);
      const before = await scanSaved(dir);
      assert.equal(shortcut(await scanSaved(dir)), true);
      await change(dir);
      const after = await scanSaved(dir);
      assert.equal(shortcut(after), false);
      assert.notEqual(after.digest, before.digest);
      const full = await fullScan(dir);
      assert.equal(after.digest, full.digest);
      assert.deepEqual(after.tree.entries, full.tree.entries);
      // The scan that saw the change recorded the new state: the next one is a shortcut again.
      const next = await scanSaved(dir);
      assert.equal(shortcut(next), true);
      assert.equal(next.digest, full.digest);
    });
  }

  it('a same-size edit within the same second as the saved stat is seen (the entry was racy)', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const when = new Date(Math.floor(Date.now() / 1000) * 1000);
    await writeFiles(dir, { a: 'aaaa', b: 'bbbb' });
    await utimes(join(dir, 'a'), when, when);
    // The real clock: the scan observes `a` within the racy window of its change.
    const first = await scanSaved(dir, { now: Date.now });
    await writeFile(join(dir, 'a'), 'AAAA');
    await utimes(join(dir, 'a'), when, when);
    const second = await scanSaved(dir, { now: Date.now });
    assert.equal(shortcut(second), false);
    assert.notEqual(second.digest, first.digest);
    const e = second.tree.entries.find((x) => x.path === 'a');
    assert.equal(e?.kind === 'file' && e.digest, sha256('AAAA'));
  });

  it('a cache of format 2 is read: its executable entries are corrected without hashing, then the shortcut', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    await folder(dir);
    const first = await scanSaved(dir);
    // The same entries in format 2: no executable bit, no summary.
    const file = join(dir, '.hoard', 'stat-cache.bin');
    const v3 = await readFile(file);
    const count = v3.readUInt32LE(19);
    const parts = [Buffer.from('hoard-stat-cache/2\n', 'latin1'), v3.subarray(19, 23)];
    let pos = 23;
    for (let i = 0; i < count; i++) {
      const len = v3.readUInt16LE(pos);
      const rec = Buffer.from(v3.subarray(pos, pos + 2 + len + 65));
      rec[2 + len] &= 1; // racy bit only
      parts.push(rec);
      pos += 2 + len + 65;
    }
    const body = Buffer.concat(parts);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32(body));
    await writeFile(file, Buffer.concat([body, crc]));
    const loaded = await StatCache.load(dir);
    assert.equal(loaded.size, count);
    assert.equal(loaded.summary, undefined);
    const s = await scanSaved(dir);
    assert.equal(shortcut(s), false);
    assert.equal(s.filesHashed, 0);
    assert.equal(s.digest, first.digest);
    const again = await scanSaved(dir);
    assert.equal(shortcut(again), true);
    assert.equal(again.digest, first.digest);
    assert.equal(again.tree.entries.find((e) => e.path === 'bin/run.sh')?.kind, 'exec');
  });

  it('a cache changed after the scan (a pull writing files) drops the summary, and a save keeps every entry', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    await folder(dir);
    await scanSaved(dir);
    const cache = await StatCache.load(dir);
    const s = await scanDirectory(dir, cache, LATER);
    assert.equal(shortcut(s), true);
    // What materialize does for a file it wrote.
    const key = { size: 3, mtimeNs: 5_000_000_000n, ctimeNs: 5_000_000_000n, ino: 42n };
    cache.set('pulled.txt', key, sha256('new'), Date.now());
    assert.equal(cache.summary, undefined);
    await cache.save();
    const loaded = await StatCache.load(dir);
    assert.equal(loaded.summary, undefined);
    assert.equal(loaded.size, 34);
    assert.equal(loaded.lookup('pulled.txt', key), sha256('new'));
    // pulled.txt is not in the folder: the full scan, which drops its entry.
    const next = await scanSaved(dir);
    assert.equal(shortcut(next), false);
    assert.equal(next.filesHashed, 0);
    assert.equal((await StatCache.load(dir)).size, 33);
    assert.equal(shortcut(await scanSaved(dir)), true);
  });

  it('a push over an unchanged folder whose remote ref moved merges with it instead of reporting the old version', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    const url = pathToFileURL(join(dir, 'remote')).href;
    await folder(a);
    const remote = await openRemote(url, { create: true });
    const ref = 'noop/r';
    const first = await push({ dir: a, remote, ref });
    assert.equal(first.upToDate, false);
    // The push observed its files within their racy window (utimes set the ctimes
    // to now): a scan as if later records them trusted, and the summary.
    assert.equal((await scanSaved(a)).digest, (await fullScan(a)).digest);
    const noop = await push({ dir: a, remote, ref });
    assert.equal(noop.upToDate, true);
    assert.equal(noop.snapshot, first.snapshot);
    assert.equal(noop.filesTotal, 33);
    // Someone else pushes a's files plus one more to the same ref.
    await folder(b);
    await writeFiles(b, { 'other.txt': 'from b' });
    const theirs = await push({ dir: b, remote, ref, force: true });
    assert.notEqual(theirs.snapshot, first.snapshot);
    // a did not change: its scan is a shortcut, but the ref moved, so the push merges:
    // nothing changed here, so the result is theirs, and a records it as its base.
    assert.equal(shortcut(await scanDirectory(a, await StatCache.load(a))), true);
    const merged = await push({ dir: a, remote, ref });
    assert.equal(merged.snapshot, theirs.snapshot);
    assert.equal(merged.filesTotal, 34);
    const tree = await fetchTree(remote, a, merged.tree);
    assert.ok(tree.entries.some((e) => e.path === 'other.txt'));
    // A local change now merges with theirs (a new version with both).
    await writeFile(join(a, 'mine.txt'), 'from a');
    const both = await push({ dir: a, remote, ref });
    assert.equal(both.upToDate, false);
    const paths = (await fetchTree(remote, a, both.tree)).entries.map((e) => e.path);
    assert.ok(paths.includes('other.txt') && paths.includes('mine.txt') && paths.includes('top.txt'));
  });
});
