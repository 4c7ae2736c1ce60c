import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isObjectId } from '../../src/git/object-id.ts';

test('isObjectId: lowercase SHA-1 or SHA-256 hex, nothing else', () => {
  assert.equal(isObjectId('a'.repeat(40)), true);
  assert.equal(isObjectId('0123456789abcdef'.repeat(4)), true);
  for (const bad of [
    'A'.repeat(40),
    'a'.repeat(39),
    'a'.repeat(41),
    'a'.repeat(63),
    `${'a'.repeat(40)}\n`,
    'g'.repeat(40),
    '',
  ])
    assert.equal(isObjectId(bad), false, JSON.stringify(bad));
});
