import assert from 'node:assert/strict';
import { access, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HoardError, isHoardError } from '../../src/core/errors.ts';
import { withLockFile } from '../../src/store/lock-file.ts';

const opts = (timeoutMs = 300) => ({
  timeoutMs,
  onTimeout: (owner: string) => new HoardError('HOARD_ELOCK_TIMEOUT', `held by ${owner}`),
});

describe('lock files', () => {
  it('serialises holders in one process and removes the lock afterwards', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-lock-'));
    try {
      const lock = join(dir, 'x.lock');
      let inside = 0;
      let most = 0;
      await Promise.all(
        Array.from({ length: 5 }, () =>
          withLockFile(
            lock,
            async () => {
              most = Math.max(most, ++inside);
              await new Promise((r) => setTimeout(r, 5));
              inside--;
            },
            opts(5000),
          ),
        ),
      );
      assert.equal(most, 1);
      await assert.rejects(access(lock));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes over a lock of a dead process and an empty lock left by a kill', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-lock-'));
    try {
      const lock = join(dir, 'x.lock');
      await writeFile(lock, `${hostname()} 4194305`); // above pid_max: not running
      assert.equal(await withLockFile(lock, async () => 1, opts()), 1);
      await writeFile(lock, ''); // killed between create and write
      const old = new Date(Date.now() - 5000);
      await utimes(lock, old, old);
      assert.equal(await withLockFile(lock, async () => 2, opts()), 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('waits for a live owner, then fails with the caller’s error naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hoard-lock-'));
    try {
      const lock = join(dir, 'x.lock');
      await writeFile(lock, `${hostname()} ${process.pid} live`);
      await assert.rejects(
        withLockFile(lock, async () => 0, opts()),
        (e) => isHoardError(e, 'HOARD_ELOCK_TIMEOUT') && e.message.includes(`${process.pid} live`),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
