// A PUT whose connection is cut before its Content-Length bytes arrived,
// returning once the server has given the upload up: the spool file of the
// upload appeared (the body is being stored) and then went away (put()
// finished), so "nothing was stored" is checked after the fact, not raced.

import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { TestServer } from '../../server/helpers.ts';
import { waitUntil } from '../../support/wait.ts';

/**
 * `Content-Length` 50000 (under the tests' --max-blob-size), 1000 bytes sent.
 * `spooled`: how many files the upload has in its spool (default: the cache
 * entries' spool).
 */
export async function cutUpload(
  srv: TestServer,
  path: string,
  token: string,
  spooled: () => Promise<number> = async () =>
    (await readdir(join(srv.dataDir, 'tmp', 'cache-spool')).catch(() => [])).length,
): Promise<void> {
  const { port } = new URL(srv.url);
  const sock = connect(Number(port), '127.0.0.1');
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.on('error', () => {});
  sock.write(
    `PUT ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
      'Content-Type: application/octet-stream\r\nContent-Length: 50000\r\n\r\n',
  );
  sock.write(Buffer.alloc(1000, 7));
  await waitUntil(async () => (await spooled()) > 0, 'the upload to reach the spool');
  sock.destroy();
  await closed;
  await waitUntil(async () => (await spooled()) === 0, 'the server to give the upload up');
}
