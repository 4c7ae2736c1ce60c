// DigestSet: a compact set of digests agrees with a Set of strings through
// growth, holds the all-zero digest, and costs ~32–90 bytes per digest.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Digest, digestFromHex, sha256 } from '../../src/core/digest.ts';
import { DigestSet } from '../../src/core/digest-set.ts';

describe('DigestSet', () => {
  it('agrees with a Set through growth', () => {
    const set = new DigestSet();
    const ref = new Set<Digest>();
    for (let i = 0; i < 20_000; i++) {
      const d = sha256(String(i % 15_000)); // a quarter are repeats
      assert.equal(set.add(d), !ref.has(d));
      ref.add(d);
    }
    assert.equal(set.size, ref.size);
    for (let i = 0; i < 16_000; i++) assert.equal(set.has(sha256(String(i))), i < 15_000);
    assert.ok(set.byteSize <= set.size * 32 * 3, `${set.byteSize} bytes for ${set.size}`);
  });

  it('handles the all-zero digest and digests that differ in one bit', () => {
    const set = new DigestSet();
    const zero = digestFromHex('0'.repeat(64));
    assert.equal(set.has(zero), false);
    assert.equal(set.add(zero), true);
    assert.equal(set.add(zero), false);
    assert.equal(set.has(zero), true);
    // Crafted digests (a tree may name any): same prefix, one differing byte at the end.
    for (let i = 1; i < 256; i++)
      set.add(digestFromHex(`${'ab'.repeat(31)}${i.toString(16).padStart(2, '0')}`));
    assert.equal(set.size, 256);
    assert.equal(set.has(digestFromHex(`${'ab'.repeat(31)}00`)), false);
    assert.equal(set.has(digestFromHex(`${'ab'.repeat(31)}ff`)), true);
  });
});
