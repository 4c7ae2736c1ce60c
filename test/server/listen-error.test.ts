// `hoard serve` on an address it cannot listen on (issue 11): a clear
// HOARD_ELISTEN naming the address, with a hint, a non-zero exit, and
// nothing left running (the stores, timers and git children it started are
// closed before it exits).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BIN, tempDir } from '../sync/helpers.ts';

function occupy(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (typeof addr !== 'object' || addr === null) return reject(new Error('no address'));
      resolve({ server, port: addr.port });
    });
  });
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describe('hoard serve: address in use', () => {
  it('exits non-zero with HOARD_ELISTEN, the address and a hint; nothing of it keeps running', async () => {
    const tmp = await tempDir('hoard-listen-');
    const { server, port } = await occupy();
    try {
      // Its own process group, so whatever it started can be found afterwards.
      const child = spawn(
        process.execPath,
        [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', join(tmp.dir, 'data')],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.stdout.resume();
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c))),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            process.kill(-child.pid!, 'SIGKILL');
            reject(new Error(`hoard serve did not exit: ${stderr}`));
          }, 30_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(code, 1, stderr);
      assert.match(
        stderr,
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\[HOARD_ELISTEN\\]`),
      );
      assert.match(stderr, /hint: .*--listen/);
      assert.doesNotMatch(stderr, /HOARD_EINTERNAL|EADDRINUSE: address already in use 127/);
      assert.equal(groupAlive(child.pid!), false, 'no process of its group is left');
    } finally {
      server.close();
      await tmp.cleanup();
    }
  });
});
