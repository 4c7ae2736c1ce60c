// Who may do what. Without a tokens file the server trusts loopback clients
// only (anything else gets 403). With one (`--tokens FILE`), every request
// is judged by its `Authorization: Bearer <token>` (or HTTP Basic with the
// token as the password, as git, Gradle and URL userinfo send): a token has scopes
// (`read`, `write`) and optionally the ref-name prefixes it may use (write,
// and read: see mayReadRef). Reads
// without a token are allowed only with `--public-read`; writes without one
// get 401. Tokens are compared as SHA-256 hashes with timingSafeEqual and are
// never logged or echoed.
//
// Tokens file (TOML or JSON, see docs/configuration.md):
//   [[token]]
//   name = "ci"                  # shown in logs instead of the token
//   token = "s3cr3t"             # or sha256 = "<hex of sha256(token)>"
//   scopes = ["read", "write"]
//   refs = ["cache/", "team/app/"]   # optional: ref prefixes it may read and write
//
// Ref prefixes match whole path segments, never a plain string prefix:
// `team-a` allows the ref `team-a` and everything under `team-a/`, but not
// `team-a.evil/x` or `team-ab`; `team-a/` (trailing slash) allows only what is
// under `team-a/`, not `team-a` itself. `""` allows every ref.

import { hash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { HoardError } from '../core/errors.ts';
import type { AuthFailureLimiter } from './auth-failures.ts';

export type Scope = 'read' | 'write';

export interface TokenEntry {
  name: string;
  hash: Buffer;
  scopes: Set<Scope>;
  /** Ref prefixes this token may read and write; undefined = all. */
  refPrefixes: string[] | undefined;
}

export interface Principal {
  name: string;
  scopes: Set<Scope>;
  refPrefixes: string[] | undefined;
}

export interface AuthPolicy {
  /** undefined: no tokens file, loopback-only mode. */
  tokens: TokenEntry[] | undefined;
  publicRead: boolean;
  /** Locks out addresses that present too many invalid tokens (auth-failures.ts). */
  failures?: AuthFailureLimiter;
}

export async function loadTokens(path: string): Promise<TokenEntry[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `cannot read tokens file ${path}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseToml(text);
  } catch (err) {
    throw new HoardError('HOARD_ECONFIG', `tokens file ${path} is not valid: ${(err as Error).message}`);
  }
  const list = Array.isArray(doc)
    ? doc
    : ((doc as { token?: unknown; tokens?: unknown }).token ?? (doc as { tokens?: unknown }).tokens);
  if (!Array.isArray(list))
    throw new HoardError('HOARD_ECONFIG', `tokens file ${path}: expected [[token]] entries`);
  return list.map((raw, i) => {
    const e = raw as Record<string, unknown>;
    const where = `tokens file ${path}, entry ${i + 1}`;
    let hash: Buffer;
    if (typeof e.token === 'string' && e.token.length > 0) hash = hashToken(e.token);
    else if (typeof e.sha256 === 'string' && /^[0-9a-f]{64}$/.test(e.sha256))
      hash = Buffer.from(e.sha256, 'hex');
    else throw new HoardError('HOARD_ECONFIG', `${where}: needs token = "…" or sha256 = "<64 hex>"`);
    const scopes = e.scopes ?? ['read'];
    if (!Array.isArray(scopes) || !scopes.every((s) => s === 'read' || s === 'write'))
      throw new HoardError('HOARD_ECONFIG', `${where}: scopes must be a list of "read" and "write"`);
    const refs = e.refs;
    if (refs !== undefined && (!Array.isArray(refs) || !refs.every((r) => typeof r === 'string')))
      throw new HoardError('HOARD_ECONFIG', `${where}: refs must be a list of ref-name prefixes`);
    return {
      name: typeof e.name === 'string' ? e.name : `token#${i + 1}`,
      hash,
      scopes: new Set(scopes as Scope[]),
      refPrefixes: refs as string[] | undefined,
    };
  });
}

/**
 * Ref namespaces only the server itself writes (through its stores, never
 * through the refs API): `git-snapshots/` (commit → snapshot archive; a
 * planted ref would make clients restore an attacker's archive) and
 * `git-mirrors/` (reserved for mirror state). The API refuses writes there
 * from every client (loopback mode, tokens without a ref list, `""`), except a
 * token whose `refs` names the namespace explicitly (`refs = ["git-snapshots/"]`):
 * the token of another hoard server that uses this one as its shared remote.
 * Reads need only `read`.
 */
