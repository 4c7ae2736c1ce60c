// A PUT whose connection is cut before its Content-Length bytes arrived,
// returning once the server has given the upload up: the tool's
// `hoard_cache_uploads_in_flight` gauge rose (the body is being received)
// and fell back (put() finished), so "nothing was stored" is checked after
// the fact, not raced. Watching the gauge rather than a spool directory
// keeps the check valid for both ways a body is received (small bodies in
// memory, larger ones through a spool file).

import { connect } from 'node:net';
import type { TestServer } from '../server/helpers.ts';
import { waitUntil } from './wait.ts';

export interface CutUploadOptions {
  /** The keyed-cache tool whose gauge to watch (turbo, nx, gradle, …). */
  tool?: string;
  /** Instead of a tool's gauge: how many uploads are being received (e.g. files in a spool). */
  inFlight?: () => Promise<number>;
  /** Bearer token for the PUT and for /metrics. */
  token?: string;
  contentType?: string;
  /** Declared length (default 50000, under the tests' --max-blob-size). */
  contentLength?: number;
  /** Bytes actually sent before the cut (default 1000). */
  sent?: number;
}

export async function uploadsInFlight(srv: TestServer, tool: string, token?: string): Promise<number> {
  const res = await fetch(`${srv.url}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`/metrics: ${res.status} ${text}`);
  const line = text.split('\n').find((l) => l.startsWith(`hoard_cache_uploads_in_flight{tool="${tool}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

export async function cutUpload(srv: TestServer, path: string, opts: CutUploadOptions): Promise<void> {
  const { tool, inFlight } = opts;
  const receiving =
    inFlight ??
    (() => {
      if (tool === undefined) throw new Error('cutUpload: give a tool or inFlight');
      return uploadsInFlight(srv, tool, opts.token);
    });
  const { port } = new URL(srv.url);
  const sock = connect(Number(port), '127.0.0.1');
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.on('error', () => {});
  const auth = opts.token ? `Authorization: Bearer ${opts.token}\r\n` : '';
  sock.write(
    `PUT ${path} HTTP/1.1\r\nHost: x\r\n${auth}` +
      `Content-Type: ${opts.contentType ?? 'application/octet-stream'}\r\n` +
      `Content-Length: ${opts.contentLength ?? 50_000}\r\n\r\n`,
  );
  sock.write(Buffer.alloc(opts.sent ?? 1000, 7));
  await waitUntil(async () => (await receiving()) > 0, 'the upload to be received');
  sock.destroy();
  await closed;
  await waitUntil(async () => (await receiving()) === 0, 'the server to give the upload up');
}
