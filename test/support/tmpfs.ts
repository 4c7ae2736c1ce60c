// A small tmpfs for disk-full tests, mounted on a fresh temp folder. It
// needs root (or CAP_SYS_ADMIN), as the test command does anyway (it
// installs and starts its services with apt); without it the tests fail
// saying so, rather than skip and hide the gap.

import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Tmpfs {
  dir: string;
  unmount(): Promise<void>;
}

/** Mounts a tmpfs of `size` (mount(8) syntax, e.g. `2m`); throws, saying why, when it cannot. */
export async function mountTmpfs(size: string): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), 'hoard-tmpfs-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    const why = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
    throw new Error(`disk-full tests need a tmpfs, which needs root (or CAP_SYS_ADMIN): ${why}`);
  }
  return {
    dir,
    async unmount() {
      await run('umount', ['-l', dir]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Writes `path` until the file system is full (ENOSPC); resolves with the bytes written. */
export async function fillUp(path: string): Promise<number> {
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let n = 0;
  try {
    for (;;) {
      const { bytesWritten } = await fh.write(chunk);
      n += bytesWritten;
      if (bytesWritten === 0) break;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return n;
}

/** Open descriptors of this process. */
export async function openFds(): Promise<string[]> {
  return (await readdir('/proc/self/fd')).sort();
}
