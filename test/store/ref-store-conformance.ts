// The RefStore conformance suite: every backend runs exactly these tests.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.ts';
import { isHoardError } from '../../src/core/errors.ts';
import type { RefStore } from '../../src/store/ref-store.ts';

export interface RefStoreFixture {
  store: RefStore;
  cleanup?: () => Promise<void>;
}

export function refStoreConformance(name: string, make: () => Promise<RefStoreFixture>): void {
  describe(`RefStore conformance: ${name}`, () => {
    const withStore = (fn: (store: RefStore) => Promise<void>) => async () => {
      const fx = await make();
      try {
        await fn(fx.store);
      } finally {
        await fx.store.close?.();
        await fx.cleanup?.();
      }
    };
    const d1 = sha256('one');
    const d2 = sha256('two');
    const d3 = sha256('three');

    it(
      'creates with "must not exist" and reads back',
      withStore(async (store) => {
        assert.equal(await store.get('team/app/main'), undefined);
        const v = await store.set('team/app/main', d1, null);
        assert.equal(v.target, d1);
        assert.ok(v.version.length > 0);
        assert.deepEqual(await store.get('team/app/main'), v);
      }),
    );

    it(
      'refuses create when the ref exists',
      withStore(async (store) => {
        await store.set('a', d1, null);
        await assert.rejects(store.set('a', d2, null), (e) => isHoardError(e, 'HOARD_EREF_CONFLICT'));
        assert.equal((await store.get('a'))?.target, d1);
      }),
    );

    it(
      'compare-and-set succeeds on the current version and fails on a stale one',
      withStore(async (store) => {
        const v1 = await store.set('r', d1, null);
        const v2 = await store.set('r', d2, v1.version);
        assert.notEqual(v2.version, v1.version);
        await assert.rejects(store.set('r', d3, v1.version), (e) => isHoardError(e, 'HOARD_EREF_CONFLICT'));
        assert.equal((await store.get('r'))?.target, d2);
        // Writing the same target again still changes the version.
        const v3 = await store.set('r', d2, v2.version);
        assert.notEqual(v3.version, v2.version);
      }),
    );

    it(
      'refuses CAS with a version on an absent ref',
      withStore(async (store) => {
        const v = await store.set('x', d1, null);
        await store.delete('x', v.version);
        await assert.rejects(store.set('x', d2, v.version), (e) => isHoardError(e, 'HOARD_EREF_CONFLICT'));
      }),
    );

    it(
      'deletes only at the expected version',
      withStore(async (store) => {
        const v1 = await store.set('del/me', d1, null);
        const v2 = await store.set('del/me', d2, v1.version);
        await assert.rejects(store.delete('del/me', v1.version), (e) =>
          isHoardError(e, 'HOARD_EREF_CONFLICT'),
        );
        await store.delete('del/me', v2.version);
        assert.equal(await store.get('del/me'), undefined);
        await assert.rejects(store.delete('del/me', v2.version), (e) =>
          isHoardError(e, 'HOARD_EREF_NOT_FOUND'),
        );
      }),
    );

    it(
      'lists by prefix, sorted',
      withStore(async (store) => {
        await store.set('cache/b', d1, null);
        await store.set('cache/a/x', d2, null);
        await store.set('team/c', d3, null);
        const names = async (prefix?: string) => {
          const out: string[] = [];
          for await (const r of store.list(prefix)) out.push(r.name);
          return out;
        };
        assert.deepEqual(await names('cache/'), ['cache/a/x', 'cache/b']);
        assert.deepEqual(await names(), ['cache/a/x', 'cache/b', 'team/c']);
        assert.deepEqual(await names('nothing/'), []);
        for await (const r of store.list('team/')) assert.equal(r.target, d3);
      }),
    );

    it(
      'rejects invalid names',
      withStore(async (store) => {
        for (const bad of ['', '../x', 'a//b', '/abs', 'a/./b', 'a\\b', 'with space', 'x.lock']) {
          await assert.rejects(
            store.set(bad, d1, null),
            (e) => isHoardError(e, 'HOARD_EREF_NAME_INVALID'),
            bad,
          );
        }
      }),
    );

    it(
      'sixteen concurrent create-if-absent writers: exactly one wins',
      withStore(async (store) => {
        const targets = Array.from({ length: 16 }, (_, i) => sha256(`w${i}`));
        const results = await Promise.allSettled(targets.map((t) => store.set('race/create', t, null)));
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1);
        for (const r of results) {
          if (r.status === 'rejected')
            assert.ok(isHoardError(r.reason, 'HOARD_EREF_CONFLICT'), String(r.reason));
        }
        assert.equal(
          (await store.get('race/create'))?.target,
          (won[0] as PromiseFulfilledResult<{ target: string }>).value.target,
        );
      }),
    );

    it(
      'concurrent read-modify-write loses no update',
      withStore(async (store) => {
        await store.set('counter', sha256('0'), null);
        const values = new Map<string, number>([[sha256('0'), 0]]);
        const bump = async () => {
          for (;;) {
            const cur = await store.get('counter');
            assert.ok(cur);
            const n = (values.get(cur.target) ?? Number.NaN) + 1;
            const next = sha256(String(n));
            values.set(next, n);
            try {
              await store.set('counter', next, cur.version);
              return;
            } catch (e) {
              if (!isHoardError(e, 'HOARD_EREF_CONFLICT')) throw e;
            }
          }
        };
        await Promise.all(Array.from({ length: 8 }, () => Promise.all([bump(), bump()])));
        assert.equal(values.get((await store.get('counter'))!.target), 16);
      }),
    );
  });
}
