// Sign-in state of the web console. A browser that signed in with a read
// token holds a session cookie whose value is a random 256-bit id; the
// server keeps only the SHA-256 of that id (with the principal's name and an
// expiry), never the token, so the cookie is worthless after a restart, after
// sign-out or once it expires, and a leaked cookie never reveals a token that
// also works against the API. Sessions live in memory, bounded: the oldest
// is dropped when the table is full (a flood of sign-ins needs valid tokens
// anyway). Each session also carries its own CSRF token for the sign-out form.
//
// The sign-in form itself is protected by a double-submit token: the GET sets
// a random value in an HttpOnly, SameSite=Strict cookie and writes the same
// value into the form; the POST must carry both, equal. A cross-site page can
// neither read the cookie nor make the browser send it.

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'hoard_session';
export const CSRF_COOKIE = 'hoard_csrf';

export interface Session {
  principal: string;
  /** The signed-in token's ref prefixes (auth.ts mayReadRef: the refs it may see); undefined = all. */
  refPrefixes: string[] | undefined;
  expiresAt: number;
  /** The sign-out form's CSRF token. */
  csrf: string;
}

export interface SessionOptions {
  ttlMs: number;
  max: number;
  now?: () => number;
}

export class ConsoleSessions {
  readonly #o: SessionOptions;
  /** sha256(id) hex → session; Map order is creation order (the oldest goes first). */
  #sessions = new Map<string, Session>();

  constructor(opts: SessionOptions) {
    this.#o = opts;
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** A new session; returns the id for the cookie (shown nowhere else). */
  create(principal: string, refPrefixes?: string[]): { id: string; session: Session } {
    while (this.#sessions.size >= this.#o.max) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    const id = randomToken();
    const session = { principal, refPrefixes, expiresAt: this.#now() + this.#o.ttlMs, csrf: randomToken() };
    this.#sessions.set(keyOf(id), session);
    return { id, session };
  }

  lookup(id: string | undefined): Session | undefined {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const key = keyOf(id);
    const s = this.#sessions.get(key);
    if (!s) return undefined;
    if (s.expiresAt <= this.#now()) {
      this.#sessions.delete(key);
      return undefined;
    }
    return s;
  }

  delete(id: string | undefined): void {
    if (id) this.#sessions.delete(keyOf(id));
  }
}

function keyOf(id: string): string {
  return hash('sha256', id, 'hex');
}

/** 32 random bytes, base64url (43 characters). */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Equal tokens, compared in constant time (both must be present). */
export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The cookies of a Cookie header (the first of a repeated name wins; malformed pairs are skipped). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name !== '' && !out.has(name)) out.set(name, value);
  }
  return out;
}

/** A Set-Cookie value: HttpOnly and SameSite=Strict always; Secure when served over HTTPS. */
export function cookie(
  name: string,
  value: string,
  opts: { path: string; maxAgeSeconds: number; secure: boolean },
): string {
  const parts = [`${name}=${value}`, `Path=${opts.path}`, `Max-Age=${opts.maxAgeSeconds}`, 'HttpOnly'];
  parts.push('SameSite=Strict');
  if (opts.secure) parts.push('Secure');
  return parts.join('; ');
}
