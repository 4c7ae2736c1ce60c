// The background scrub (src/server/scrub.ts): one pass re-hashes every disk
// blob (trusted ones too) at the configured rate — checked on an injected
// clock, not by timing — and quarantines a planted corruption the way a
// failed read does; start/close run and stop the passes; config parses the
// rate.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { DEFAULTS } from '../../src/core/defaults.ts';
import { type Digest, sha256 } from '../../src/core/digest.ts';
import { resolveConfig } from '../../src/server/config.ts';
import { Scrubber } from '../../src/server/scrub.ts';
import { type CorruptSource, TieredBlobStore } from '../../src/server/tiered-blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { MemoryBlobStore } from '../../src/store/memory-blob-store.ts';

const MiB = 1024 * 1024;

async function tieredStore() {
  const dir = await mkdtemp(join(tmpdir(), 'hoard-scrub-'));
  const corrupt: { digest: Digest; source: CorruptSource }[] = [];
  const blobs = new TieredBlobStore({
    memory: new MemoryBlobStore({ maxBytes: 64 * MiB }),
    disk: await FsBlobStore.open(dir),
    hooks: { corrupt: (digest, source) => corrupt.push({ digest, source }) },
  });
  return { dir, blobs, corrupt, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A clock that only moves when the scrub sleeps. */
function fakeClock() {
  const c = {
    t: 1_000_000,
    slept: 0,
    now: () => c.t,
    sleep: async (ms: number) => {
      c.t += ms;
      c.slept += ms;
    },
  };
  return c;
}

describe('background scrub', () => {
  it('a pass hashes every disk blob at the configured rate and quarantines a planted corruption', async () => {
    const s = await tieredStore();
    try {
      const sizes = [0, 1, 1000, 64 * 1024, 300 * 1024, 1 * MiB, 2 * MiB + 7, 90_000];
      const datas = sizes.map((n) => randomBytes(n));
      for (const d of datas) await s.blobs.write(sha256(d), Readable.from([d]), { size: d.length });
      const total = sizes.reduce((a, b) => a + b, 0);
      // Plant one bit flip in a blob the store wrote (and so trusts).
      const bad = datas[5];
      const badDigest = sha256(bad);
      const fh = await open(s.blobs.disk.pathOf(badDigest), 'r+');
      await fh.write(Buffer.from([bad[500_000] ^ 0x01]), 0, 1, 500_000);
      await fh.close();

      const clock = fakeClock();
      const rate = 1 * MiB;
      let counted = 0;
      const scrub = new Scrubber(s.blobs, {
        bytesPerSecond: rate,
        now: clock.now,
        sleep: clock.sleep,
        onBytes: (n) => {
          counted += n;
        },
      });
      const report = await scrub.runPass();
      assert.equal(report.blobsChecked, sizes.length);
      assert.equal(report.bytesChecked, total);
      assert.equal(counted, total, 'every byte hashed, trusted files included');
      assert.deepEqual(report.corrupt, [badDigest]);
      assert.deepEqual(s.corrupt, [{ digest: badDigest, source: 'scrub' }]);
      // Paced: all but the last chunk had to wait for its turn at 1 MiB/s.
      const min = ((total - DEFAULTS.streamChunkBytes) * 1000) / rate;
      const max = (total * 1000) / rate;
      assert.ok(clock.slept >= min && clock.slept <= max, `slept ${clock.slept} ms, expected ${min}..${max}`);
      // Quarantined like a failed read: gone from the disk tier, kept in quarantine/.
      assert.equal(await s.blobs.disk.has(badDigest), false);
      assert.deepEqual(await s.blobs.missing([badDigest, sha256(datas[0])]), [badDigest]);
      assert.equal((await readdir(join(s.dir, 'quarantine'))).length, 1);
      // The next pass finds the rest sound.
      const again = await scrub.runPass();
      assert.equal(again.blobsChecked, sizes.length - 1);
      assert.deepEqual(again.corrupt, []);
      assert.equal(scrub.passes, 2);
    } finally {
      await s.cleanup();
    }
  });

  it('start() runs passes after the start delay; close() stops them', async () => {
    const s = await tieredStore();
    try {
      const d = randomBytes(10_000);
      await s.blobs.write(sha256(d), Readable.from([d]));
      const waits: number[] = [];
      let passDone!: () => void;
      const firstPass = new Promise<void>((r) => {
        passDone = r;
      });
      const scrub = new Scrubber(s.blobs, {
        bytesPerSecond: 1 * MiB,
        startDelayMs: 123,
        passPauseMs: 456,
        now: () => 0,
        sleep: (ms, signal) => {
          waits.push(ms);
          if (ms !== 456) return Promise.resolve();
          passDone();
          // The pause between passes lasts until close() aborts it.
          return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
        },
      });
      scrub.start();
      await firstPass;
      assert.equal(scrub.passes, 1);
      assert.equal(waits[0], 123);
      await scrub.close();
      assert.equal(scrub.passes, 1);
    } finally {
      await s.cleanup();
    }
  });

  it('--scrub-rate: a size per second, 0 turns it off, default documented in defaults.ts', () => {
    assert.equal(resolveConfig({}).scrubBytesPerSecond, DEFAULTS.scrubBytesPerSecond);
    assert.equal(resolveConfig({ scrubRate: '8MiB/s' }).scrubBytesPerSecond, 8 * MiB);
    assert.equal(resolveConfig({ scrubRate: '64k' }).scrubBytesPerSecond, 64 * 1024);
    assert.equal(resolveConfig({ scrubRate: '0' }).scrubBytesPerSecond, 0);
    assert.throws(() => resolveConfig({ scrubRate: 'fast' }), /scrub-rate/);
    assert.throws(() => new Scrubber({} as TieredBlobStore, { bytesPerSecond: 0 }), /more than 0/);
  });
});
