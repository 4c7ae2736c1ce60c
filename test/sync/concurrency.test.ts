// --concurrency N bounds the transfers of one push (uploads) and one pull
// (downloads): a remote that holds each transfer open for a while counts
// how many are in flight at once.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { openRemote, type Remote } from '../../src/remote/remote.ts';
import { pull } from '../../src/sync/pull.ts';
import { push } from '../../src/sync/push.ts';
import { hoard, tempDir, writeFiles } from './helpers.ts';

/** The remote with blob writes and reads tracked: the most in flight at once. */
function tracking(remote: Remote): { remote: Remote; max: () => number; reset: () => void } {
  let now = 0;
  let max = 0;
  const enter = () => {
    now++;
    max = Math.max(max, now);
  };
  const blobs = new Proxy(remote.blobs, {
    get(t, prop, recv) {
      const v = Reflect.get(t, prop, recv);
      if (prop === 'write')
        return async (...args: unknown[]) => {
          enter();
          try {
            // Give the other workers turns to start theirs while this one is open.
            for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
            return await (v as (...a: unknown[]) => Promise<unknown>).apply(t, args);
          } finally {
            now--;
          }
        };
      if (prop === 'read')
        return async (...args: unknown[]) => {
          enter();
          const s = (await (v as (...a: unknown[]) => Promise<NodeJS.ReadableStream>).apply(
            t,
            args,
          )) as never;
          finished(s).then(
            () => now--,
            () => now--,
          );
          return s;
        };
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  const wrapped = new Proxy(remote, { get: (t, p, r) => (p === 'blobs' ? blobs : Reflect.get(t, p, r)) });
  return { remote: wrapped, max: () => max, reset: () => (max = 0) };
}

describe('--concurrency', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let remote: Remote;
  before(async () => {
    tmp = await tempDir('hoard-conc-');
    remote = await openRemote(join(tmp.dir, 'r'), { create: true });
    const files: Record<string, string> = {};
    for (let i = 0; i < 24; i++) files[`f${i}.txt`] = `file ${i}\n`.repeat(1000);
    await writeFiles(join(tmp.dir, 'src'), files);
  });
  after(async () => {
    await remote.close();
    await tmp.cleanup();
  });

  it('bounds parallel uploads and downloads', async () => {
    const t = tracking(remote);
    await push({ dir: join(tmp.dir, 'src'), remote: t.remote, ref: 'c/main', concurrency: 2 });
    assert.ok(t.max() >= 1 && t.max() <= 2, `uploads in flight: ${t.max()}`);
    t.reset();
    await pull({ dir: join(tmp.dir, 'one'), remote: t.remote, ref: 'c/main', concurrency: 1 });
    assert.equal(t.max(), 1, 'downloads one at a time');
    t.reset();
    await pull({ dir: join(tmp.dir, 'many'), remote: t.remote, ref: 'c/main', concurrency: 6 });
    assert.ok(t.max() > 1 && t.max() <= 6, `downloads in flight: ${t.max()}`);
  });

  it('the CLI refuses a concurrency that is not a whole number ≥ 1', async () => {
    const r = await hoard([
      'pull',
      join(tmp.dir, 'r'),
      join(tmp.dir, 'x'),
      '--ref',
      'c/main',
      '--concurrency',
      '0',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--concurrency.*expected a whole number of at least 1/);
  });
});
