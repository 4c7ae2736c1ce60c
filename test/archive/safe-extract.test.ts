import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { extractTar, extractTarZst } from '../../src/archive/safe-extract.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { assertRefused, type Entry, makeTar, stage as stageIn, zst } from './helpers.ts';

describe('safe extraction', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-extract-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const stage = () => stageIn(root);

  async function refused(entries: Entry[], pattern: RegExp, compressed = false): Promise<string> {
    const { outer, staging } = await stage();
    const tarBuf = await makeTar(entries);
    const run = compressed
      ? extractTarZst(Readable.from([zst(tarBuf)]), staging)
      : extractTar(Readable.from([tarBuf]), staging);
    await assertRefused(run, outer, pattern);
    return staging;
  }

  it('extracts a well-formed archive with files, dirs, symlinks and hard links', async () => {
    const { staging } = await stage();
    const buf = await makeTar([
      { name: 'a/', type: 'directory', mode: 0o755 },
      { name: 'a/file.txt', body: 'hello', mode: 0o644 },
      { name: 'a/run.sh', body: '#!/bin/sh\n', mode: 0o755 },
      { name: 'a/up', type: 'symlink', linkname: '../top.txt' },
      { name: 'b/c/d.txt', body: 'deep' },
      { name: 'hard', type: 'link', linkname: 'a/file.txt' },
      { name: 'top.txt', body: 'top' },
    ]);
    const r = await extractTarZst(Readable.from([zst(buf)]), staging);
    assert.equal(r.files, 4);
    assert.equal(r.symlinks, 1);
    assert.equal(r.hardlinks, 1);
    assert.equal(await readFile(join(staging, 'a/file.txt'), 'utf8'), 'hello');
    assert.equal(await readFile(join(staging, 'hard'), 'utf8'), 'hello');
    assert.equal(await readlink(join(staging, 'a/up')), '../top.txt');
    assert.equal(await readFile(join(staging, 'a/up'), 'utf8'), 'top');
    assert.equal((await lstat(join(staging, 'a/run.sh'))).mode & 0o777, 0o755);
    assert.equal((await lstat(join(staging, 'a/file.txt'))).mtimeMs, 1_700_000_000_000);
  });

  it("directoryMtimes: false keeps the files' mtimes and leaves directories at the extraction time", async () => {
    const entries: Entry[] = [
      { name: 'a/', type: 'directory', mode: 0o755 },
      { name: 'a/file.txt', body: 'hello', mode: 0o644 },
    ];
    const { staging: both } = await stage();
    await extractTar(Readable.from([await makeTar(entries)]), both);
    assert.equal((await lstat(join(both, 'a'))).mtimeMs, 1_700_000_000_000);
    const { staging } = await stage();
    const before = Date.now() - 1000;
    await extractTar(Readable.from([await makeTar(entries)]), staging, { directoryMtimes: false });
    assert.equal((await lstat(join(staging, 'a/file.txt'))).mtimeMs, 1_700_000_000_000);
    assert.ok((await lstat(join(staging, 'a'))).mtimeMs >= before);
  });

  it('refuses ../x', async () => {
    await refused([{ name: '../x', body: 'pwned' }], /climbs out/);
    await refused([{ name: 'a/../../x', body: 'pwned' }], /climbs out/, true);
  });

  it('refuses absolute paths', async () => {
    const victim = join(root, `abs-victim-${Date.now()}`);
    await refused([{ name: victim, body: 'pwned' }], /absolute/);
    await assert.rejects(lstat(victim));
  });

  it('refuses a symlink to /etc followed by a file through it', async () => {
    await refused(
      [
        { name: 'link', type: 'symlink', linkname: '/etc' },
        { name: 'link/passwd', body: 'root::0:0::/:/bin/sh\n' },
      ],
      /points outside/,
    );
    await refused([{ name: 'link', type: 'symlink', linkname: '../../..' }], /points outside/);
  });

  it('refuses writing through an in-archive symlink even when it points inside', async () => {
    const staging = await refused(
      [
        { name: 'inner/', type: 'directory' },
        { name: 'link', type: 'symlink', linkname: 'inner' },
        { name: 'link/file', body: 'x' },
      ],
      /parent "link" is a symlink/,
    );
    assert.deepEqual(await readdir(join(staging, 'inner')), []);
  });

  it('refuses chains of links that resolve outside', async () => {
    await refused(
      [
        { name: 'd/', type: 'directory' },
        { name: 'd/l1', type: 'symlink', linkname: '..' },
        { name: 'l2', type: 'symlink', linkname: 'd/l1/..' },
      ],
      /resolves outside/,
    );
  });

  it('refuses hard links outside or to non-files', async () => {
    await refused([{ name: 'h', type: 'link', linkname: '/etc/passwd' }], /absolute/);
    await refused([{ name: 'h', type: 'link', linkname: '../x' }], /climbs out/);
    await refused(
      [
        { name: 'd/', type: 'directory' },
        { name: 'h', type: 'link', linkname: 'd' },
      ],
      /not a file of this archive/,
    );
  });

  it('refuses device files and FIFOs', async () => {
    await refused([{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }], /not allowed/);
    await refused([{ name: 'fifo', type: 'fifo' }], /not allowed/);
  });

  it('refuses a path that appears twice (file replaced by a symlink)', async () => {
    await refused(
      [
        { name: 'a', body: 'x' },
        { name: 'a', type: 'symlink', linkname: 'b' },
      ],
      /appears twice/,
    );
  });

  it('refuses garbage and truncated input clearly', async () => {
    const { staging } = await stage();
    await assert.rejects(extractTarZst(Readable.from([Buffer.from('not zstd at all')]), staging), (e) =>
      isHoardError(e, 'HOARD_EARCHIVE_UNSAFE'),
    );
    const { staging: s2 } = await stage();
    const good = zst(await makeTar([{ name: 'f', body: 'y'.repeat(100_000) }]));
    await assert.rejects(extractTarZst(Readable.from([good.subarray(0, good.length >> 1)]), s2), (e) =>
      isHoardError(e, 'HOARD_EARCHIVE_UNSAFE'),
    );
  });

  it("zlib's stream decoder (the path of a Node without the synchronous decoder's internals) extracts the same and refuses the same", async () => {
    const entries: Entry[] = [
      { name: 'a/', type: 'directory', mode: 0o755 },
      { name: 'a/big.bin', body: 'z'.repeat(3 * 1024 * 1024 + 17) },
      { name: 'a/up', type: 'symlink', linkname: '../top.txt' },
      { name: 'top.txt', body: 'top' },
    ];
    const packed = zst(await makeTar(entries));
    const results = [];
    for (const zstdStream of [false, true]) {
      const { staging } = await stage();
      // Fed in small pieces, so the decoder sees frames cut at every kind of place.
      const pieces = Array.from({ length: Math.ceil(packed.length / 777) }, (_, i) =>
        packed.subarray(i * 777, (i + 1) * 777),
      );
      const r = await extractTarZst(Readable.from(pieces), staging, { zstdStream });
      results.push(r);
      assert.equal((await readFile(join(staging, 'a/big.bin'), 'utf8')).length, 3 * 1024 * 1024 + 17);
      assert.equal(await readlink(join(staging, 'a/up')), '../top.txt');
      assert.equal(await readFile(join(staging, 'top.txt'), 'utf8'), 'top');
    }
    assert.deepEqual(results[1], results[0]);
    for (const bad of [Buffer.from('not zstd at all'), packed.subarray(0, packed.length >> 1)]) {
      const { outer, staging } = await stage();
      await assertRefused(extractTarZst(Readable.from([bad]), staging, { zstdStream: true }), outer, /./);
    }
    // A frame whose window is above the bound (2^27) is refused, not decoded with more memory.
    // Compressed as a stream of two writes, so the frame declares its window (2^28)
    // instead of its content size.
    const wide = await new Promise<Buffer>((resolve, reject) => {
      const c = zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_windowLog]: 28 } });
      const parts: Buffer[] = [];
      c.on('data', (d: Buffer) => parts.push(d));
      c.on('end', () => resolve(Buffer.concat(parts)));
      c.on('error', reject);
      void makeTar([{ name: 'w', body: 'w'.repeat(1000) }]).then((t) => {
        c.write(t.subarray(0, 512));
        c.end(t.subarray(512));
      }, reject);
    });
    for (const zstdStream of [false, true]) {
      const { outer, staging } = await stage();
      await assertRefused(extractTarZst(Readable.from([wide]), staging, { zstdStream }), outer, /./);
    }
  });

  it('refuses a staging directory that is not empty', async () => {
    const { staging } = await stage();
    await mkdir(join(staging, 'x'));
    await assert.rejects(extractTar(Readable.from([await makeTar([])]), staging), (e) =>
      isHoardError(e, 'HOARD_EUSAGE'),
    );
  });
});
