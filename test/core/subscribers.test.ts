// Typed subscriptions (replacing EventEmitter events): unsubscribe, size as
// "does anyone listen", and a failing listener isolated from the others.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Subscribers } from '../../src/core/subscribers.ts';

describe('Subscribers', () => {
  const unexpected = (err: unknown) => assert.fail(`unexpected listener error: ${err}`);

  test('add returns an idempotent unsubscribe; size counts subscriptions', () => {
    const s = new Subscribers<number>();
    const seen: number[] = [];
    const listener = (n: number) => seen.push(n);
    const off1 = s.add(listener);
    const off2 = s.add(listener);
    assert.equal(s.size, 2);
    s.emit(1, unexpected);
    off1();
    off1();
    assert.equal(s.size, 1);
    s.emit(2, unexpected);
    off2();
    assert.equal(s.size, 0);
    s.emit(3, unexpected);
    assert.deepEqual(seen, [1, 1, 2]);
  });

  test('a listener that throws reaches onError; the others still run', () => {
    const s = new Subscribers<string>();
    const seen: string[] = [];
    const errors: unknown[] = [];
    s.add(() => {
      throw new Error('bad listener');
    });
    s.add((e) => seen.push(e));
    s.emit('x', (err) => errors.push(err));
    assert.deepEqual(seen, ['x']);
    assert.match(String(errors[0]), /bad listener/);
  });
});
