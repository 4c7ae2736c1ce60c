// The streaming tree decoder accepts exactly what the batch decoder accepts:
// the same entries for valid trees (whatever the chunking), a rejection for
// every invalid input the batch decoder rejects (the cases of tree.test.ts
// and a differential run over random trees with colliding, nested and
// out-of-order paths), and a bounded line length.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { decodeTree, encodeEntry, encodeTree, TREE_HEADER, type TreeEntry } from '../../src/core/tree.ts';
import { decodeTreeStream, MAX_TREE_LINE_BYTES } from '../../src/core/tree-stream.ts';
import { invalidTreeTexts } from './invalid-trees.ts';

const d = sha256('x');
const file = (path: string, size = 1): TreeEntry => ({ path, kind: 'file', size, digest: d });

/** Tree bytes from entries as given: no validation, no sorting. */
const raw = (entries: TreeEntry[]) =>
  Buffer.from(`${[TREE_HEADER, ...entries.map(encodeEntry)].join('\n')}\n`, 'utf8');

function* chunks(bytes: Buffer, size: number) {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, opts = {}) {
  const out: TreeEntry[] = [];
  for await (const e of decodeTreeStream(source, opts)) out.push(e);
  return out;
}

type Outcome = { ok: TreeEntry[] } | { err: string };

function batch(bytes: Buffer): Outcome {
  try {
    return { ok: decodeTree(bytes).entries };
  } catch (e) {
    if (isHoardError(e, 'HOARD_ETREE_INVALID') || isHoardError(e, 'HOARD_EPATH_INVALID'))
      return { err: e.code };
    throw e;
  }
}

async function streamed(bytes: Buffer, chunkSize = 7): Promise<Outcome> {
  try {
    return { ok: await collect(chunks(bytes, chunkSize)) };
  } catch (e) {
    if (isHoardError(e, 'HOARD_ETREE_INVALID') || isHoardError(e, 'HOARD_EPATH_INVALID'))
      return { err: e.code };
    throw e;
  }
}

/** A tree whose path has a 0xFF byte: decoded as U+FFFD, so only the byte comparison can tell. */
function notUtf8(): Buffer {
  const bytes = raw([file('a\uFFFD')]);
  const at = bytes.indexOf(Buffer.from('\uFFFD'));
  return Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff]), bytes.subarray(at + 3)]);
}

const isInvalid = (o: Outcome) => 'err' in o;

