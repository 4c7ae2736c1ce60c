// The kept bodies of served npm documents: made once per (document digest,
// label, base), bounded by bytes with the least recently used out first, a
// body too big for the bound made but never kept, gzip made once and only
// for bodies big enough; and which Accept-Encoding headers admit gzip.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { type Digest, sha256 } from '../../../src/core/digest.ts';
import { DocumentBodies, GZIP_MIN_BYTES } from '../../../src/features/npm/npm-document-bodies.ts';
import { acceptsGzip } from '../../../src/features/npm/npm-routes.ts';

const d = (s: string): Digest => sha256(s);

describe('npm document bodies', () => {
  it('makes a body once per digest, label and base; another of any of them is made afresh', () => {
    const bodies = new DocumentBodies(1 << 20);
    let made = 0;
    const make = (text: string) => () => {
      made++;
      return text;
    };
    const a = bodies.get(d('doc1'), 'full\nx', 'http://a', make('{"a":1}'));
    assert.equal(bodies.get(d('doc1'), 'full\nx', 'http://a', make('unused')), a);
    assert.equal(made, 1);
    assert.equal(a.bytes.toString(), '{"a":1}');
    assert.match(a.etag, /^W\/"[0-9a-f]{40}"$/);
    bodies.get(d('doc2'), 'full\nx', 'http://a', make('{"a":2}'));
    bodies.get(d('doc1'), 'abbreviated\nx', 'http://a', make('{"a":3}'));
    bodies.get(d('doc1'), 'full\nx', 'http://b', make('{"a":4}'));
    assert.equal(made, 4);
    const other = bodies.get(d('doc2'), 'full\nx', 'http://a', make('unused'));
    assert.notEqual(other.etag, a.etag, 'other bytes, another tag');
  });

  it('keeps at most its bound, least recently used out first; a body over an eighth of it is not kept', () => {
    const bodies = new DocumentBodies(8000);
    const body = (n: number) => () => 'x'.repeat(n);
    bodies.get(d('1'), 'f', 'b', body(900));
    bodies.get(d('2'), 'f', 'b', body(900));
    for (let i = 3; i < 12; i++) {
      bodies.get(d('1'), 'f', 'b', () => assert.fail('1 is used, so kept')); // keeps 1 the most recent
      bodies.get(d(String(i)), 'f', 'b', body(900));
    }
    assert.ok(bodies.bytes <= 8000);
    let remade = false;
    bodies.get(d('2'), 'f', 'b', () => {
      remade = true;
      return 'x';
    });
    assert.ok(remade, 'the least recently used went first');
    const before = bodies.bytes;
    const big = bodies.get(d('big'), 'f', 'b', body(1001));
    assert.equal(big.bytes.byteLength, 1001);
    assert.equal(bodies.bytes, before, 'not kept');
  });

  it('makes the gzip copy once, only for bodies big enough, and counts it in the bound', async () => {
    const bodies = new DocumentBodies(1 << 20);
    assert.equal(bodies.get(d('small'), 'f', 'b', () => 'x'.repeat(GZIP_MIN_BYTES - 1)).gzip(), undefined);
    const text = JSON.stringify({ versions: Array.from({ length: 200 }, (_, i) => ({ v: i })) });
    const big = bodies.get(d('big'), 'f', 'b', () => text);
    const held = bodies.bytes;
    const first = big.gzip();
    assert.equal(big.gzip(), first, 'one compression, however many ask');
    const zipped = await first;
    assert.ok(zipped);
    assert.equal(gunzipSync(zipped).toString(), text);
    await new Promise((r) => setImmediate(r));
    assert.equal(bodies.bytes, held + zipped.byteLength);
  });

  it('reads Accept-Encoding as RFC 9110 says', () => {
    for (const h of ['gzip', 'gzip, deflate, br', 'br;q=1, GZIP;q=0.5', 'x-gzip', '*', 'deflate, *;q=0.1'])
      assert.equal(acceptsGzip(h), true, h);
    for (const h of [undefined, '', 'identity', 'br', 'gzip;q=0', 'gzip;q=0, *', '*;q=0', 'gzip;q=0.000'])
      assert.equal(acceptsGzip(h), false, String(h));
  });
});
