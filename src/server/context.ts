// What route plugins share: the stores, the auth policy, metrics and the
// lifecycle state. buildServer (app.ts) creates one per server.

import type { FastifyRequest } from 'fastify';
import { HoardError } from '../core/errors.ts';
import type { RefStore } from '../store/ref-store.ts';
import {
  type AuthPolicy,
  authorize,
  boundToRefPrefixes,
  mayReadRef,
  type Principal,
  principalOf,
  refReadForbidden,
  type Scope,
} from './auth.ts';
import type { ServerConfig } from './config.ts';
import type { ServerMetrics } from './metrics.ts';
import type { RefExpiry } from './ref-expiry.ts';
import type { TieredBlobStore } from './tiered-blob-store.ts';

export interface ServerState {
  /** Stores open and the socket listening. */
  ready: boolean;
  /** SIGTERM received: /readyz answers 503, in-flight requests finish. */
  draining: boolean;
}

export interface ServerContext {
  config: ServerConfig;
  blobs: TieredBlobStore;
  refs: RefStore;
  auth: AuthPolicy;
  metrics: ServerMetrics;
  state: ServerState;
  /** Expiry of unused cache refs, when --cache-ref-ttl is set. */
  refExpiry?: RefExpiry;
}

/** Route-level auth requirement, set as `config: { scope }` on each route. */
export interface RouteAuthConfig {
  scope?: Scope | 'none';
}

export function authorizeRequest(
  ctx: ServerContext,
  req: FastifyRequest,
  need: Scope,
  refName?: string,
): string {
  return authorize(
    ctx.auth,
    { remoteAddress: req.socket.remoteAddress, authorization: req.headers.authorization },
    need,
    refName,
  );
}

/**
 * The token behind a request whose route-level check already ran. It is
 * looked up without the lockout's bookkeeping: that check counted the
 * request's token once, and a second count would halve the limit.
 */
export function requestPrincipal(ctx: { auth: AuthPolicy }, req: FastifyRequest): Principal | undefined {
  return principalOf(ctx.auth, req.headers.authorization);
}

/** Refuses (403) a read of ref `name` the request's token may not see; after the route's read check. */
export function checkRefRead(ctx: { auth: AuthPolicy }, req: FastifyRequest, name: string): void {
  const p = requestPrincipal(ctx, req);
  if (p && !mayReadRef(p, name)) throw refReadForbidden(p.name, p.refPrefixes, name);
}

/**
 * Refuses (403) a request whose token is bound to ref prefixes, for the
 * routes that reach every namespace at once: blobs are shared by all refs,
 * so listing them hands a bound token the digests of other teams' files
 * (a digest is what a blob read needs), and deleting one destroys content
 * refs outside its prefixes (server-owned snapshots included) still name.
 */
export function checkUnbound(ctx: { auth: AuthPolicy }, req: FastifyRequest, what: string): void {
  const p = requestPrincipal(ctx, req);
  if (p && boundToRefPrefixes(p))
    throw new HoardError('HOARD_EFORBIDDEN', `token ${p.name} is bound to ref prefixes and may not ${what}`, {
      hint: 'blobs are shared by every ref namespace: this needs a token without a refs list',
      details: { allowed: p.refPrefixes },
    });
}
