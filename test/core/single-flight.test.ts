import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SingleFlight } from '../../src/core/single-flight.ts';

describe('single-flight', () => {
  it('100 concurrent callers of one key cause exactly one execution', async () => {
    const sf = new SingleFlight<string, number>();
    let runs = 0;
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        sf.do('k', async () => {
          runs++;
          await sleep(20);
          return 42;
        }),
      ),
    );
    assert.equal(runs, 1);
    assert.ok(results.every((r) => r === 42));
    assert.equal(sf.coalesced, 99);
    assert.equal(sf.size, 0);
  });

  it('a failure reaches every waiter and the next call retries', async () => {
    const sf = new SingleFlight<string, string>();
    let runs = 0;
    const failing = Array.from({ length: 10 }, () =>
      sf.do('k', async () => {
        runs++;
        await sleep(5);
        throw new Error('upstream down');
      }),
    );
    const settled = await Promise.allSettled(failing);
    assert.equal(runs, 1);
    assert.ok(settled.every((s) => s.status === 'rejected' && /upstream down/.test(String(s.reason))));
    assert.equal(await sf.do('k', async () => `ok after ${++runs}`), 'ok after 2');
  });

  it('a synchronous throw is delivered as a rejection and frees the key', async () => {
    const sf = new SingleFlight<string, number>();
    await assert.rejects(
      sf.do('k', () => {
        throw new Error('sync');
      }),
    );
    assert.equal(await sf.do('k', async () => 1), 1);
  });

  it('a caller arriving after settlement starts a new execution (no stale result)', async () => {
    const sf = new SingleFlight<string, number>();
    let n = 0;
    const first = await sf.do('k', async () => ++n);
    // Join from inside the first call's continuation: the key must already be free.
    const second = await sf.do('k', async () => ++n);
    assert.deepEqual([first, second], [1, 2]);
  });

  it('different keys run independently', async () => {
    const sf = new SingleFlight<number, number>();
    const results = await Promise.all([1, 2, 3].map((k) => sf.do(k, async () => k * 10)));
    assert.deepEqual(results, [10, 20, 30]);
  });
});
