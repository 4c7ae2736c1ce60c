// The primary's answer to the most common request of a cache, a plain
// `GET /v1/blobs/sha256/<hex>` of a small blob, before fastify routes it:
// measured on a 4 KiB disk-tier GET, fastify's routing, hooks and reply
// machinery cost about a third of the request (a plain node:http handler
// answering the same request: ~100 µs of CPU against ~145 µs; see
// docs/benchmarks.md, Server, 2026-12-07). It runs in front of fastify as the
// server's request listener (app.ts, serverFactory) and answers only when
// the answer needs no waiting and no decision fastify's route would make
// differently:
//
// - GET without a body, If-None-Match or Range (those take the route: 304,
//   206 and 416 stay in one place), of a URL that is exactly a blob URL;
// - a client whose read is allowed with nothing to count (auth.ts,
//   readAllowedQuietly): an invalid token or a locked-out address takes the
//   route, which refuses and counts it once;
// - a blob the tiers hand over synchronously (TieredBlobStore.openSync: a
//   memory-tier copy or a small, trusted or freshly hashed disk file); a
//   miss, a large blob or a slow disk take the route;
// - not while the server drains (fastify answers 503 then).
//
// What it sends is what the route sends (routes/blobs.ts): same status and
// headers, the same request line in the log, the same metrics.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { Digest } from '../core/digest.ts';
import { type AuthPolicy, readAllowedQuietly } from './auth.ts';
import type { ServerState } from './context.ts';
import { blobBaseHeaderList, blobEtag } from './http-range.ts';
import type { ServerMetrics } from './metrics.ts';
import { requestLineWriter } from './request-log.ts';
import type { TieredBlobStore } from './tiered-blob-store.ts';

/** The blob route's pattern, as fastify reports it (the route label of /metrics). */
export const BLOB_ROUTE = '/v1/blobs/sha256/:hex';
/** A blob URL (a query string names the same blob, as fastify's router ignores it). */
export const BLOB_URL = /^\/v1\/blobs\/sha256\/([0-9a-f]{64})(?:\?.*)?$/;

export interface BlobFastPathDeps {
  blobs: TieredBlobStore;
  auth: AuthPolicy;
  state: ServerState;
  metrics: ServerMetrics;
  /** The request line at info; undefined when the level does not log requests. */
  log: FastifyBaseLogger | undefined;
}

/** A request listener that answers what it can and returns false for everything else (fastify's then). */
export function blobFastPath(d: BlobFastPathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  let seq = 0;
  const line = d.log ? requestLineWriter(d.log) : undefined;
  return (req, res) => {
    if (req.method !== 'GET' || d.state.draining) return false;
    const h = req.headers;
    if (
      h.range !== undefined ||
      h['if-none-match'] !== undefined ||
      h['content-length'] !== undefined ||
      h['transfer-encoding'] !== undefined
    )
      return false;
    const m = BLOB_URL.exec(req.url ?? '');
    if (!m) return false;
    if (!readAllowedQuietly(d.auth, req.socket.remoteAddress, h.authorization, req.socket)) return false;
    const t0 = performance.now();
    const digest: Digest = `sha256:${m[1]}`;
    let handle: ReturnType<TieredBlobStore['openSync']>;
    try {
      handle = d.blobs.openSync(digest);
    } catch {
      return false; // an unexpected file error: the route reports it
    }
    if (handle === 'async' || !handle.bytes) return false;
    const size = handle.size;
    // A flat list: Node's fast way to writeHead (no header object to walk, no setHeader per name).
    const headers = ['x-hoard-tier', handle.tier, ...blobBaseHeaderList(blobEtag(m[1]))];
    headers.push('content-type', 'application/octet-stream', 'content-length', String(size));
    res.writeHead(200, headers);
    res.end(handle.bytes(0, size));
    const tier = handle.tier;
    res.once('finish', () => {
      const ms = performance.now() - t0;
      d.metrics.observeRequest('GET', BLOB_ROUTE, 200, ms / 1000, 0, size);
      line?.(`f-${++seq}`, {
        method: 'GET',
        url: req.url ?? '',
        status: 200,
        ms,
        bytesIn: 0,
        bytesOut: size,
        tier,
        client: req.socket.remoteAddress,
      });
    });
    return true;
  };
}
