// The Clock seam: raceTimeout on an injected clock times out only when that
// clock says so, and cancels its sleep when the raced promise wins.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { raceTimeout, systemClock } from '../../src/core/clock.ts';
import { ManualClock } from '../support/manual-clock.ts';

describe('clock', () => {
  test('raceTimeout: the value when the promise settles first, the sleep cancelled', async () => {
    const clock = new ManualClock();
    let resolve!: (v: string) => void;
    const p = new Promise<string>((r) => {
      resolve = r;
    });
    const race = raceTimeout(p, 1000, clock);
    assert.equal(clock.sleeping, 1);
    resolve('done');
    assert.equal(await race, 'done');
    assert.equal(clock.sleeping, 0, 'no sleep left behind');
  });

  test('raceTimeout: timeout exactly when the injected clock passes the bound', async () => {
    const clock = new ManualClock();
    const never = new Promise<string>(() => {});
    let settled: string | undefined;
    const race = raceTimeout(never, 1000, clock).then((v) => {
      settled = v;
    });
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, undefined, 'not before the bound');
    clock.advance(1);
    await race;
    assert.equal(settled, 'timeout');
  });

  test('raceTimeout: a rejection passes through', async () => {
    await assert.rejects(raceTimeout(Promise.reject(new Error('boom')), 1000, systemClock), /boom/);
  });

  test('systemClock is monotonic', () => {
    const a = systemClock.now();
    assert.ok(systemClock.now() >= a);
  });
});