describe('streaming tree decoder', () => {
  it('yields the batch decoder entries for valid trees, for any chunking', async () => {
    const trees = [
      encodeTree([]),
      encodeTree([
        file('b'),
        { path: 'a/link', kind: 'symlink', target: '../b' },
        { path: 'a/run.sh', kind: 'exec', size: 1, digest: d },
        { path: 'empty', kind: 'dir' },
        file('B'),
        file('é'),
        file('\u{1F600}'),
        file('\uFF5E'),
        file('a!'),
        file('a.txt'),
        file('dir/\u0001ctl'),
        { path: 'sym', kind: 'symlink', target: 'x'.repeat(4096) },
      ]),
    ];
    for (const bytes of trees)
      for (const size of [1, 3, 64, 65536, bytes.length]) {
        assert.deepEqual(await collect(chunks(bytes, size)), decodeTree(bytes).entries);
      }
    // Uint8Array chunks (not Buffers) and async sources work too.
    const bytes = trees[1];
    async function* asUint8() {
      for (const c of chunks(bytes, 5)) yield new Uint8Array(c);
    }
    assert.deepEqual(await collect(asUint8()), decodeTree(bytes).entries);
  });

  it('rejects every invalid input of tree.test.ts', async () => {
    const good = encodeTree([file('a'), file('b')]).toString();
    const cases = [
      ...invalidTreeTexts(good, d),
      '',
      TREE_HEADER,
      `${TREE_HEADER}\n\n`,
      `${TREE_HEADER} \n`,
      `${TREE_HEADER}\n[]\n`,
      `${TREE_HEADER}\nnull\n`,
      good.replace('"size":1', '"size":1.0'),
      good.replace('"size":1', '"size":1,"x":1'),
      good.replace('}\n', '}\r\n'),
    ].map((s): Buffer => Buffer.from(s));
    for (const bad of ['/abs', '../x', 'a/../b', 'a//b', './a', 'a/', '', 'a\0b', 'a\\b', 'C:/x'])
      cases.push(raw([file(bad)]));
    cases.push(
      raw(
        [file('caf\u00e9'), file('cafe\u0301')].sort((x, y) =>
          Buffer.compare(Buffer.from(x.path), Buffer.from(y.path)),
        ),
      ),
      raw([file('K'), file('\u212A')]), // KELVIN SIGN normalises to K
      raw([file('a'), file('a')]),
      raw([file('a'), file('a/b')]),
      raw([file('a'), file('a!'), file('a.c'), file('a/b')]), // the leaf is not the previous line
      raw([{ path: 'a', kind: 'symlink', target: '/etc' }, file('a/passwd')]),
      raw([{ path: 'a', kind: 'dir' }, file('a/b')]),
      raw([file('x/a'), file('x/a.d/e'), file('x/a/b')]),
      raw([file('\uFF5E'), file('\u{1F600}')].reverse()), // UTF-16 order, not byte order
      notUtf8(), // U+FFFD where the bytes are 0xFF
    );
    for (const bytes of cases) {
      assert.ok(isInvalid(batch(bytes)), `batch accepts ${JSON.stringify(bytes.toString())}`);
      for (const size of [1, 4096])
        assert.deepEqual(await streamed(bytes, size), batch(bytes), JSON.stringify(bytes.toString()));
    }
  });

  it('agrees with the batch decoder on random trees (collisions, nesting, order)', async () => {
    // Small alphabet: paths collide, nest under each other and normalise into each other often.
    const alphabet = ['a', 'b', '/', '.', 'K', '\u212A', 'e', '\u0301', 'é', '\u{1F600}', '\uFF5E', '!'];
    let seed = 42;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let valid = 0;
    let invalid = 0;
    for (let round = 0; round < 1500; round++) {
      const entries: TreeEntry[] = [];
      for (let n = 1 + rand(6); n > 0; n--) {
        let p = '';
        for (let len = 1 + rand(5); len > 0; len--) p += alphabet[rand(alphabet.length)];
        const kind = rand(4);
        entries.push(
          kind === 0
            ? { path: p, kind: 'dir' }
            : kind === 1
              ? { path: p, kind: 'symlink', target: 't' }
              : file(p),
        );
      }
      // Mostly sorted (so the cross-entry rules are reached), sometimes as generated.
      if (rand(5) > 0) entries.sort((x, y) => Buffer.compare(Buffer.from(x.path), Buffer.from(y.path)));
      const bytes = raw(entries);
      const want = batch(bytes);
      if (isInvalid(want)) invalid++;
      else valid++;
      // The error code may differ when an input breaks several rules (the stream reports the first line's).
      const got = await streamed(bytes, 1 + rand(40));
      if (isInvalid(want)) assert.ok(isInvalid(got), `stream accepts ${JSON.stringify(bytes.toString())}`);
      else assert.deepEqual(got, want, JSON.stringify(bytes.toString()));
    }
    assert.ok(valid > 100 && invalid > 100, `valid ${valid}, invalid ${invalid}`);
  });

  it('only the singletons U+212A, U+037E, U+1FEF decompose to ASCII (the NFC shortcut relies on it)', () => {
    const found = new Set<string>();
    for (let cp = 0x80; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const nfd = String.fromCodePoint(cp).normalize('NFD');
      if (/^[\x00-\x7f]+$/.test(nfd)) for (const c of nfd) found.add(c);
    }
    assert.deepEqual([...found].sort(), [';', 'K', '`']);
  });

  it('bounds the line length: a line without end is refused, not buffered', async () => {
    let pulled = 0;
    function* endless() {
      yield Buffer.from(`${TREE_HEADER}\n{"path":"`);
      for (;;) {
        pulled += 4096;
        yield Buffer.alloc(4096, 0x61);
      }
    }
    await assert.rejects(
      collect(endless()),
      (e) => isHoardError(e, 'HOARD_ETREE_INVALID') && /longer than/.test(e.message),
    );
    assert.ok(pulled <= MAX_TREE_LINE_BYTES + 4096, `pulled ${pulled} bytes`);
    // A lower bound applies to the header line too, and to a line split over chunks.
    await assert.rejects(collect([Buffer.from(TREE_HEADER)], { maxLineBytes: 8 }), /longer than 8 bytes/);
    const long = raw([file('x'.repeat(100))]);
    await assert.rejects(collect(chunks(long, 10), { maxLineBytes: 64 }), /line 2 is longer than 64 bytes/);
    assert.equal((await collect(chunks(long, 10), { maxLineBytes: 400 })).length, 1);
    // The longest valid line (control characters are escaped 6-fold) fits the default bound.
    const ctl = '\u0001'.repeat(4096);
    const widest = raw([{ path: ctl, kind: 'symlink', target: ctl }]);
    assert.equal((await collect([widest])).length, 1);
  });

  it('refuses more than maxBytes with HOARD_ETOO_LARGE', async () => {
    const bytes = encodeTree([file('a'), file('b'), file('c')]);
    await assert.rejects(collect(chunks(bytes, 16), { maxBytes: bytes.length - 1 }), (e) =>
      isHoardError(e, 'HOARD_ETOO_LARGE'),
    );
    assert.equal((await collect(chunks(bytes, 16), { maxBytes: bytes.length })).length, 3);
  });

  it('yields to the event loop within one large chunk', async () => {
    const entries: TreeEntry[] = [];
    for (let i = 0; i < 50_000; i++) entries.push(file(`f${String(i).padStart(6, '0')}`));
    const bytes = encodeTree(entries);
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    try {
      // sliceMs 0: the decoder yields at every clock check; one chunk holds the whole tree.
      assert.equal((await collect([bytes], { sliceMs: 0 })).length, entries.length);
    } finally {
      clearInterval(ticker);
    }
    assert.ok(turns > 0, 'no timer ran while decoding');
  });
});
