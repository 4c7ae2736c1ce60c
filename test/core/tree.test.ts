import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import { decodeSnapshot, encodeSnapshot, snapshotDigest } from '../../src/core/snapshot-record.ts';
import {
  decodeTree,
  encodeEntry,
  encodeTree,
  fileDigestsOfTreeBytes,
  type TreeEntry,
  treeDigest,
  treeDigestOfWalk,
  treeDigestOnly,
} from '../../src/core/tree.ts';
import { comparePathBytes, validateTreePath } from '../../src/core/tree-path.ts';
import { invalidTreeTexts } from './invalid-trees.ts';

const d = sha256('x');
const file = (path: string, size = 1): TreeEntry => ({ path, kind: 'file', size, digest: d });

describe('tree', () => {
  it('encodes deterministically regardless of input order', () => {
    const entries: TreeEntry[] = [
      file('b'),
      { path: 'a/link', kind: 'symlink', target: '../b' },
      { path: 'a/run.sh', kind: 'exec', size: 1, digest: d },
      { path: 'empty', kind: 'dir' },
      file('B'),
      file('é'),
    ];
    const one = encodeTree(entries);
    const two = encodeTree([...entries].reverse());
    assert.deepEqual(one, two);
    assert.equal(treeDigest(entries).digest, sha256(one));
    const paths = decodeTree(one).entries.map((e) => e.path);
    assert.deepEqual(paths, ['B', 'a/link', 'a/run.sh', 'b', 'empty', 'é']); // byte order
  });

  it('round-trips through decode', () => {
    const bytes = encodeTree([file('x/y', 10), { path: 'l', kind: 'symlink', target: '/etc/passwd' }]);
    assert.deepEqual(encodeTree(decodeTree(bytes).entries), bytes);
  });

  it('sorts by UTF-8 bytes, not UTF-16 code units', () => {
    // U+FF5E sorts before U+1F600 in UTF-16 (surrogates are 0xD8xx) but after in UTF-8? No: compare bytes.
    const paths = decodeTree(encodeTree([file('\u{1F600}'), file('\uFF5E')])).entries.map((e) => e.path);
    assert.deepEqual(paths, ['\uFF5E', '\u{1F600}']);
  });

  for (const [bad, why] of [
    ['/abs', 'absolute'],
    ['../x', '".." segment'],
    ['a/../b', '".." segment'],
    ['a//b', 'empty segment'],
    ['./a', '"." segment'],
    ['a/', 'empty segment'],
    ['', 'empty'],
    ['a\0b', 'NUL'],
    ['a\\b', 'backslash'],
    ['C:/x', 'drive'],
  ] as const) {
    it(`rejects path ${JSON.stringify(bad)} (${why})`, () => {
      assert.throws(
        () => validateTreePath(bad),
        (e) => isHoardError(e, 'HOARD_EPATH_INVALID') && e.message.includes(why),
      );
      assert.throws(
        () => encodeTree([file(bad)]),
        (e) => isHoardError(e, 'HOARD_EPATH_INVALID'),
      );
    });
  }

  it('comparePathBytes orders as the UTF-8 bytes do, surrogates and U+E000–U+FFFF included', () => {
    // Characters on both sides of where UTF-16 order and UTF-8 order part.
    const alphabet = [
      'a',
      'b',
      '/',
      '-',
      '.',
      'é',
      '\u07ff',
      '\u0800',
      '\ud7ff',
      '\ue000',
      '\uffee',
      '😀',
      '𝄞',
    ];
    let x = 7;
    const rand = (n: number) => {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      return x % n;
    };
    const words: string[] = ['', 'a', 'ab', 'a/b'];
    for (let i = 0; i < 400; i++) {
      let w = '';
      for (let k = rand(6); k >= 0; k--) w += alphabet[rand(alphabet.length)];
      words.push(w, `${w}a`, `common/prefix/${w}`);
    }
    for (const a of words)
      for (const b of words.slice(0, 120)) {
        const want = Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
        assert.equal(Math.sign(comparePathBytes(a, b)), want, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
      }
  });

  it('rejects names that collide after Unicode normalisation', () => {
    assert.throws(
      () => encodeTree([file('caf\u00e9'), file('cafe\u0301')]),
      (e) => isHoardError(e, 'HOARD_EPATH_INVALID') && /normalisation/.test(e.message),
    );
  });

  it('rejects duplicates and entries under a file or symlink', () => {
    assert.throws(
      () => encodeTree([file('a'), file('a')]),
      (e) => isHoardError(e, 'HOARD_ETREE_INVALID'),
    );
    assert.throws(
      () => encodeTree([file('a'), file('a/b')]),
      (e) => isHoardError(e, 'HOARD_ETREE_INVALID'),
    );
    assert.throws(
      () => encodeTree([{ path: 'a', kind: 'symlink', target: '/etc' }, file('a/passwd')]),
      (e) => isHoardError(e, 'HOARD_ETREE_INVALID'),
    );
    assert.throws(
      () => encodeTree([{ path: 'a', kind: 'dir' }, file('a/b')]),
      (e) => isHoardError(e, 'HOARD_ETREE_INVALID'),
    );
  });

  it('decodes exactly what it encodes, lines read in place and lines parsed alike', () => {
    const entries: TreeEntry[] = [
      file('A'),
      file('a-b/c', 0),
      file('a.d/"quoted"'),
      file('a.d/tab\there'),
      file('a.d/del\u007f'),
      { path: 'a/x.sh', kind: 'exec', size: Number.MAX_SAFE_INTEGER, digest: d },
      { path: 'a/y', kind: 'symlink', target: '../a-b/c' },
      { path: 'a/z', kind: 'dir' },
      file('caf\u00e9/menu'),
      file('caf\u00e9/z', 1234567890),
      file('zz/\u{1f600}'),
      file('zz/~plain', 10),
    ];
    const bytes = encodeTree(entries);
    const decoded = decodeTree(bytes).entries;
    assert.deepEqual(encodeTree(decoded), bytes);
    assert.deepEqual(
      [...decoded].map((e) => e.path),
      [...entries].map((e) => e.path).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    );
    assert.equal(
      (decoded.find((e) => e.path === 'a/x.sh') as { size: number }).size,
      Number.MAX_SAFE_INTEGER,
    );
  });

  it('decoding untrusted bytes validates everything and insists on canonical form', () => {
    const cases = invalidTreeTexts(encodeTree([file('a'), file('b')]).toString(), d);
    for (const bytes of cases) {
      assert.throws(
        () => decodeTree(Buffer.from(bytes)),
        (e) => isHoardError(e, 'HOARD_ETREE_INVALID') || isHoardError(e, 'HOARD_EPATH_INVALID'),
        bytes,
      );
    }
  });

  it('writes each line exactly as JSON.stringify of the fixed-key object, whatever the name holds', () => {
    const names = [
      'plain',
      'q"uote',
      'back\\slash',
      'tab\there',
      'nl\nx',
      '\u001fctl',
      'é',
      '日本',
      '😀',
      'a\u2028b',
    ];
    for (const path of names) {
      const f = { path, kind: 'file' as const, size: 12345, digest: d };
      assert.equal(encodeEntry(f), JSON.stringify({ path, kind: 'file', size: 12345, digest: d }));
      const x = { path, kind: 'exec' as const, size: 0, digest: d };
      assert.equal(encodeEntry(x), JSON.stringify({ path, kind: 'exec', size: 0, digest: d }));
      const l = { path, kind: 'symlink' as const, target: `../${path}` };
      assert.equal(encodeEntry(l), JSON.stringify({ path, kind: 'symlink', target: `../${path}` }));
      assert.equal(encodeEntry({ path, kind: 'dir' }), JSON.stringify({ path, kind: 'dir' }));
    }
  });

  it("a walk's sorted entries encode to the same bytes as the validating encoder", () => {
    const entries: TreeEntry[] = [
      file('B'),
      { path: 'a/link', kind: 'symlink', target: '../b "q"' },
      { path: 'a/run.sh', kind: 'exec', size: 7, digest: d },
      file('b"c', 0),
      { path: 'empty', kind: 'dir' },
      file('é'),
      file('\uFF21'),
      file('😀'),
    ];
    const sorted = normalizeOrder(entries);
    const walk = treeDigestOfWalk(sorted);
    const checked = treeDigest(entries);
    assert.deepEqual(walk.bytes, checked.bytes);
    assert.equal(walk.digest, checked.digest);
    assert.deepEqual(treeDigestOfWalk([]).bytes, treeDigest([]).bytes);
  });

  it("a walk's entries that collide after Unicode normalisation are refused", () => {
    // KELVIN SIGN is NFC-normalised to K: a non-ASCII name can collide with an ASCII one.
    for (const pair of [
      ['K', '\u212A'],
      ['e\u0301', 'é'],
    ]) {
      const sorted = normalizeOrder(pair.map((p) => file(p)));
      assert.throws(
        () => treeDigestOfWalk(sorted),
        (e) => isHoardError(e, 'HOARD_EPATH_INVALID'),
      );
    }
  });

  it('encodes a tree of many chunks byte for byte as its lines joined, multi-byte names across chunk ends', () => {
    const entries: TreeEntry[] = [];
    for (let i = 0; i < 3000; i++) {
      // Plain ASCII names (written by the encoder's byte path), names it must escape, non-ASCII names.
      const name =
        i % 3 === 0
          ? `dïr-€-${i}/fïlé 😀 ${i}`
          : i % 3 === 1
            ? `d${i % 10}/plain ~#{}-${i}.bin`
            : `d${i % 10}/f"q\t${i}`;
      const size = i === 4 ? Number.MAX_SAFE_INTEGER : i % 100 === 1 ? 0 : i * 977;
      entries.push(
        i % 11 === 0
          ? { path: name, kind: 'symlink', target: `../t ${i} ✓` }
          : i % 13 === 0
            ? { path: name, kind: 'exec', size, digest: sha256(`x${i}`) }
            : file(name, size),
      );
    }
    const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    const expected = Buffer.from(
      `${['{"hoard":"tree/1"}', ...sorted.map((e) => JSON.stringify(e.kind === 'symlink' ? { path: e.path, kind: e.kind, target: e.target } : e))].join('\n')}\n`,
    );
    assert.ok(expected.length > 4 * 64 * 1024); // several of the encoder's chunks
    assert.deepEqual(encodeTree(entries), expected);
    assert.deepEqual(treeDigestOfWalk(sorted).bytes, expected);
    assert.equal(treeDigestOnly(entries), sha256(expected));
  });

  it("reads a valid tree's blob digests from its bytes, whatever its names and targets spell", () => {
    const other = sha256('other');
    const fake = sha256('not a blob of this tree');
    const entries: TreeEntry[] = [
      file('a'),
      { path: 'b', kind: 'exec', size: 2, digest: other },
      // Names and targets that spell the key: escaped in canonical form, never read as one.
      file(`x,"digest":"${fake}"`),
      { path: 'link', kind: 'symlink', target: `,"digest":"${fake}"}` },
      { path: `dir,"digest":"${fake}"`, kind: 'dir' },
    ];
    const bytes = encodeTree(entries);
    assert.ok(bytes.includes(fake));
    assert.deepEqual(fileDigestsOfTreeBytes(bytes), new Set([d, other]));
    assert.deepEqual(fileDigestsOfTreeBytes(encodeTree([])), new Set());
  });

  it('empty tree is valid', () => {
    assert.deepEqual(decodeTree(encodeTree([])).entries, []);
  });
});

/** Sorted by UTF-8 bytes, as a walk sorts them. */
function normalizeOrder(entries: TreeEntry[]): TreeEntry[] {
  return [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

describe('snapshot record', () => {
  it('encodes canonically and round-trips', () => {
    const rec = {
      tree: d,
      parents: [sha256('p')],
      createdAt: '2026-11-23T12:00:00.000Z',
      meta: { z: '1', a: '2' },
    };
    const again = { ...rec, meta: { a: '2', z: '1' } };
    assert.deepEqual(encodeSnapshot(rec), encodeSnapshot(again));
    assert.equal(snapshotDigest(rec).digest, sha256(encodeSnapshot(rec)));
    assert.deepEqual(decodeSnapshot(encodeSnapshot(rec)), { ...rec, meta: { a: '2', z: '1' } });
  });

  it('rejects malformed records', () => {
    for (const bad of [
      '{}',
      'nope',
      '{"hoard":"snapshot/1","tree":"x","parents":[],"createdAt":"2026-01-01","meta":{}}',
    ]) {
      assert.throws(
        () => decodeSnapshot(Buffer.from(bad)),
        (e) => isHoardError(e, 'HOARD_ESNAPSHOT_INVALID'),
      );
    }
  });
});
