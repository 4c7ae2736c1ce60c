// Pushes through the proxy (GET info/refs?service=git-receive-pack, POST
// git-receive-pack): refused with 403 unless the server forwards them
// (--git-allow-push-through); then run as receive-pack on a file://
// upstream, or forwarded to an HTTP(S) one with the client's own
// credentials (never hoard's tokens). A push that went through makes the
// mirror stale (invalidate), so the next read fetches.

import { PassThrough, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HoardError, redactSecrets } from '../core/errors.ts';
import { header, httpRequest } from '../http/http-client.ts';
import { abortOnDisconnect, pipeChild } from './git-child-response.ts';
import { NO_CACHE } from './git-http-replies.ts';
import { spawnGit } from './git-process.ts';
import { requestBody } from './git-request-body.ts';
import type { MirrorManager } from './mirror-manager.ts';
import { FLUSH_PKT, pktLine } from './pkt-line.ts';
import { parseRepoPath, Upstreams, upstreamHttpTarget } from './upstreams.ts';

export interface PushThroughOptions {
  /** Forward pushes to the upstream instead of refusing them with 403. */
  allowPushThrough?: boolean;
  /**
   * Throws when the request may not push to the repo `key` (the server checks
   * the `write` scope and the token's ref prefixes against `git/<key>`, see
   * pushScopeName); default: anyone who may read.
   */
  authorizePush?: (request: FastifyRequest, key: string) => void;
  /**
   * Push-through may forward the client's own HTTP Basic credentials to the
   * upstream: only when the server has no tokens file (else they are a hoard token).
   */
  forwardClientBasicAuth?: boolean;
}

/** Answers a receive-pack request: its advertisement (`advertise`) or the push itself. */
export async function receivePack(
  mirrors: Pick<MirrorManager, 'metrics' | 'upstreamOf' | 'invalidate'>,
  opts: PushThroughOptions,
  request: FastifyRequest,
  reply: FastifyReply,
  repo: string,
  advertise: boolean,
) {
  mirrors.metrics.requests.inc({ service: 'receive-pack' });
  if (!opts.allowPushThrough) {
    let upstream = '';
    try {
      upstream = ` (${redactSecrets(mirrors.upstreamOf(repo))})`;
    } catch {}
    throw new HoardError(
      'HOARD_EFORBIDDEN',
      `hoard is a read-only git mirror: pushes are not accepted; push to the upstream${upstream} directly`,
      { hint: 'or start hoard serve with --git-allow-push-through to forward pushes upstream' },
    );
  }
  opts.authorizePush?.(request, parseRepoPath(repo).key);
  const upstream = mirrors.upstreamOf(repo);
  const local = Upstreams.localPath(upstream);
  if (local !== null) {
    // A file:// upstream: run receive-pack on it, like git http-backend would.
    const ac = abortOnDisconnect(reply);
    const args = advertise
      ? ['receive-pack', '--stateless-rpc', '--advertise-refs', local]
      : ['receive-pack', '--stateless-rpc', local];
    const g = spawnGit(args, { signal: ac.signal, stdin: !advertise });
    const out = new PassThrough();
    if (advertise) out.write(Buffer.concat([pktLine('# service=git-receive-pack\n'), FLUSH_PKT]));
    else {
      const body = requestBody(request);
      if (body.errored) g.kill();
      body.on('error', () => g.kill());
      body.pipe(g.child.stdin!);
      // Registered before pipeChild's reaction on the same promise, which ends the answer: the
      // mirror is stale before the client learns that its push went through.
      void g.done.then((e) => {
        if (e.code === 0) mirrors.invalidate(repo);
      });
    }
    pipeChild(g, out, request, repo, 'receive-pack');
    reply
      .code(200)
      .headers(NO_CACHE)
      .header(
        'content-type',
        advertise ? 'application/x-git-receive-pack-advertisement' : 'application/x-git-receive-pack-result',
      );
    return reply.send(out);
  }
  // An HTTP(S) upstream: forward the request, credentials included.
  const target = upstreamHttpTarget(upstream);
  const url = new URL(
    advertise ? `${target.url}/info/refs?service=git-receive-pack` : `${target.url}/git-receive-pack`,
  );
  const headers: Record<string, string> = {};
  for (const h of [
    'authorization',
    'content-type',
    'content-encoding',
    'git-protocol',
    'user-agent',
    'accept',
  ]) {
    const v = request.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  // hoard's own credentials never go upstream: with a tokens file every Authorization a
  // request may carry here is a hoard token (Bearer, or Basic with the token as the
  // password), so only loopback mode forwards a client's Basic credentials.
  if (headers.authorization && (!opts.forwardClientBasicAuth || !/^basic\s/i.test(headers.authorization)))
    delete headers.authorization;
  if (target.headers.authorization && !headers.authorization)
    headers.authorization = target.headers.authorization;
  // Through the one HTTP client; every status is the upstream's answer to pass on, and a
  // push is never retried (its body streams once) nor redirected.
  const res = await httpRequest(advertise ? 'GET' : 'POST', url, {
    headers,
    body: advertise ? undefined : (request.body as Readable),
    accept: 'any',
    retries: 0,
  });
  if (!advertise && res.status < 300) {
    mirrors.invalidate(repo);
    // The upstream moves its refs while it streams the report after these headers: a fetch
    // started in between would read the old ones. Again at the report's end, before the
    // client sees it (this listener runs before the pipe's end handler, added by send).
    res.body.once('end', () => mirrors.invalidate(repo));
  }
  reply.code(res.status).headers(NO_CACHE);
  for (const h of ['content-type', 'www-authenticate', 'location']) {
    const v = header(res, h);
    if (v) reply.header(h, v);
  }
  return reply.send(res.body);
}

/**
 * The name a push to the repo `key` is authorized as: `git/<key>` (e.g.
 * `git/gh/acme/app`). A token may push through the proxy when it has the
 * `write` scope and its ref prefixes (if any) cover that name, by the same
 * whole-segment rule as ref writes: `refs = ["git/"]` allows pushes to every
 * repo, `["git/gh/acme"]` to the repos under gh/acme, `["cache/"]` to none.
 */
export function pushScopeName(key: string): string {
  return `git/${key}`;
}
