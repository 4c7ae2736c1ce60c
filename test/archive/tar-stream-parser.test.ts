// The tar state machine on its own (tar-stream-parser.ts), with a sink that
// records what it is handed and writes nothing: the same entries, extended
// headers applied and never passed on, and the same file bodies whatever the
// chunk boundaries; a body the sink declines never reaches it; the bounds on
// bytes and headers; an archive cut short.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TarEntryHeader } from '../../src/archive/tar-header-decoder.ts';
import { type TarEntrySink, TarStreamParser } from '../../src/archive/tar-stream-parser.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { type Entry, makeTar } from './helpers.ts';

interface Seen {
  name: string;
  type: string;
  size: number;
  linkname: string;
  body?: string;
}

/** A sink that takes the bodies of files (except `decline`d names) and records everything. */
function recorder(decline: (name: string) => boolean = () => false) {
  const seen: Seen[] = [];
  let body: Buffer[] | null = null;
  const sink: TarEntrySink = {
    entry(h: TarEntryHeader) {
      seen.push({ name: h.name, type: h.type, size: h.size, linkname: h.linkname });
      if (h.type !== 'file' || decline(h.name)) return false;
      body = [];
      return true;
    },
    data(piece) {
      assert.ok(body, 'data only inside a file the sink took');
      body.push(Buffer.from(piece));
    },
    fileEnd() {
      assert.ok(body, 'fileEnd only after a file the sink took');
      (seen.at(-1) as Seen).body = Buffer.concat(body).toString('latin1');
      body = null;
    },
  };
  return { seen, sink };
}

function feed(parser: TarStreamParser, buf: Buffer, size: number): void {
  for (let i = 0; i < buf.byteLength; i += size) parser.push(buf.subarray(i, i + size));
  parser.end();
}

const longName = `${'n'.repeat(150)}.txt`; // a pax path
const entries: Entry[] = [
  { name: 'empty', body: '' },
  { name: longName, body: 'pax path' },
  { name: 'dir', type: 'directory' },
  { name: 'dir/big.bin', body: Buffer.alloc(1500, 'x') },
  { name: 'link', type: 'symlink', linkname: `./${'l'.repeat(150)}` },
  { name: 'last', body: 'end' },
];

describe('tar stream parser', () => {
  it('hands the sink the same entries and bodies whatever the chunk boundaries', async () => {
    const buf = await makeTar(entries);
    const expected: Seen[] = [
      { name: 'empty', type: 'file', size: 0, linkname: '', body: '' },
      { name: longName, type: 'file', size: 8, linkname: '', body: 'pax path' },
      { name: 'dir', type: 'directory', size: 0, linkname: '' },
      { name: 'dir/big.bin', type: 'file', size: 1500, linkname: '', body: 'x'.repeat(1500) },
      { name: 'link', type: 'symlink', size: 0, linkname: `./${'l'.repeat(150)}` },
      { name: 'last', type: 'file', size: 3, linkname: '', body: 'end' },
    ];
    for (const size of [1, 7, 511, 512, 513, 4096, buf.byteLength]) {
      const { seen, sink } = recorder();
      feed(new TarStreamParser(sink), buf, size);
      assert.deepEqual(seen, expected, `chunks of ${size}`);
    }
  });

  it('drops the body of a file the sink declines and goes on', async () => {
    const buf = await makeTar(entries);
    const { seen, sink } = recorder((name) => name === 'dir/big.bin');
    feed(new TarStreamParser(sink), buf, 100);
    assert.deepEqual(
      seen.map((s) => [s.name, s.body]),
      [
        ['empty', ''],
        [longName, 'pax path'],
        ['dir', undefined],
        ['dir/big.bin', undefined],
        ['link', undefined],
        ['last', 'end'],
      ],
    );
  });

  it('refuses past maxBytes and maxEntries, and an archive cut short', async () => {
    const buf = await makeTar(entries);
    const tooLarge = (err: unknown) => isHoardError(err) && err.code === 'HOARD_ETOO_LARGE';
    assert.throws(
      () => feed(new TarStreamParser(recorder().sink, { maxBytes: buf.byteLength - 1 }), buf, 512),
      tooLarge,
    );
    // Pax headers count as headers: 6 entries, two with a pax header (the long name, the long target), are 8.
    feed(new TarStreamParser(recorder().sink, { maxEntries: 8 }), buf, 512);
    assert.throws(() => feed(new TarStreamParser(recorder().sink, { maxEntries: 7 }), buf, 512), tooLarge);
    const cut = recorder();
    assert.throws(
      () => feed(new TarStreamParser(cut.sink), buf.subarray(0, 512 * 3 + 100), 512),
      /unexpected end of data/,
    );
  });
});