export const SERVER_OWNED_REF_NAMESPACES: readonly string[] = ['git-snapshots', 'git-mirrors'];

/** Whether a ref name (or a token's ref prefix) lies in a server-owned namespace. */
export function isServerOwnedRef(name: string): boolean {
  return SERVER_OWNED_REF_NAMESPACES.some((ns) => name === ns || name.startsWith(`${ns}/`));
}

function serverOwned(name: string, who: string): HoardError {
  return new HoardError('HOARD_EFORBIDDEN', `ref ${name} is in a namespace only the server writes (${who})`, {
    hint: 'snapshot refs are written by the server that generated the snapshot; grant a server-to-server token refs = ["git-snapshots/"] explicitly',
    details: { ref: name },
  });
}

/** Whether the ref prefix `prefix` of a token covers `name` (whole path segments only, see above). */
export function refPrefixAllows(prefix: string, name: string): boolean {
  if (prefix === '') return true;
  if (prefix.endsWith('/')) return name.startsWith(prefix);
  return name === prefix || name.startsWith(`${prefix}/`);
}

export function hashToken(token: string): Buffer {
  // The one-shot hash: every authenticated request pays for this.
  return hash('sha256', token, 'buffer');
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}

/** Finds the principal for a bearer token (compares every entry, in constant time per entry). */
/**
 * The token of an Authorization header: `Bearer <token>`, or HTTP Basic with
 * the token as the password (any user name), as forges accept it — what git
 * credential helpers, Gradle and URL userinfo (`http://ci:TOKEN@host/…`) send.
 */
export function tokenOf(authorization: string): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon < 0 ? '' : decoded.slice(colon + 1);
  return password === '' ? undefined : password;
}

export function principalOf(policy: AuthPolicy, authorization: string | undefined): Principal | undefined {
  if (!policy.tokens || !authorization) return undefined;
  const token = tokenOf(authorization);
  if (token === undefined) return undefined;
  const h = hashToken(token);
  let found: TokenEntry | undefined;
  for (const t of policy.tokens) if (timingSafeEqual(t.hash, h) && !found) found = t;
  return found ? { name: found.name, scopes: found.scopes, refPrefixes: found.refPrefixes } : undefined;
}

/**
 * principalOf for a request from `address`, under the failed-token lockout:
 * a locked-out address gets HOARD_EAUTH_LOCKED whatever it sends, and an
 * invalid token counts against it. Every check of a client's credentials
 * goes through here (routes, the console's sign-in form).
 */
export function principalOfChecked(
  policy: AuthPolicy,
  address: string | undefined,
  authorization: string | undefined,
): Principal | undefined {
  if (!policy.tokens || !authorization) return undefined;
  const locked = policy.failures?.lockedFor(address) ?? 0;
  if (locked > 0)
    throw new HoardError('HOARD_EAUTH_LOCKED', 'too many invalid tokens from this address', {
      hint: `try again in ${Math.ceil(locked / 1000)} s; check the token your clients send`,
      details: { retryAfterSeconds: Math.ceil(locked / 1000) },
    });
  const p = principalOf(policy, authorization);
  if (!p && tokenOf(authorization) !== undefined) policy.failures?.failed(address);
  return p;
}

/**
 * Whether a blob read by this client may be answered on a fast path (a read
 * worker, blob-fast-path.ts): true only when authorize(…, 'read') would allow
 * it with nothing to count — no invalid token, no lockout in force. Anything
 * else takes the full path, which decides, refuses and counts it once.
 */
export function readAllowedQuietly(
  policy: AuthPolicy,
  address: string | undefined,
  authorization: string | undefined,
  connection?: object,
): boolean {
  if (!policy.tokens) return isLoopback(address);
  if (!authorization) return policy.publicRead;
  if ((policy.failures?.lockedFor(address) ?? 0) > 0) return false;
  let header: Buffer | undefined;
  if (connection !== undefined) {
    header = Buffer.from(authorization, 'utf16le'); // one code unit, two bytes: equal bytes, equal strings
    const g = readGrants.get(connection);
    if (
      g !== undefined &&
      g.policy === policy &&
      g.header.length === header.length &&
      timingSafeEqual(g.header, header)
    )
      return true;
  }
  const p = principalOf(policy, authorization);
  const granted = p !== undefined && (p.scopes.has('read') || p.scopes.has('write') || policy.publicRead);
  if (connection !== undefined && header !== undefined) {
    if (granted) readGrants.set(connection, { policy, header });
    else readGrants.delete(connection);
  }
  return granted;
}

