// Pull's memory is bounded by the tree's entries, not by copies of its bytes:
// the tree is decoded while it streams in (hashed and kept on disk on the
// way, never held whole), merged in one sorted pass, and a pull that takes
// the remote tree as is does not re-encode it. Before, a pull peaked at about
// 14× the tree's size (text copy, line array, re-encoded lines, joined text,
// re-encoded buffer, per-side maps, a sort); a 509 MB tree took 3.6 GB.
//
// Bound checked here (docs/sync.md, "Memory"): a pull's peak RSS grows by at
// most PULL_RSS_PER_TREE_BYTE × the tree's encoded size + PULL_RSS_SLACK.
// The tree is fat on purpose (symlinks with long targets): many bytes per
// entry make copies of the bytes dominate, with few files to write.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { sha256 } from '../../src/core/digest.ts';
import { snapshotDigest } from '../../src/core/snapshot-record.ts';
import { decodeTree, encodeTree, TreeDecoder, type TreeEntry, treeDigest } from '../../src/core/tree.ts';
import { openRemote } from '../../src/remote/remote.ts';
import { describeDir, tempDir } from './helpers.ts';

const run = promisify(execFile);
const WORKER = fileURLToPath(new URL('./pull-rss-worker.ts', import.meta.url));

const LINKS = 8_000;
const TARGET_BYTES = 2_000;
const FILES = 200;
/** Peak RSS growth allowed per byte of encoded tree (measured ≈ 3; before the fix ≈ 14). */
const PULL_RSS_PER_TREE_BYTE = 6;
/** Fixed allowance: modules loaded by the pull, allocator slack. */
const PULL_RSS_SLACK = 48 * 1024 * 1024;

describe('pull memory', () => {
  let work: { dir: string; cleanup: () => Promise<void> };
  let url: string;
  let treeBytes = 0;
  let entries: TreeEntry[] = [];
  before(async () => {
    work = await tempDir('hoard-pullmem-');
    url = pathToFileURL(join(work.dir, 'remote')).href;
    const remote = await openRemote(url, { create: true });
    try {
      const target = `../${'t'.repeat(TARGET_BYTES)}`;
      for (let i = 0; i < LINKS; i++)
        entries.push({
          path: `links${Math.floor(i / 1000)}/l${i}`,
          kind: 'symlink',
          target: `${target}${i}`,
        });
      for (let i = 0; i < FILES; i++) {
        const c = Buffer.from(`file ${i}\n`);
        const d = sha256(c);
        await remote.blobs.write(d, Readable.from([c]), { size: c.length });
        entries.push({ path: `files/f${i}.txt`, kind: 'file', size: c.length, digest: d });
      }
      const t = treeDigest(entries);
      entries = decodeTree(t.bytes).entries;
      treeBytes = t.bytes.length;
      await remote.blobs.write(t.digest, Readable.from([t.bytes]), { size: treeBytes });
      const s = snapshotDigest({
        tree: t.digest,
        parents: [],
        createdAt: new Date().toISOString(),
        meta: {},
      });
      await remote.blobs.write(s.digest, Readable.from([s.bytes]), { size: s.bytes.length });
      await remote.refs.set('big', s.digest, null);
    } finally {
      await remote.close();
    }
  });
  after(() => work.cleanup());

  it(`a pull of a ${LINKS + FILES}-entry tree stays within ${PULL_RSS_PER_TREE_BYTE}× the tree's size`, async (t) => {
    const dest = join(work.dir, 'dest');
    await mkdir(dest);
    const { stdout } = await run(process.execPath, [WORKER, url, 'big', dest], { maxBuffer: 1 << 20 });
    const r = JSON.parse(stdout) as { rssBefore: number; maxRss: number; filesTotal: number };
    assert.equal(r.filesTotal, FILES);
    const grew = r.maxRss - r.rssBefore;
    const bound = PULL_RSS_PER_TREE_BYTE * treeBytes + PULL_RSS_SLACK;
    t.diagnostic(
      `tree ${treeBytes} bytes, peak RSS growth ${grew} bytes (${(grew / treeBytes).toFixed(1)}×)`,
    );
    assert.ok(
      grew <= bound,
      `peak RSS grew by ${(grew / 2 ** 20).toFixed(0)} MiB for a ${(treeBytes / 2 ** 20).toFixed(0)} MiB tree (bound ${(bound / 2 ** 20).toFixed(0)} MiB)`,
    );
    const got = await describeDir(dest);
    assert.equal(Object.keys(got).length, LINKS + FILES);
    assert.equal(got['links3/l3456'], `symlink:../${'t'.repeat(TARGET_BYTES)}3456`);
  });

  it('TreeDecoder accepts the longest canonical line and refuses a longer one without buffering on', () => {
    // Every byte escaped (\u0001 is 6 bytes): the worst case for line length.
    const longest = encodeTree([
      { path: '\u0001'.repeat(4096), kind: 'symlink', target: '\u0002'.repeat(4096) },
    ]);
    assert.equal(decodeTree(longest).entries.length, 1);
    // 8 MiB without a newline, in 64 KiB chunks: refused within the first chunk or two.
    const d = new TreeDecoder();
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let pushed = 0;
    assert.throws(() => {
      d.push(Buffer.from('{"hoard":"tree/1"}\n'));
      for (; pushed < 128; pushed++) d.push(chunk);
    }, /longer than \d+ bytes/);
    assert.ok(pushed <= 1, `refused after ${pushed + 1} chunks`);
  });

  it('TreeDecoder gives the same entries, or the same error, for any chunking', () => {
    const small = encodeTree(entries.slice(0, 40));
    const whole = decodeTree(small).entries;
    for (const size of [1, 2, 7, 64, 1000, small.length]) {
      const d = new TreeDecoder();
      for (let i = 0; i < small.length; i += size) d.push(small.subarray(i, i + size));
      assert.deepEqual(d.end().entries, whole, `chunks of ${size}`);
    }
    const cut = small.subarray(0, small.length - 1); // no final newline
    for (const size of [1, 5, cut.length]) {
      const d = new TreeDecoder();
      assert.throws(() => {
        for (let i = 0; i < cut.length; i += size) d.push(cut.subarray(i, i + size));
        d.end();
      }, /missing final newline/);
    }
  });
});
