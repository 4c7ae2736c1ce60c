// The extractor's own tar parsing: headers and bodies split across chunks at
// any offset, pax and GNU long names (and the refusals applying to the names
// they carry), truncation, bad checksums, abort.

import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { extractTar, extractTarZst } from '../../src/archive/safe-extract.ts';
import { encodeHeader } from '../../src/archive/tar-format.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { assertRefused, type Entry, makeTar, stage as stageIn, zst } from './helpers.ts';

/** `buf` in pieces of `size` bytes. */
function pieces(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.byteLength; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** A GNU long-name (`L`) or long-link (`K`) record followed by its body. */
function gnuLong(flag: 'L' | 'K', value: string): Buffer {
  const data = Buffer.from(`${value}\0`);
  const h = encodeHeader({
    path: '././@LongLink',
    type: 'file',
    mode: 0o644,
    mtime: 0,
    size: data.byteLength,
  });
  h[156] = flag.charCodeAt(0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i];
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  const pad = Buffer.alloc((512 - (data.byteLength % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}

const END = Buffer.alloc(1024);

describe('safe extraction: tar parsing', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hoard-extract-parse-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const stage = () => stageIn(root);

  async function refusedRaw(tarBuf: Buffer, pattern: RegExp): Promise<string> {
    const { outer, staging } = await stage();
    await assertRefused(extractTar(Readable.from([tarBuf]), staging), outer, pattern);
    return staging;
  }

  const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(60)}`;
  const longName = `${'n'.repeat(150)}.txt`; // no '/' to split on: a pax path
  const big = Buffer.alloc(300_001, 'x');
  const entries: Entry[] = [
    { name: 'empty', body: '' },
    { name: `${longDir}/file.txt`, body: 'deep and long' },
    { name: longName, body: 'pax path' },
    { name: 'ünïcödé/файл.txt', body: 'utf8' },
    { name: 'big.bin', body: big },
    { name: 'ro.txt', body: 'read-only', mode: 0o444 },
    { name: 'longlink', type: 'symlink', linkname: `./${'l'.repeat(150)}` },
    { name: 'after', body: 'last' },
  ];

  async function checkTree(staging: string): Promise<void> {
    assert.equal((await stat(join(staging, 'empty'))).size, 0);
    assert.equal(await readFile(join(staging, longDir, 'file.txt'), 'utf8'), 'deep and long');
    assert.equal(await readFile(join(staging, longName), 'utf8'), 'pax path');
    assert.equal(await readFile(join(staging, 'ünïcödé/файл.txt'), 'utf8'), 'utf8');
    assert.ok((await readFile(join(staging, 'big.bin'))).equals(big));
    assert.equal((await lstat(join(staging, 'ro.txt'))).mode & 0o777, 0o444);
    assert.equal(await readFile(join(staging, 'ro.txt'), 'utf8'), 'read-only');
    assert.equal(await readlink(join(staging, 'longlink')), `./${'l'.repeat(150)}`);
    assert.equal(await readFile(join(staging, 'after'), 'utf8'), 'last');
  }

  it('extracts the same tree whatever the chunk boundaries', async () => {
    const buf = await makeTar(entries);
    for (const size of [7, 511, 512, 513, 4096, 65_537, buf.byteLength]) {
      const { staging } = await stage();
      const r = await extractTar(Readable.from(pieces(buf, size)), staging);
      assert.equal(r.files, 7, `chunks of ${size}`);
      assert.equal(r.symlinks, 1);
      assert.equal(r.bytes, 13 + 8 + 4 + big.byteLength + 9 + 4);
      await checkTree(staging);
    }
    const { staging } = await stage();
    await extractTarZst(Readable.from(pieces(zst(buf), 1000)), staging);
    await checkTree(staging);
  });

  it('applies GNU long names and long link targets', async () => {
    const { staging } = await stage();
    const name = `${'g'.repeat(120)}/${'h'.repeat(120)}`;
    const buf = Buffer.concat([
      gnuLong('L', name),
      await makeTar([{ name: 'short', body: 'gnu' }]).then((b) => b.subarray(0, 1024)),
      gnuLong('K', `${'g'.repeat(120)}/${'t'.repeat(120)}`),
      await makeTar([{ name: 'gl', type: 'symlink', linkname: 'x' }]).then((b) => b.subarray(0, 512)),
      END,
    ]);
    const r = await extractTar(Readable.from(pieces(buf, 100)), staging);
    assert.equal(r.files, 1);
    assert.equal(await readFile(join(staging, name), 'utf8'), 'gnu');
    assert.equal(await readlink(join(staging, 'gl')), `${'g'.repeat(120)}/${'t'.repeat(120)}`);
    assert.deepEqual((await readdir(staging)).sort(), ['g'.repeat(120), 'gl']);
  });

  it('refuses unsafe names carried by pax and GNU headers', async () => {
    await refusedRaw(await makeTar([{ name: `../${'a'.repeat(120)}`, body: 'pwned' }]), /climbs out/);
    await refusedRaw(
      await makeTar([{ name: 'l', type: 'symlink', linkname: `/etc/${'a'.repeat(120)}` }]),
      /points outside/,
    );
    await refusedRaw(
      Buffer.concat([
        gnuLong('L', '../gnu-pwned'),
        (await makeTar([{ name: 'ok', body: 'x' }])).subarray(0, 1024),
        END,
      ]),
      /climbs out/,
    );
    await refusedRaw(
      Buffer.concat([
        gnuLong('L', `fifo-${'p'.repeat(120)}`),
        (await makeTar([{ name: 'f', type: 'fifo' }])).subarray(0, 512),
        END,
      ]),
      /not allowed/,
    );
  });

  it('refuses writing through a symlink whose name came from a pax header', async () => {
    const linkName = 'k'.repeat(150);
    const staging = await refusedRaw(
      await makeTar([
        { name: 'inner/', type: 'directory' },
        { name: linkName, type: 'symlink', linkname: 'inner' },
        { name: `${linkName}/file`, body: 'x' },
      ]),
      /is a symlink/,
    );
    assert.deepEqual(await readdir(join(staging, 'inner')), []);
  });

  it('refuses truncated archives and bad checksums', async () => {
    const buf = await makeTar([{ name: 'f', body: 'y'.repeat(2000) }]);
    await refusedRaw(buf.subarray(0, 1000), /unexpected end/); // inside the body
    await refusedRaw(buf.subarray(0, 300), /unexpected end/); // inside the header
    await refusedRaw(buf.subarray(0, 2600), /unexpected end/); // inside the padding
    const bad = Buffer.from(buf);
    bad[0] = 'g'.charCodeAt(0);
    await refusedRaw(bad, /checksum/);
  });

  it('sets archive mtimes by default and leaves them with mtimes: false', async () => {
    const buf = await makeTar([
      { name: 'd/', type: 'directory' },
      { name: 'd/f', body: 'x' },
    ]);
    const a = await stage();
    await extractTar(Readable.from([buf]), a.staging);
    assert.equal((await lstat(join(a.staging, 'd/f'))).mtimeMs, 1_700_000_000_000);
    assert.equal((await lstat(join(a.staging, 'd'))).mtimeMs, 1_700_000_000_000);
    const b = await stage();
    const t0 = Date.now() - 60_000;
    await extractTar(Readable.from([buf]), b.staging, { mtimes: false });
    assert.ok((await lstat(join(b.staging, 'd/f'))).mtimeMs > t0);
  });

  it('stops on abort with HOARD_EABORTED', async () => {
    const { staging } = await stage();
    const ac = new AbortController();
    const buf = await makeTar([{ name: 'f', body: 'z'.repeat(100_000) }]);
    async function* slow() {
      yield buf.subarray(0, 4096);
      ac.abort();
      await new Promise((r) => setImmediate(r));
      yield buf.subarray(4096);
    }
    await assert.rejects(extractTar(Readable.from(slow()), staging, { signal: ac.signal }), (e) =>
      isHoardError(e, 'HOARD_EABORTED'),
    );
  });
});