/**
 * The Authorization header a connection last had a read granted for
 * (readAllowedQuietly with its `connection`): a kept-alive client sends the
 * same header on every request, and hashing it and comparing the hash with
 * every token cost ~2 µs a request, a few % of a small GET. The header is
 * compared in constant time (behind a proxy one connection may carry several
 * clients' requests); a different header is decided afresh, a refused one
 * forgets the grant, and a lockout is checked before the grant is used.
 * Keyed weakly by the connection: the entry goes with it. Tokens do not
 * change while the server runs, so a grant holds for the connection's life.
 */
const readGrants = new WeakMap<object, { policy: AuthPolicy; header: Buffer }>();

/**
 * Whether `p` may read the ref `name`. A token's `refs` bound its reads of
 * refs as well as its writes: a ref names (and its listing reveals) the
 * digest of content another team owns, and a digest is all a reader needs
 * to fetch that content, so a prefix-bound token must not see refs outside
 * its prefixes. Blobs stay readable by digest with the read scope (content
 * addressing: knowing a digest is the capability). Server-owned namespaces
 * (snapshots and mirrors of what every reader may clone through /git/) are
 * readable by every reader. No principal (loopback without a tokens file,
 * anonymous --public-read) or a token without `refs`: every ref.
 */
export function mayReadRef(p: Pick<Principal, 'refPrefixes'> | undefined, name: string): boolean {
  if (!p?.refPrefixes || isServerOwnedRef(name)) return true;
  return p.refPrefixes.some((pre) => refPrefixAllows(pre, name));
}

/** Whether `p` is confined to ref prefixes (a prefix of '' covers every ref: not confined). */
export function boundToRefPrefixes(p: Pick<Principal, 'refPrefixes'> | undefined): boolean {
  return p?.refPrefixes !== undefined && !p.refPrefixes.includes('');
}

/** The 403 for a read of ref `name` outside `who`'s prefixes (`allowed`). */
export function refReadForbidden(who: string, allowed: string[] | undefined, name: string): HoardError {
  return new HoardError('HOARD_EFORBIDDEN', `token ${who} may not read ref ${name}`, {
    hint: "a token's refs prefixes bound what it reads as well as what it writes",
    details: { allowed },
  });
}

/**
 * Decides a request. `refName` is the ref a read or write touches: a write
 * needs a prefix covering it (and an explicit one for server-owned
 * namespaces), a read needs mayReadRef.
 * Throws 401/403 HoardErrors; returns the principal's name for logs.
 */
export function authorize(
  policy: AuthPolicy,
  req: { remoteAddress: string | undefined; authorization: string | undefined },
  need: Scope,
  refName?: string,
): string {
  if (!policy.tokens) {
    if (isLoopback(req.remoteAddress)) {
      if (need === 'write' && refName !== undefined && isServerOwnedRef(refName))
        throw serverOwned(refName, 'loopback client');
      return 'loopback';
    }
    throw new HoardError('HOARD_EFORBIDDEN', 'this server accepts local clients only', {
      hint: 'start it with --tokens FILE to let other machines in',
    });
  }
  const p = principalOfChecked(policy, req.remoteAddress, req.authorization);
  if (!p) {
    if (need === 'read' && policy.publicRead) return 'anonymous';
    if (req.authorization)
      throw new HoardError('HOARD_EUNAUTHORIZED', 'invalid token', {
        hint: 'check HOARD_TOKEN against the server tokens file',
      });
    throw new HoardError('HOARD_EUNAUTHORIZED', `a token is needed to ${need}`, {
      hint: 'set HOARD_TOKEN (sent as Authorization: Bearer)',
    });
  }
  if (!p.scopes.has(need) && !(need === 'read' && (p.scopes.has('write') || policy.publicRead)))
    throw new HoardError('HOARD_EFORBIDDEN', `token ${p.name} lacks the ${need} scope`);
  if (refName === undefined) return p.name;
  if (need === 'read') {
    if (!mayReadRef(p, refName)) throw refReadForbidden(p.name, p.refPrefixes, refName);
    return p.name;
  }
  if (
    isServerOwnedRef(refName) &&
    !p.refPrefixes?.some((pre) => isServerOwnedRef(pre) && refPrefixAllows(pre, refName))
  )
    throw serverOwned(refName, `token ${p.name}`);
  if (p.refPrefixes && !p.refPrefixes.some((pre) => refPrefixAllows(pre, refName)))
    throw new HoardError('HOARD_EFORBIDDEN', `token ${p.name} may not write ref ${refName}`, {
      details: { allowed: p.refPrefixes },
    });
  return p.name;
}
