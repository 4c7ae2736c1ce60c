// A hostile snapshot server for restore tests: it answers the snapshot URLs
// with an archive of the test's choosing (any bytes, under a digest that
// matches them, so only restore's own checks can refuse it) and passes every
// other request (the git protocol) through to a real hoard server, so the
// restore's fetch is real. Also readTar: a tar's entries, to craft from.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import tar from 'tar-stream';
import type { Entry } from '../../archive/helpers.ts';

export interface HostileSnapshotServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  close(): Promise<void>;
}

/** Serves `archive()` as the snapshot of `commit()` on `ref()`; the rest goes to `realUrl`. */
export async function startHostileSnapshotServer(opts: {
  realUrl: string;
  archive: () => Buffer;
  commit: () => string;
  ref: () => string;
}): Promise<HostileSnapshotServer> {
  const real = new URL(opts.realUrl);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const archive = opts.archive();
    const digest = createHash('sha256').update(archive).digest('hex');
    if (req.url?.includes('/snapshot.tar.zst')) {
      res.writeHead(200, {
        etag: `"${digest}"`,
        'content-location': `/v1/blobs/sha256/${digest}`,
        'x-hoard-commit': opts.commit(),
        'x-hoard-ref': opts.ref(),
        'content-length': archive.byteLength,
      });
      res.end(req.method === 'HEAD' ? undefined : archive);
      return;
    }
    if (req.url?.startsWith('/v1/blobs/')) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const s = Number(m?.[1] ?? 0);
      const e = Math.min(archive.byteLength - 1, Number(m?.[2] ?? archive.byteLength - 1));
      res.writeHead(206, {
        etag: `"${digest}"`,
        'content-range': `bytes ${s}-${e}/${archive.byteLength}`,
        'content-length': e - s + 1,
      });
      res.end(archive.subarray(s, e + 1));
      return;
    }
    const up = request(
      { host: real.hostname, port: real.port, method: req.method, path: req.url, headers: req.headers },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Every entry of a tar (header and body), in order. */
export async function readTar(buf: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const ex = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      stream.on('end', () => {
        out.push({ ...header, body: Buffer.concat(chunks) });
        next();
      });
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  ex.end(buf);
  await done;
  assert.ok(out.length > 0, 'an empty tar');
  return out;
}
